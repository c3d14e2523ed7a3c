"""Pretrained weights: the registry, verified downloads into the Keras cache, and
converters from published checkpoints (PyTorch, legacy Keras HDF5, TF checkpoints).

``convert`` builds the model a checkpoint converts into, so it lives with the
architectures (`kerasbrain.applications.checkpoints`) and is imported from there on use.
"""

import importlib

from kerasbrain.weights.download import DownloadError, IntegrityError, get_file
from kerasbrain.weights.loading import checkpoint_config, load_weights
from kerasbrain.weights.registry import (
    REGISTRY,
    FileSpec,
    WeightSpec,
    get_spec,
    list_weights,
    register,
)
from kerasbrain.weights.torch_pickle import CheckpointError

__all__ = [
    "REGISTRY",
    "CheckpointError",
    "DownloadError",
    "FileSpec",
    "IntegrityError",
    "WeightSpec",
    "checkpoint_config",
    "convert",
    "get_file",
    "get_spec",
    "list_weights",
    "load_weights",
    "register",
]


def __getattr__(name):
    if name == "convert":
        return importlib.import_module("kerasbrain.applications.checkpoints").convert
    raise AttributeError(f"module 'kerasbrain.weights' has no attribute {name!r}")
