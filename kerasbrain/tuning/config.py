"""Tuning configs: from a YAML/JSON config to a hypermodel and a search space, and from the
best hyperparameters back to a ``kerasbrain finetune`` config.

A ``kerasbrain tune`` config names the data, backbone, weights, tasks, epochs, batch
size and output plus the search: ``tuner``, ``budget``, ``objective``, ``folds``,
``strategies`` and ``search_space`` (every key: ``docs/configs.md``). The exported
config is a ``kerasbrain finetune`` config with the best settings filled in, so
``kerasbrain finetune best_config.yaml`` trains the chosen model.
"""

import json
import os

import keras_tuner as kt
import numpy as np
import yaml

from kerasbrain.files import write_text


def read_config(path):
    """Load a ``kerasbrain tune`` config and check it against its schema (errors name
    the file and the key path; ``docs/configs.md`` lists the keys)."""
    from kerasbrain import config as config_lib

    config = config_lib.read(path)
    config_lib.check(config, config_lib.SCHEMAS["tune"], os.fspath(path))
    names = config["backbone"] if isinstance(config["backbone"], list) else [config["backbone"]]
    for name in names:
        config_lib.check_backbone(name, config.get("backbone_kwargs"), os.fspath(path),
                                  "backbone", "backbone_kwargs")
    return config


def write_config(config, path):
    """Write ``config`` as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically."""
    path = os.fspath(path)
    config = _plain(config)
    if path.endswith(".json"):
        text = json.dumps(config, indent=2) + "\n"
    else:
        text = yaml.safe_dump(config, sort_keys=False)
    return write_text(path, text)


def tasks_from_config(specs):
    """``[{"type": "binary", "name": "dx", ...}]`` -> ``kerasbrain.tasks`` objects.

    ``type`` is a task class name in any case, with or without underscores
    (``SoftClassification``, ``soft_classification``); other keys are its arguments.
    """
    from kerasbrain import tasks as tasks_lib

    if not isinstance(specs, list) or not specs:
        raise ValueError("config 'tasks' must be a non-empty list of {type, name, ...} entries.")
    classes = {
        cls.__name__.lower(): cls
        for cls in (tasks_lib.Regression, tasks_lib.Binary, tasks_lib.Categorical,
                    tasks_lib.SoftClassification, tasks_lib.Ranking)
    }  # fmt: skip
    tasks = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "type" not in spec or "name" not in spec:
            raise ValueError(f"config 'tasks'[{i}] must be a mapping with 'type' and 'name', got {spec!r}.")
        arguments = {k: v for k, v in spec.items() if k != "type"}
        kind = str(spec["type"]).replace("_", "").lower()
        if kind not in classes:
            names = sorted(cls.__name__ for cls in classes.values())
            raise ValueError(f"config 'tasks'[{i}]: unknown task type {spec['type']!r}; one of {names}.")
        tasks.append(classes[kind](**arguments))
    return tasks


def hypermodel_from_config(config):
    """A ``FineTuningHyperModel`` from the model keys of a tune or finetune config."""
    from kerasbrain.tuning.hypermodel import STRATEGIES, FineTuningHyperModel

    if "backbone" not in config:
        raise ValueError("config needs 'backbone' (a kerasbrain.applications name, e.g. SFCN).")
    backbone = config["backbone"]
    if isinstance(backbone, list):
        backbone = {name: name for name in backbone}
    return FineTuningHyperModel(
        backbone,
        tasks_from_config(config.get("tasks")),
        weights=config.get("weights"),
        input_shape=config.get("input_shape"),
        backbone_kwargs=config.get("backbone_kwargs"),
        strategies=config.get("strategies", STRATEGIES),
        max_trainable_blocks=config.get("max_trainable_blocks", 3),
        augmentation=config.get("augmentation", True) is not False,
        seed=config.get("seed", 0),
    )


def search_space(overrides):
    """``keras_tuner.HyperParameters`` from a config's ``search_space`` mapping.

    Each entry is a fixed value (``strategy: full``), a list of choices
    (``head_units: [0, 32]``) or a range ``{min, max, step, sampling}`` (an integer
    range when ``min`` and ``max`` are integers and no ``sampling: log`` is given).
    """
    hp = kt.HyperParameters()
    for name, value in (overrides or {}).items():
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"min", "max", "step", "sampling", "default"})
            if unknown or "min" not in value or "max" not in value:
                raise ValueError(
                    f"search_space.{name}: a range needs 'min' and 'max' (and optional 'step', "
                    f"'sampling', 'default'); got {value!r}."
                )
            low, high = value["min"], value["max"]
            sampling = value.get("sampling", "linear")
            integer = isinstance(low, int) and isinstance(high, int) and sampling == "linear"
            kind = hp.Int if integer else hp.Float
            kind(name, low if integer else float(low), high if integer else float(high),
                 step=value.get("step"), sampling=sampling, default=value.get("default"))  # fmt: skip
        elif isinstance(value, list):
            hp.Choice(name, value)
        else:
            hp.Fixed(name, value)
    return hp


def fixed_hyperparameters(values):
    """``keras_tuner.HyperParameters`` holding ``values`` (a dict of hp values) as fixed."""
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, _plain(value))
    return hp


def finetune_config(config, hypermodel, hyperparameters, epochs=None):
    """The ``kerasbrain finetune`` config that trains the trial ``hyperparameters``.

    The tune config's data, backbone, tasks, batch size and seed, in the layout of a
    finetune config (``docs/configs.md``), with the chosen settings where
    ``kerasbrain.transfer.finetune`` takes them (``strategy``, ``finetune.*``,
    ``optimizer.*``, ``data.augment``; ``two_phase`` becomes ``strategy: full`` with
    ``finetune.two_phase: true``) and ``epochs``.
    """
    settings = hypermodel.settings(hyperparameters)
    data = config.get("data") or {}
    if data.get("x", "x") != "x":
        raise ValueError(f"data.x: a finetune config reads volumes from the array 'x'; "
                         f"rename {data['x']!r} in the archive.")
    source = {"npz": data["arrays"]} if "arrays" in data else {"tfrecords": data.get("manifest")}
    exported = {"data": {"train": source, "batch_size": int(config.get("batch_size", 4))}}
    if settings.get("augmentation") is not None:
        exported["data"]["augment"] = settings["augmentation"]
    backbone = {"name": settings["backbone"]}
    for key, target in (("weights", "weights"), ("input_shape", "input_shape"),
                        ("backbone_kwargs", "kwargs")):
        if config.get(key) is not None:
            backbone[target] = config[key]
    exported["backbone"] = backbone
    exported["tasks"] = config.get("tasks")
    strategy = settings["strategy"]
    exported["strategy"] = "full" if strategy == "two_phase" else strategy
    finetune = {"dropout": settings["dropout"]}
    if strategy == "two_phase":
        finetune.update(two_phase=True, head_learning_rate=settings["head_learning_rate"])
    for key in ("trainable_blocks", "head_units", "loss_weights"):
        if settings.get(key):
            finetune[key] = settings[key]
    exported["finetune"] = finetune
    exported["optimizer"] = {"name": "adam", "learning_rate": settings["learning_rate"],
                             "weight_decay": settings["weight_decay"]}
    exported["epochs"] = int(epochs if epochs is not None else config.get("epochs", 10))
    exported["seed"] = int(config.get("seed", 0))
    if config.get("output") is not None:
        exported["output"] = config["output"]
    return _plain(exported)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
