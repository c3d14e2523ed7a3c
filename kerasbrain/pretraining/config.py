"""Self-supervised pretraining from a YAML/JSON config (``kerasbrain pretrain CONFIG``).

Config keys (``load_config`` checks them against the ``pretrain`` schema of
``kerasbrain.config``, listed in ``docs/configs.md``, and fills the defaults)::

    method: contrastive                 # contrastive (SimCLR / y-aware) | masked
    data:
      train: {tfrecords: shards/}       # or {npz: volumes.npz} (array "x", labels beside it)
                                        # or {table: scans.csv, path_column: path,
                                        #     preprocessor: null}  (NIfTI files)
      batch_size: 16
    backbone: {name: SFCN, weights: null, input_shape: [96, 96, 96, 1],
               kwargs: {filters: [8, 16, 32, 64, 64, 64]}}   # kerasbrain.applications
    contrastive: {projection_dim: 128, temperature: 0.1, kernel: [age, 5.0]}
    masked: {mask_ratio: 0.6, patch_size: 16}
    augmentation: {crop_scale: [0.4, 1.0], blur: [0.1, 1.5], gamma: 0.3, contrast: 0.2,
                   noise: 0.05, cutout: [0.1, 0.4], flip_axes: [0]}   # view_augmentation
    optimizer: {name: adam, learning_rate: 1.0e-3, weight_decay: 0.0}
    epochs: 100
    output: runs/pretrain
    seed: 0

Outputs in ``output``: ``pretrainer.keras`` (the whole pretrainer), ``backbone.keras``
(the pretrained backbone, for ``kb.transfer.finetune`` or ``kerasbrain finetune``'s
``model:``), ``checkpoints/best.keras``, ``history.csv``, ``config.json``; ``backup/``
holds the state of an unfinished run, so running the same command again resumes it.
"""

import os

import numpy as np

SOURCES = ("tfrecords", "npz", "table")


def load_config(path, overrides=None):
    """Read and check a pretraining config (schema: ``kerasbrain.config``, kind ``pretrain``,
    listed in ``docs/configs.md``); returns a dict with every key filled.

    Raises:
        FileNotFoundError / ValueError naming the file and the offending key path.
    """
    from kerasbrain import config as config_lib

    source = os.fspath(path)
    raw = config_lib.read(path)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = config_lib.validate(raw, "pretrain", source)
    schema = config_lib.SCHEMAS["pretrain"]
    for name in ("optimizer", "contrastive", "masked", "augmentation", "data"):
        config[name] = config_lib.fill_defaults(config[name] or {}, schema[name].keys)
    given = [key for key in SOURCES if key in config["data"]["train"]]
    if len(given) != 1:
        raise config_lib.ConfigError(f"{source}: data.train: give one of {', '.join(SOURCES)}; "
                                     f"got {given or 'none'}.")
    kernel = config["contrastive"].get("kernel")
    if kernel is not None and not (len(kernel) == 2 and isinstance(kernel[0], str)
                                   and isinstance(kernel[1], int | float) and kernel[1] > 0):
        raise config_lib.ConfigError(f"{source}: contrastive.kernel: expected [label name, sigma > 0], "
                                     f"got {kernel!r}.")
    backbone = config["backbone"]
    config_lib.check_backbone(backbone.get("name") or "SFCN", backbone.get("kwargs"), source,
                              "backbone.name", "backbone.kwargs")
    return config


def build_backbone(spec):
    """A pooled backbone from ``{name, weights, input_shape, kwargs}``."""
    from kerasbrain import applications

    spec = dict(spec)
    name = spec.pop("name", "SFCN")
    constructor = getattr(applications, name, None)
    if constructor is None:
        raise ValueError(f"backbone name {name!r} is not in kerasbrain.applications.")
    kwargs = {"include_top": False, "pooling": "avg", **(spec.pop("kwargs", None) or {})}
    if spec.get("input_shape"):
        kwargs["input_shape"] = tuple(spec.pop("input_shape"))
    return constructor(weights=spec.pop("weights", None), **kwargs)


