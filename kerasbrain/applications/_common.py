"""Checks shared by every 3D application: input shapes, weights arguments, pooling."""

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


def is_weights_path(weights):
    """True when ``weights`` names a local file rather than a registry entry."""
    return isinstance(weights, (str, os.PathLike)) and (
        os.path.sep in str(weights) or os.path.exists(weights)
    )
