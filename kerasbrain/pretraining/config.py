"""Self-supervised pretraining from a YAML/JSON config (``kerasbrain pretrain CONFIG``).

Config keys (``load_config`` fills the defaults)::

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

import json
import os

import numpy as np

METHODS = ("contrastive", "masked")
DEFAULTS = {
    "method": "contrastive",
    "data": {},
    "backbone": None,
    "contrastive": {},
    "masked": {},
    "augmentation": {},
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "weight_decay": 0.0},
    "epochs": 100,
    "callbacks": {},
    "output": None,
    "seed": 0,
}


def load_config(path, overrides=None):
    """Read and check a pretraining config; returns a dict with every key filled.

    Raises:
        FileNotFoundError / ValueError naming the file and the offending key.
    """
    import yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as handle:
        try:
            raw = json.load(handle) if str(path).endswith(".json") else yaml.safe_load(handle)
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
    if config["method"] not in METHODS:
        raise ValueError(f"{path}: method {config['method']!r} is not one of {METHODS}.")
    if not config["output"]:
        raise ValueError(f"{path}: 'output' (the output folder) is required.")
    train = (config["data"] or {}).get("train") or {}
    if not {"tfrecords", "npz", "table"} & set(train):
        raise ValueError(f"{path}: 'data.train' needs one of tfrecords, npz, table.")
    if not isinstance(config["backbone"], dict):
        raise ValueError(f"{path}: 'backbone' (name, input_shape, weights, kwargs) is required.")
    kernel = (config["contrastive"] or {}).get("kernel")
    if kernel is not None and (not isinstance(kernel, list | tuple) or len(kernel) != 2):
        raise ValueError(f"{path}: contrastive.kernel must be [label name, sigma], got {kernel!r}.")
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
    import pandas as pd

    from kerasbrain import data

    table_path = source["table"]
    table = pd.read_csv(table_path, sep="\t" if str(table_path).endswith(".tsv") else ",")
    column = source.get("path_column", "path")
    for name in (column, label):
        if name and name not in table:
            raise ValueError(f"{table_path}: no column {name!r}; columns are {list(table.columns)}.")
    root = os.path.dirname(os.path.abspath(table_path))
    paths = [p if os.path.isabs(p) else os.path.join(root, p) for p in table[column]]
    return data.volume_dataset(paths, labels={label: table[label].tolist()} if label else None,
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
    kernel = (config["contrastive"] or {}).get("kernel") if config["method"] == "contrastive" else None
    batch_size = int(config["data"].get("batch_size", 16))
    train = load_volumes(config["data"]["train"], kernel[0] if kernel else None, batch_size, config["seed"])
    model = build_pretrainer(config)
    write_json(os.path.join(output, "config.json"), config)
    callbacks = [*training.callbacks(config, has_validation=False), *extra_callbacks]
    if isinstance(train, tuple):
        model.fit(train[0], train[1], batch_size=batch_size, shuffle=True, epochs=int(config["epochs"]),
                  callbacks=callbacks)
    else:
        model.fit(train, epochs=int(config["epochs"]), callbacks=callbacks)
    for name, saved in (("pretrainer", model), ("backbone", model.backbone)):
        with atomic_write(os.path.join(output, f"{name}.keras")) as tmp:
            saved.save(tmp)
    print(f"saved {os.path.join(output, 'pretrainer.keras')} and {os.path.join(output, 'backbone.keras')}")
    return model

