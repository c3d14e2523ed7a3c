"""Multi-task training and fine-tuning from a YAML/JSON config, with checkpoints and
resumption (what ``kerasbrain train CONFIG`` and ``kerasbrain finetune CONFIG`` run).

    from kerasbrain import training
    model = training.run_config(training.load_config("experiment.yaml", "finetune"))

Config keys (``load_config`` fills the defaults)::

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

import json
import os

from kerasbrain.files import atomic_write, write_json

DEFAULTS = {
    "data": {},
    "backbone": None,
    "model": None,
    "tasks": None,
    "strategy": None,
    "finetune": {},
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "weight_decay": 0.0},
    "epochs": 10,
    "callbacks": {},
    "output": None,
    "seed": 0,
    # kerasbrain.scale: precision, XLA, accumulation, remat, data parallelism
    **dict.fromkeys(("precision", "jit_compile", "gradient_accumulation_steps", "remat",
                     "distribution")),
}
KNOWN_CALLBACKS = ("early_stopping", "reduce_lr_on_plateau")


def load_config(path, command="train", overrides=None):
    """Read and validate a config file; return a dict with every key filled.

    Raises:
        FileNotFoundError / ValueError naming the file and the offending key.
    """
    import yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as handle:
        try:
            raw = yaml.safe_load(handle) if not str(path).endswith(".json") else json.load(handle)
        except (yaml.YAMLError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not valid YAML/JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the config must be a mapping of keys to values.")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known keys are {sorted(DEFAULTS)}.")
    config = {key: raw.get(key, default) for key, default in DEFAULTS.items()}
    config["optimizer"] = {**DEFAULTS["optimizer"], **(raw.get("optimizer") or {})}
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not config["output"]:
        raise ValueError(f"{path}: 'output' (the output folder) is required.")
    if not config["tasks"]:
        raise ValueError(f"{path}: 'tasks' must list at least one task.")
    if "train" not in (config["data"] or {}):
        raise ValueError(f"{path}: 'data.train' is required (tfrecords, table or npz).")
    if config["backbone"] is None and config["model"] is None:
        raise ValueError(f"{path}: give 'backbone' (an architecture) or 'model' (a saved .keras file).")
    if command == "finetune":
        config["strategy"] = config["strategy"] or "full"
        if config["model"] is None and not (config["backbone"] or {}).get("weights"):
            raise ValueError(f"{path}: finetune needs pretrained weights: backbone.weights or model.")
    else:
        config["strategy"] = config["strategy"] or "full"
    for name in config["callbacks"] or {}:
        if name not in KNOWN_CALLBACKS:
            raise ValueError(f"{path}: unknown callback {name!r}; known: {KNOWN_CALLBACKS}.")
    config["tasks"] = [_task_spec(spec, path, i) for i, spec in enumerate(config["tasks"])]
    from kerasbrain import scale

    try:
        scale.parse_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return config


def _task_spec(spec, path, index):
    if not isinstance(spec, dict) or "type" not in spec or "name" not in spec:
        raise ValueError(f"{path}: tasks[{index}] needs 'type' and 'name', got {spec!r}.")
    from kerasbrain.tasks.specs import TASK_TYPES

    if spec["type"] not in TASK_TYPES:
        raise ValueError(f"{path}: tasks[{index}] has unknown type {spec['type']!r}; "
                         f"choose from {sorted(TASK_TYPES)}.")
    return dict(spec)


def build_tasks(config):
    from kerasbrain import tasks as tasks_lib

    return [tasks_lib.from_spec(spec) for spec in config["tasks"]]


def load_data(source, tasks, batch_size, shuffle, seed, **shards):
    """A data source from the config -> ``tf.data.Dataset`` or ``(x, y, sample_weight)``.
    ``shards``: ``num_shards``/``shard_index`` of this host (TFRecords)."""
    from kerasbrain import tasks as tasks_lib

    if "tfrecords" in source:
        from kerasbrain import data

        return data.tfrecord_dataset(source["tfrecords"], labels=[t.name for t in tasks],
                                     batch_size=batch_size, shuffle=shuffle, seed=seed, **shards)
    if "npz" in source:
        import numpy as np

        with np.load(source["npz"], allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise ValueError(f"{source['npz']}: needs an array 'x' of volumes.")
            x = arrays["x"].astype("float32")
            table = {name: arrays[name] for name in arrays.files if name != "x"}
    elif "table" in source:
        x, table = _load_table(source["table"], source.get("path_column", "path"))
    else:
        raise ValueError(f"data source {source!r} must have one of tfrecords, table, npz.")
    if x.ndim == 4:
        x = x[..., None]
    y, weights = tasks_lib.encode_labels(tasks, table)
    return x, y, weights


def _load_table(path, path_column):
    import nibabel as nib
    import numpy as np
    import pandas as pd

    table = pd.read_csv(path, sep="\t" if str(path).endswith(".tsv") else ",")
    if path_column not in table:
        raise ValueError(f"{path}: no column {path_column!r} with volume paths.")
    root = os.path.dirname(os.path.abspath(path))
    volumes = []
    for row, name in enumerate(table[path_column]):
        file = name if os.path.isabs(name) else os.path.join(root, name)
        if not os.path.exists(file):
            raise FileNotFoundError(f"{path}: row {row}: volume not found: {file}")
        volumes.append(np.asarray(nib.load(file).dataobj, dtype="float32"))
    shapes = {v.shape for v in volumes}
    if len(shapes) != 1:
        raise ValueError(f"{path}: volumes differ in shape {sorted(shapes)}; preprocess them first.")
    return np.stack(volumes), table


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
    train = load_data(config["data"]["train"], tasks, batch_size, True, config["seed"], **data_kwargs)
    validation = None
    if config["data"].get("validation"):
        validation = load_data(config["data"]["validation"], tasks, batch_size, False, config["seed"],
                               **data_kwargs)
    train, validation = (plan.shard_arrays(*d) if isinstance(d, tuple) else plan.prepare_dataset(d)
                         for d in (train, validation))
    with plan.scope():
        model = plan.apply(build_model(config, tasks))
        write_json(os.path.join(output, "config.json"), {**config, "tasks": config["tasks"]}, indent=2)
        fit_args = {"epochs": int(config["epochs"]), "validation_data": validation,
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

