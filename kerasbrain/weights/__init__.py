"""Pretrained weights: the registry, verified downloads into the Keras cache, and
converters from published checkpoints (PyTorch, legacy Keras HDF5, TF checkpoints)."""

from kerasbrain.weights.registry import REGISTRY, FileSpec, WeightSpec, get_spec, register

__all__ = ["REGISTRY", "FileSpec", "WeightSpec", "get_spec", "register"]
