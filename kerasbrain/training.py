"""Multi-task training and fine-tuning from a YAML/JSON config, with checkpoints and
resumption (what ``kerasbrain train CONFIG`` and ``kerasbrain finetune CONFIG`` run).

    from kerasbrain import training
    model = training.run_config(training.load_config("experiment.yaml", "finetune"))

Config keys (``load_config`` checks them against ``kerasbrain.config`` and fills the
defaults; every key: ``docs/configs.md``)::

    data:
      train: {tfrecords: "shards/train"}        # or {table: train.csv, path_column: path}
      validation: {npz: val.npz}                # or {npz: train.npz}: arrays "x" + labels
      batch_size: 4
    backbone: {name: SFCN, weights: ukb, input_shape: [160, 192, 160, 1],
               kwargs: {pooling: avg}}          # any kerasbrain.applications constructor
    model: pretrained.keras                     # finetune: start from a saved model instead
    tasks:
      - {type: regression, name: age, loss: huber, standardize: true}
      - {type: binary, name: sex, positive: M}
    strategy: full                              # finetune: scratch | frozen | partial | full
    finetune: {trainable_blocks: 2, two_phase: 3, rerange: {age: [42, 82]}}
    optimizer: {name: adam, learning_rate: 1.0e-3, weight_decay: 0.0}
    epochs: 30
    callbacks: {early_stopping: {patience: 5}, reduce_lr_on_plateau: {patience: 3}}
    output: runs/experiment
    seed: 0
    precision: mixed_bfloat16                   # scale keys: see kerasbrain.scale
    distribution: {devices: all}                # (jit_compile, gradient_accumulation_steps, remat)

Outputs in ``output``: ``model.keras`` (final), ``checkpoints/best.keras``,
``history.csv``, ``config.json``; ``backup/`` holds the state of an unfinished run, so
running the same command again resumes where it stopped.
"""

import os

from kerasbrain.files import atomic_write, write_json

SOURCES = ("tfrecords", "table", "npz")


def load_config(path, command="train", overrides=None):
    """Read and validate a config file (schema: ``kerasbrain.config``, ``docs/configs.md``);
    return a dict with every key filled.

    Raises:
        FileNotFoundError / ValueError naming the file and the offending key path.
    """
    from kerasbrain import config as config_lib

    raw = config_lib.read(path)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = config_lib.validate(raw, command, os.fspath(path))
    config["optimizer"] = config_lib.fill_defaults(config["optimizer"] or {},
                                                   config_lib.SCHEMAS[command]["optimizer"].keys)
    config["finetune"] = config["finetune"] or {}
    if not config["output"]:
        raise ValueError(f"{path}: 'output' (the output folder) is required.")
    if not config["tasks"]:
        raise ValueError(f"{path}: 'tasks' must list at least one task.")
    for part in ("train", "validation"):
        given = [key for key in SOURCES if key in (config["data"].get(part) or {})]
        if part in config["data"] and len(given) != 1:
            raise ValueError(f"{path}: data.{part}: give one of {', '.join(SOURCES)}; got "
                             f"{given or 'none'}.")
    if config["backbone"] is None and config["model"] is None:
        raise ValueError(f"{path}: give 'backbone' (an architecture) or 'model' (a saved .keras file).")
    if config["backbone"] is not None and config["model"] is None:
        backbone = config["backbone"]
        config_lib.check_backbone(backbone.get("name", "SFCN"), backbone.get("kwargs"),
                                  os.fspath(path), "backbone.name", "backbone.kwargs")
    if command == "finetune" and config["model"] is None \
            and not (config["backbone"] or {}).get("weights"):
        raise ValueError(f"{path}: finetune needs pretrained weights: backbone.weights or model.")
    config["tasks"] = [dict(spec) for spec in config["tasks"]]
    from kerasbrain import scale

    try:
        scale.parse_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return config


def build_tasks(config):
    from kerasbrain import tasks as tasks_lib

    return [tasks_lib.from_spec(spec) for spec in config["tasks"]]


def load_data(source, tasks, batch_size, shuffle, seed, augment=None, **shards):
    """A data source from the config -> ``tf.data.Dataset`` or ``(x, y, sample_weight)``.
    ``augment``: augmentation strength (TFRecords; arrays are augmented by the caller).
    ``shards``: ``num_shards``/``shard_index`` of this host (TFRecords)."""
    from kerasbrain import tasks as tasks_lib

    if "tfrecords" in source:
        from kerasbrain import data, layers

        _check_manifest_labels(source["tfrecords"], tasks)
        layer = None if augment is None else layers.augmentation(augment, seed=seed)
        return data.tfrecord_dataset(source["tfrecords"], labels=[t.name for t in tasks],
                                     batch_size=batch_size, shuffle=shuffle, seed=seed,
                                     augment=layer, **shards)
    if "npz" in source:
        import zipfile

        import numpy as np

        try:
            with np.load(source["npz"], allow_pickle=False) as arrays:
                if "x" not in arrays:
                    raise ValueError(f"{source['npz']}: needs an array 'x' of volumes.")
                x = arrays["x"].astype("float32")
                table = {name: arrays[name] for name in arrays.files if name != "x"}
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{source['npz']}: not a readable NumPy archive: {error}") from None
    elif "table" in source:
        from kerasbrain.datasets.tabular import load_dataset

        x, table = load_dataset(source["table"], path_column=source.get("path_column", "path"),
                                labels=[task.name for task in tasks], progress=False)
    else:
        raise ValueError(f"data source {source!r} must have one of tfrecords, table, npz.")
    if x.ndim == 4:
        x = x[..., None]
    try:
        y, weights = tasks_lib.encode_labels(tasks, table)
    except (ValueError, TypeError, KeyError) as error:
        file = source.get("npz") or source.get("table")
        raise ValueError(f"{file}: {str(error).strip(chr(34))}") from None
    return x, y, weights


