"""Checks shared by every 3D application: input shapes, weights arguments, pooling."""

import contextlib
import os

import keras


def obtain_input_shape(
    input_shape, default_shape, min_size, include_top, weights_fixed_shape=False, name="model"
):
    """Validate a channels-last volume shape ``(x, y, z, channels)`` and fill in defaults.

    Args:
        input_shape: user-given shape or None.
        default_shape: the shape the family (or its weights) was built for.
        min_size: the smallest spatial size per axis the family accepts.
        include_top: whether the classification top is included; a top whose weights fix
            the input size (``weights_fixed_shape``) requires ``default_shape``.
        name: model name used in error messages.

    Returns:
        The shape as a tuple of 4 entries (spatial entries may be None without a top).
    """
    if input_shape is None:
        return tuple(default_shape)
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{name}: input_shape must be (x, y, z, channels) for a channels-last volume, "
            f"got {input_shape}."
        )
    if include_top and weights_fixed_shape and tuple(input_shape[:3]) != tuple(default_shape[:3]):
        raise ValueError(
            f"{name}: include_top=True with these weights needs input_shape "
            f"{tuple(default_shape)}, got {input_shape}. Use include_top=False (with "
            f"pooling='avg' or 'max') to run the backbone on another size."
        )
    for size in input_shape[:3]:
        if size is not None and size < min_size:
            raise ValueError(
                f"{name}: every spatial size must be at least {min_size} voxels; "
                f"got input_shape {input_shape}."
            )
    if input_shape[3] is None or input_shape[3] < 1:
        raise ValueError(f"{name}: input_shape needs a positive channel count, got {input_shape}.")
    return input_shape


def model_input(input_tensor, input_shape, name="volume"):
    """The model's input: ``input_tensor`` wrapped as a Keras input, or a new Input."""
    if input_tensor is None:
        return keras.Input(shape=input_shape, name=name)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape, name=name)
    return input_tensor


def model_inputs_for(input_tensor, fallback):
    """The tensors to pass as ``keras.Model(inputs=...)`` (keras.applications convention)."""
    if input_tensor is not None:
        return keras.utils.get_source_inputs(input_tensor)
    return fallback


def global_pool(x, pooling, name):
    """Apply ``pooling`` in {None, 'avg', 'max'} to a 5D feature map."""
    if pooling is None:
        return x
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling3D(name=f"{name}avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling3D(name=f"{name}max_pool")(x)
    raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")


def correct_pad(inputs, kernel_size):
    """Zero padding ``((x0, x1), (y0, y1), (z0, z1))`` before a stride-2 'valid' conv.

    The 3D form of ``keras.applications.imagenet_utils.correct_pad``: pads
    ``kernel_size // 2`` on the far side and one less on the near side of even axes.
    """
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size,) * 3
    pads = []
    for size, k in zip(inputs.shape[1:4], kernel_size):
        adjust = 1 if size is None else 1 - size % 2
        pads.append((k // 2 - adjust, k // 2))
    return tuple(pads)


REMAT_MODES = (None, False, True, "full", "larger_than", "activations")


def remat_scope(remat):
    """A ``keras.RematScope`` for the layers built inside it (``None``/False: none).

    ``True`` or ``"full"`` recompute every layer's activations in the backward pass;
    ``"larger_than"`` only layers with outputs above 1024 values per sample;
    ``"activations"`` only activation functions. Rematerialisation is a construction-time
    setting: a model loaded from a ``.keras`` file runs without it.
    """
    if remat not in REMAT_MODES:
        raise ValueError(f"remat must be one of {REMAT_MODES}, got {remat!r}.")
    if not remat:
        return contextlib.nullcontext()
    return keras.RematScope(mode="full" if remat is True else remat)


def check_weights_args(family, weights, include_top, classes, imagenet_classes=1000):
    """Validate ``weights`` (None, "imagenet" or an existing file) and ``classes``."""
    if weights is None or weights == "imagenet":
        if weights == "imagenet" and include_top and classes != imagenet_classes:
            raise ValueError(
                f"{family}: weights='imagenet' with include_top=True has a "
                f"{imagenet_classes}-class ImageNet head; got classes={classes}. Use "
                "include_top=False (and put your own head on the features) for other classes."
            )
        return
    if not (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)):
        raise ValueError(
            f"{family}: weights must be None (random), 'imagenet' (2D ImageNet weights "
            f"inflated to 3D) or the path of an existing weights file; got {weights!r}."
        )


def load_weights(model, weights, constructor_2d, **kwargs_2d):
    """Load ``weights`` into ``model``: "imagenet" inflates ``constructor_2d``'s weights.

    Args:
        model: the 3D model.
        weights: None, "imagenet" or a weights file path.
        constructor_2d: the ``keras.applications`` constructor of the 2D twin.
        **kwargs_2d: arguments for ``constructor_2d`` (e.g. ``alpha``, ``include_top``).
    """
    if weights is None:
        return
    if weights == "imagenet":
        from kerasbrain.applications import inflate

        inflate.load_imagenet(model, constructor_2d, **kwargs_2d)
    else:
        model.load_weights(weights)


def is_weights_path(weights):
    """True when ``weights`` names a local file rather than a registry entry."""
    return isinstance(weights, (str, os.PathLike)) and (
        os.path.sep in str(weights) or os.path.exists(weights)
    )
