"""Tuning configs: from a YAML/JSON config to a hypermodel and a search space, and from the
best hyperparameters back to a ``kerasbrain finetune`` config.

A ``kerasbrain tune`` config is a ``kerasbrain finetune`` config (data, backbone,
weights, tasks, epochs, batch size, output) plus the search: ``tuner``, ``budget``,
``objective``, ``folds``, ``strategies`` and ``search_space``. The exported config is
the same file with the search keys removed and the best settings filled in, so
``kerasbrain finetune best_config.yaml`` trains the chosen model.
"""

import json
import os

import keras_tuner as kt
import numpy as np
import yaml

from kerasbrain.files import write_text

#: keys of a tune config that describe the search, not the model
SEARCH_KEYS = ("tuner", "budget", "objective", "folds", "strategies", "search_space",
               "max_trainable_blocks", "stratify", "retrain")  # fmt: skip
#: hyperparameters that become top-level keys of the finetune config
SETTINGS = ("backbone", "strategy", "trainable_blocks", "learning_rate", "head_learning_rate",
            "dropout", "weight_decay", "head_units", "augmentation", "loss_weights")  # fmt: skip


def read_config(path):
    """Load a YAML or JSON config file into a dict (error names the file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such config file.")
    with open(path) as f:
        text = f.read()
    try:
        config = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level.")
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
    """The ``kerasbrain finetune`` config for the trial ``hyperparameters``.

    The tune config without its search keys, with the chosen settings as top-level
    keys named as ``kerasbrain.transfer.finetune``'s arguments (``two_phase`` becomes
    ``strategy: full`` with ``two_phase: true``), ``hyperparameters`` (the raw KerasTuner values, enough to rebuild the same
    model) and ``epochs``.
    """
    settings = hypermodel.settings(hyperparameters)
    exported = {k: v for k, v in config.items() if k not in SEARCH_KEYS}
    exported.pop("augmentation", None)
    for key in SETTINGS:
        if key in settings:
            exported[key] = settings[key]
    if exported.get("strategy") == "two_phase":  # as kerasbrain.transfer.finetune takes it
        exported["strategy"] = "full"
        exported["two_phase"] = True
    if epochs is not None:
        exported["epochs"] = int(epochs)
    exported["hyperparameters"] = {
        k: v for k, v in hyperparameters.values.items() if not k.startswith("tuner/")
    }
    return _plain(exported)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
