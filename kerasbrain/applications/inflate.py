"""Inflate 2D weights into 3D models (Carreira & Zisserman 2017, "Quo Vadis, Action
Recognition?"), and the cached ImageNet initialisation of every family.

Rules, for a 2D model and a 3D model built from the same layers:

- layers are paired by name; layers Keras named automatically (``conv2d_3``,
  ``batch_normalization_7``, ...) are paired in order among themselves;
- a 2D kernel ``(kh, kw, cin, cout)`` becomes ``(kh, kw, kd, cin, cout)``: the new last
  spatial axis (z) repeats the 2D kernel ``kd`` times, divided by ``kd`` (``mode="repeat"``),
  so a volume constant along z gives the 2D model's activations at every depth away from
  the z borders; ``mode="centre"`` puts the 2D kernel in the central depth slice and
  zeros elsewhere (each depth slice then sees the 2D model exactly, borders included);
- depthwise kernels ``(kh, kw, channels, multiplier)`` become
  ``(kh, kw, kd, channels, multiplier)`` the same way; a grouped ``Conv2D(groups=C)``
  kernel ``(kh, kw, 1, C)`` meeting a depthwise 3D kernel ``(kh, kw, kd, C, 1)`` is read
  in depthwise layout first;
- a ``Normalization`` layer's RGB statistics ``(3,)`` meeting a volume of ``c != 3``
  channels give each channel their mean;
- the first convolution's RGB kernels ``(..., 3, cout)`` meet a volume of ``c`` channels:
  they are summed over R, G, B and the sum is spread evenly, ``sum / c`` for each of the
  ``c`` channels, so a volume whose channels are equal grey copies sees the summed (grey)
  filter; with ``c == 3`` the RGB kernels are kept as they are;
- every other tensor (BatchNorm statistics, biases, dense layers, embeddings) is copied;
- anything else (a missing layer, another shape) fails naming both layers.
"""

import hashlib
import json
import os
import re

import numpy as np

from kerasbrain.files import atomic_write

MODES = ("repeat", "centre")


def inflate(model_2d, model_3d, mode="repeat"):
    """Copy ``model_2d``'s weights into the matching 3D ``model_3d``, inflating kernels.

    Args:
        model_2d: a built 2D ``keras.Model`` (e.g. from ``keras.applications``).
        model_3d: the 3D model with the same layers (e.g. from
            ``kerasbrain.applications``); its weights are overwritten.
        mode: ``"repeat"`` (kernel repeated along z and divided by its depth) or
            ``"centre"`` (kernel in the central z slice, zeros elsewhere).

    Returns:
        ``model_3d``.

    Raises:
        ValueError: layers that cannot be paired or tensors whose shapes do not follow
            the rules above, naming the layers.
    """
    if mode not in MODES:
        raise ValueError(f"inflate: mode must be one of {MODES}, got {mode!r}.")
    first_conv = True
    for layer_2d, layer_3d in pair_layers(model_2d, model_3d):
        values_2d = layer_2d.get_weights()
        targets = layer_3d.get_weights()
        if len(values_2d) != len(targets):
            raise ValueError(
                f"inflate: layer {layer_2d.name!r} has {len(values_2d)} weight tensors but "
                f"its 3D counterpart {layer_3d.name!r} has {len(targets)}."
            )
        new = []
        is_kernel_layer = any(v.ndim == 4 for v in values_2d)
        for value, target in zip(values_2d, targets, strict=False):
            new.append(_inflate_tensor(value, target.shape, layer_2d, layer_3d, first_conv, mode))
        if is_kernel_layer:
            first_conv = False
        layer_3d.set_weights(new)
    return model_3d


def _inflate_tensor(value, shape, layer_2d, layer_3d, first_conv, mode):
    where = f"layer {layer_2d.name!r} -> {layer_3d.name!r}"
    if value.shape == tuple(shape):
        return value
    if value.shape == (3,) and len(shape) == 1 and type(layer_2d).__name__ == "Normalization":
        # RGB input statistics for a volume of shape[0] channels: their mean per channel.
        return np.full(shape, value.mean(), dtype=value.dtype)
    if (
        value.ndim == 4 and len(shape) == 5 and value.shape[2] == 1 and shape[4] == 1
        and value.shape[3] == shape[3] and shape[3] > 1
    ):
        # A grouped Conv2D(groups=C) kernel (kh, kw, 1, C) onto a DepthwiseConv3D kernel
        # (kh, kw, kd, C, 1): the same per-channel filters in depthwise layout.
        value = value.reshape(value.shape[:2] + (value.shape[3], 1))
    if value.ndim != 4 or len(shape) != 5 or value.shape[:2] != tuple(shape[:2]):
        raise ValueError(
            f"inflate: {where}: cannot map a 2D tensor of shape {value.shape} onto shape "
            f"{tuple(shape)} (expected (kh, kw, cin, cout) -> (kh, kw, kd, cin, cout))."
        )
    if value.shape[3] != shape[4]:
        raise ValueError(
            f"inflate: {where}: output channels differ, {value.shape} vs {tuple(shape)}."
        )
    if value.shape[2] != shape[3]:
        if not (first_conv and value.shape[2] == 3):
            raise ValueError(
                f"inflate: {where}: input channels differ, {value.shape} vs {tuple(shape)}; "
                "only the first convolution's RGB kernels may be summed to another "
                "channel count."
            )
        channels = shape[3]
        grey = value.sum(axis=2, keepdims=True) / channels
        value = np.repeat(grey, channels, axis=2)
    depth = shape[2]
    if mode == "repeat":
        return np.repeat(value[:, :, None], depth, axis=2) / depth
    out = np.zeros(shape, dtype=value.dtype)
    out[:, :, depth // 2] = value
    return out


def _is_auto_name(layer):
    """Whether ``layer.name`` is Keras' automatic name for its class (``conv2d_12``)."""
    name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", type(layer).__name__)
    base = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name) is not None