def build_pretrainer(config):
    """The compiled ``Contrastive`` or ``MaskedVolume`` model of ``config``."""
    import keras

    from kerasbrain.layers.views import view_augmentation
    from kerasbrain.pretraining.contrastive import Contrastive
    from kerasbrain.pretraining.masked import MaskedVolume

    backbone = build_backbone(config["backbone"])
    if config["method"] == "masked":
        model = MaskedVolume(backbone, seed=config["seed"], **(config["masked"] or {}))
    else:
        augment = view_augmentation(seed=config["seed"], **(config["augmentation"] or {}))
        model = Contrastive(backbone, augment=augment, seed=config["seed"], **(config["contrastive"] or {}))
    optimizer = dict(config["optimizer"])
    name = optimizer.pop("name")
    if optimizer.get("weight_decay") and name == "adam":
        name = "adamw"
    if not optimizer.get("weight_decay"):
        optimizer.pop("weight_decay", None)
    model.compile(optimizer=keras.optimizers.get({"class_name": name, "config": optimizer}))
    return model


def load_volumes(source, label, batch_size, seed):
    """``tf.data.Dataset`` or ``(x, y)`` arrays from a data source; ``y``: ``{label: values}``."""
    if "tfrecords" in source:
        from kerasbrain import data

        return data.tfrecord_dataset(source["tfrecords"], labels=[label] if label else [],
                                     batch_size=batch_size, shuffle=True, seed=seed, cache=True)
    if "npz" in source:
        with np.load(source["npz"], allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise ValueError(f"{source['npz']}: needs an array 'x' of volumes.")
            if label and label not in arrays:
                raise ValueError(f"{source['npz']}: kernel label {label!r} is not among the arrays "
                                 f"{sorted(arrays.files)}.")
            x = arrays["x"].astype("float32")
            y = {label: arrays[label].astype("float32")} if label else None
        return (x[..., None] if x.ndim == 4 else x), y
    from kerasbrain import data

    table = data.read_table(source["table"], labels=[label] if label else [],
                            path_column=source.get("path_column", "path"))
    return data.volume_dataset(list(table.frame["path"]), labels={label: table.frame[label].tolist()} if label else None,
                               preprocessor=source.get("preprocessor"), batch_size=batch_size,
                               shuffle=True, cache=True, seed=seed)


def run_config(config, extra_callbacks=()):
    """Pretrain as ``config`` says (resuming an unfinished run); returns the pretrainer."""
    import keras

    from kerasbrain import training
    from kerasbrain.files import atomic_write, write_json

    keras.utils.set_random_seed(int(config["seed"]))
    output = config["output"]
    os.makedirs(os.path.join(output, "checkpoints"), exist_ok=True)
    kernel = config["contrastive"].get("kernel") if config["method"] == "contrastive" else None
    batch_size = int(config["data"]["batch_size"])
    train = load_volumes(config["data"]["train"], kernel[0] if kernel else None, batch_size, config["seed"])
    model = build_pretrainer(config)
    write_json(os.path.join(output, "config.json"), config)
    callbacks = [*training.callbacks(config, has_validation=False), *extra_callbacks]
    if isinstance(train, tuple):
        model.fit(train[0], train[1], batch_size=batch_size, shuffle=True, epochs=int(config["epochs"]),
                  callbacks=callbacks)
    else:
        model.fit(train, epochs=int(config["epochs"]), callbacks=callbacks, shuffle=False)  # shuffled
    for name, saved in (("pretrainer", model), ("backbone", model.backbone)):
        with atomic_write(os.path.join(output, f"{name}.keras")) as tmp:
            saved.save(tmp)
    print(f"saved {os.path.join(output, 'pretrainer.keras')} and {os.path.join(output, 'backbone.keras')}")
    return model