def _check_manifest_labels(folder, tasks):
    """A task whose label the shards hold no value of, or one class of, is an error."""
    from kerasbrain import data

    if not (os.path.isdir(folder) or str(folder).endswith(".json")):
        return  # a glob of shards: tfrecord_dataset finds the manifest beside them
    manifest = data.read_manifest(folder)
    counts = manifest.get("label_counts", {})
    for task in tasks:
        count = counts.get(task.name)
        if count is None:
            continue
        if count["present"] == 0:
            raise ValueError(f"{folder}: label {task.name!r} has no values in any record.")
        if task.kind in ("binary", "categorical") and count["distinct"] < 2:
            raise ValueError(f"{folder}: label {task.name!r} holds one class only in all "
                             f"{count['present']} labelled records; a classifier needs two.")


def build_model(config, tasks):
    from kerasbrain import applications, models, transfer

    if config["model"]:
        pretrained = models.load_model(config["model"])
    else:
        spec = dict(config["backbone"])
        name = spec.pop("name", "SFCN")
        try:
            constructor = applications.get(name)
        except ValueError as error:
            raise ValueError(f"backbone: {error}") from None
        kwargs = dict(spec.pop("kwargs", {}) or {})
        if "input_shape" in spec:
            kwargs["input_shape"] = tuple(spec.pop("input_shape"))
        kwargs.setdefault("include_top", False)
        if not kwargs["include_top"]:
            kwargs.setdefault("pooling", "avg")
        pretrained = constructor(weights=spec.pop("weights", None), **kwargs)
    optimizer = dict(config["optimizer"])
    return transfer.finetune(
        pretrained, tasks, strategy=config["strategy"], optimizer=optimizer.pop("name"),
        learning_rate=optimizer.pop("learning_rate"), weight_decay=optimizer.pop("weight_decay"),
        **config["finetune"])


def callbacks(config, has_validation):
    import keras

    output = config["output"]
    monitor = "val_loss" if has_validation else "loss"
    out = [
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(output, "checkpoints", "best.keras"),
                                        monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(os.path.join(output, "history.csv"), append=True),
    ]
    settings = config["callbacks"] or {}
    if "early_stopping" in settings:
        out.append(keras.callbacks.EarlyStopping(**{"monitor": monitor, "restore_best_weights": True,
                                                     **(settings["early_stopping"] or {})}))
    if "reduce_lr_on_plateau" in settings:
        out.append(keras.callbacks.ReduceLROnPlateau(**{"monitor": monitor,
                                                        **(settings["reduce_lr_on_plateau"] or {})}))
    return out


def run_config(config, extra_callbacks=()):
    """Train as ``config`` says; returns the trained model."""
    import keras

    keras.utils.set_random_seed(int(config["seed"]))
    output = config["output"]
    os.makedirs(os.path.join(output, "checkpoints"), exist_ok=True)
    tasks = build_tasks(config)
    from kerasbrain import scale

    plan = scale.from_config(config)  # before any model is built
    data_kwargs = plan.data_kwargs(int(config["data"].get("batch_size", 4)))
    batch_size = data_kwargs.pop("batch_size")  # this host's share of the global batch
    train = load_data(config["data"]["train"], tasks, batch_size, True, config["seed"],
                      augment=config["data"].get("augment"), **data_kwargs)
    validation = None
    if config["data"].get("validation"):
        validation = load_data(config["data"]["validation"], tasks, batch_size, False, config["seed"],
                               **data_kwargs)
    train, validation = (plan.shard_arrays(*d) if isinstance(d, tuple) else plan.prepare_dataset(d)
                         for d in (train, validation))
    strength = config["data"].get("augment")
    if strength is not None and isinstance(train, tuple):
        from kerasbrain.tuning.hypermodel import _augmented_dataset

        train = _augmented_dataset(*train, strength, batch_size, int(config["seed"]))
    with plan.scope():
        model = plan.apply(build_model(config, tasks))
        write_json(os.path.join(output, "config.json"), {**config, "tasks": config["tasks"]}, indent=2)
        from kerasbrain import progress

        fit_args = {"epochs": int(config["epochs"]), "validation_data": validation,
                    "verbose": progress.fit_verbose(),
                    "callbacks": [*callbacks(config, validation is not None), *extra_callbacks]}
        if isinstance(train, tuple):
            x, y, weights = train
            model.fit(x, y, sample_weight=weights, batch_size=batch_size, shuffle=True, **fit_args)
        else:
            model.fit(train, **fit_args)
    final = os.path.join(output, "model.keras")
    with atomic_write(final) as tmp:
        model.save(tmp)
    print(f"saved {final}")
    return model