def _kind(layer):
    """The Keras layer kind without its dimension: ``Conv`` for Conv2D, Conv3D and
    kerasbrain's FastConv3D (the first Keras class of its ancestry)."""
    keras_class = next(c for c in type(layer).__mro__ if c.__module__.startswith("keras."))
    return keras_class.__name__.replace("2D", "").replace("3D", "")


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def pair_layers(model_2d, model_3d):
    """Pairs ``(layer_2d, layer_3d)`` of layers with weights, by name and then by order.

    Explicitly named layers pair by name; automatically named ones (which differ between
    ``Conv2D`` and ``Conv3D``) pair in model order.
    """
    layers_2d = _weighted_layers(model_2d)
    layers_3d = _weighted_layers(model_3d)
    named_2d = {layer.name: layer for layer in layers_2d if not _is_auto_name(layer)}
    pairs, rest_3d, used = [], [], set()
    for layer in layers_3d:
        if not _is_auto_name(layer):
            if layer.name not in named_2d:
                raise ValueError(
                    f"inflate: the 3D model's layer {layer.name!r} has no 2D layer of that "
                    f"name in {model_2d.name!r}."
                )
            pairs.append((named_2d[layer.name], layer))
            used.add(layer.name)
        else:
            rest_3d.append(layer)
    rest_2d = [layer for layer in layers_2d if layer.name not in used and _is_auto_name(layer)]
    unused = [layer.name for layer in layers_2d if not _is_auto_name(layer) and layer.name not in used]
    if unused or len(rest_2d) != len(rest_3d):
        raise ValueError(
            f"inflate: {model_2d.name!r} and {model_3d.name!r} do not match: 2D layers "
            f"without a 3D counterpart {unused[:5]}, {len(rest_2d)} unnamed 2D vs "
            f"{len(rest_3d)} unnamed 3D layers with weights."
        )
    for layer_2d, layer_3d in zip(rest_2d, rest_3d, strict=False):
        if _kind(layer_2d) != _kind(layer_3d):
            raise ValueError(
                f"inflate: layers paired by order differ in kind: {layer_2d.name!r} "
                f"({type(layer_2d).__name__}) vs {layer_3d.name!r} ({type(layer_3d).__name__})."
            )
        pairs.append((layer_2d, layer_3d))
    return pairs


def cache_dir():
    """``$KERAS_HOME/models/kerasbrain`` (``~/.keras`` when ``KERAS_HOME`` is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", "kerasbrain")


def cache_path(model_3d, constructor_2d, include_top, mode="repeat"):
    """Cache file of an inflated model: keyed by the 2D source and every 3D weight shape.

    Spatial input sizes do not enter the key (weights do not depend on them).
    """
    shapes = [list(w.shape) for w in model_3d.weights]
    source = getattr(constructor_2d, "__name__", str(constructor_2d))
    key = json.dumps([source, bool(include_top), mode, shapes])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    top = "top" if include_top else "notop"
    return os.path.join(cache_dir(), f"{source.lower()}_{top}_{mode}_{digest}.weights.h5")


def load_imagenet(model_3d, constructor_2d, include_top=False, mode="repeat"):
    """Initialise ``model_3d`` from the 2D ImageNet weights of ``constructor_2d``, cached.

    Builds ``constructor_2d(include_top=include_top, weights="imagenet")`` (Keras downloads
    and verifies its 2D weights into ``$KERAS_HOME/models`` as usual), inflates it into
    ``model_3d`` and saves the result as ``.weights.h5`` under ``cache_dir()``; later
    calls with the same 3D architecture read that file instead.

    Args:
        model_3d: the 3D model to initialise.
        constructor_2d: a ``keras.applications`` constructor, e.g.
            ``keras.applications.ResNet50``.
        include_top: whether the 1000-class top is part of both models.
        mode: see ``inflate``.

    Returns:
        ``model_3d``.
    """
    path = cache_path(model_3d, constructor_2d, include_top, mode)
    if os.path.exists(path):
        model_3d.load_weights(path)
        return model_3d
    model_2d = constructor_2d(include_top=include_top, weights="imagenet")
    inflate(model_2d, model_3d, mode=mode)
    with atomic_write(path) as tmp:
        model_3d.save_weights(tmp)
    return model_3d
