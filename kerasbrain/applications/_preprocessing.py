"""What the families' ``preprocess_input`` and ``decode_predictions`` share: keras.applications'
ImageNet modes extended to volumes, and the scaling of a registry preset."""

import keras

#: ImageNet channel statistics of keras.applications' preprocessing modes (RGB order)
_IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
_TORCH_STD_RGB = (0.229, 0.224, 0.225)


def as_array(x):
    """``x`` (NumPy array, list or backend tensor) as a float32 NumPy array."""
    import numpy as np

    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float32")


def preset_preprocess(x, weights):
    """``preprocess_input`` of registry weights: each volume of ``x`` (``(x, y, z[, c])`` or a
    batch ``(n, x, y, z, c)``) scaled as the weights' preset says (`kerasbrain.data.normalise`).
    """
    import numpy as np

    from kerasbrain.data.preprocess import normalise
    from kerasbrain.data.presets import get_preset

    intensity = get_preset(weights).get("intensity")
    x = as_array(x)
    batch = x if x.ndim == 5 else x[None]
    out = np.stack([normalise(volume, intensity, f"preprocess_input: volume {i}")
                    for i, volume in enumerate(batch)]).astype("float32")
    return out if x.ndim == 5 else out[0]


def imagenet_preprocess(x, mode):
    """keras.applications' ImageNet preprocessing, extended to volumes of any channel count.

    Expects intensities in ``[0, 255]`` (rescale MRI first, e.g. ``255 * x / x.max()``).
    With 3 channels (RGB) it equals ``keras.applications.imagenet_utils.preprocess_input``
    on each depth slice; with other channel counts the per-channel statistics are their
    mean over R, G, B, matching the first convolution whose RGB kernels were summed.

    Args:
        x: array ``(..., channels)``.
        mode: ``"caffe"`` (subtract the ImageNet mean, BGR order for 3 channels, no
            scaling), ``"tf"`` (scale to ``[-1, 1]``) or ``"torch"`` (scale to ``[0, 1]``,
            then normalise with ImageNet mean and standard deviation).

    Returns:
        float32 array of the same shape.
    """
    import numpy as np

    x = as_array(x)
    rgb = x.shape[-1] == 3
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":
        if rgb:
            x = x[..., ::-1]
            mean = np.asarray(_IMAGENET_MEAN_RGB[::-1], "float32")
        else:
            mean = np.float32(np.mean(_IMAGENET_MEAN_RGB))
        return x - mean
    if mode == "torch":
        mean = np.asarray(_TORCH_MEAN_RGB, "float32")
        std = np.asarray(_TORCH_STD_RGB, "float32")
        if not rgb:
            mean, std = np.float32(mean.mean()), np.float32(std.mean())
        return (x / 255.0 - mean) / std
    raise ValueError(f"mode must be 'caffe', 'tf' or 'torch', got {mode!r}.")


def imagenet_decode(preds, top=5):
    """Top ImageNet classes of a 1000-class head (``keras.applications`` decoding).

    Delegates to ``keras.applications.imagenet_utils.decode_predictions``, which downloads
    the class index once into the Keras cache.
    """
    import numpy as np

    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "decode_predictions: expects the (batch, 1000) output of an ImageNet top, got "
            f"shape {preds.shape}. Heads trained for other targets are decoded by the task "
            "that trained them (kerasbrain.tasks)."
        )
    return keras.applications.imagenet_utils.decode_predictions(preds, top=top)


def preprocess(x, weights, mode):
    """The families' ``preprocess_input``: ``weights="imagenet"`` -> keras.applications'
    ImageNet ``mode`` (``None``: the model scales its own ``[0, 255]`` inputs, so ``x`` is
    returned as float32); a registry or preset name -> its preset's scaling
    (`preset_preprocess`). ``x`` may be a NumPy array or a backend tensor."""
    if weights != "imagenet":
        return preset_preprocess(x, weights)
    return as_array(x) if mode is None else imagenet_preprocess(x, mode)
