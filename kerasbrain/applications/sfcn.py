"""SFCN: the Simple Fully Convolutional Network for brain MRI (Peng et al. 2021).

Reference:
    Peng H, Gong W, Beckmann CF, Vedaldi A, Smith SM. Accurate brain age prediction with
    lightweight deep neural networks. Medical Image Analysis 68:101871 (2021).
    Leonardsen EH et al. Deep neural networks learn general and clinically relevant
    representations of the ageing brain. NeuroImage 256:119210 (2022) (pyment heads).

The trunk is five blocks of Conv3D 3x3x3 -> BatchNorm -> ReLU -> MaxPool 2 and a
1x1x1 Conv3D -> BatchNorm -> ReLU block; ReLU before pooling gives the same numbers as
Peng's pooling before ReLU. The 2x2x2 max pooling is `kerasbrain.layers.FastMaxPooling3D`
(the numbers of ``MaxPooling3D``, a faster gradient). Inputs are channels-last volumes
``(x, y, z, 1)``.
"""

import keras
import numpy as np

from kerasbrain.applications import _common
from kerasbrain.applications.pretrained import with_preset
from kerasbrain.layers.batchnorm import FastBatchNormalization
from kerasbrain.layers.conv import FastConv3D
from kerasbrain.layers.pooling import FastMaxPooling3D
from kerasbrain.weights.presets import MULTITASK_TASKS

DEFAULT_FILTERS = (32, 64, 128, 256, 256, 64)
DEFAULT_INPUT_SHAPE = (160, 192, 160, 1)
MIN_SIZE = 32  # five 2x poolings
#: BatchNorm momentum (Keras convention) of Peng et al.'s training: PyTorch's default 0.1
BN_MOMENTUM = 0.9
HEADS = ("soft_classification", "categorical", "regression", "ranking", "binary", "multitask")
#: pyment v4's multi-task outputs and their activations (``head="multitask"``)
MULTITASK_ACTIVATIONS = {task["name"]: "sigmoid" if task["type"] == "binary" else None
                         for task in MULTITASK_TASKS}


def SFCN(
    include_top=True, weights="ukb", input_tensor=None, input_shape=None, pooling=None,
    classes=None, classifier_activation="auto", name="sfcn", *, head=None, filters=None,
    dropout=None, bn_epsilon=None, bn_momentum=BN_MOMENTUM, output_range=None,
):
    """Instantiate the SFCN architecture, optionally with published brain-MRI weights.

    Args:
        include_top: whether to include the prediction head (global average pooling,
            dropout and a dense output layer).
        weights: ``None`` (random), a registry name (see
            ``kerasbrain.weights.list_weights()``, e.g. ``"ukb"``, ``"brain-age-2022"``,
            ``"brain-age-2022:ranking"``), or a path to a weights file (``.weights.h5``,
            legacy Keras ``.h5``, PyTorch ``.p/.pt/.pth``). Registry weights fix the
            architecture details (filters, BatchNorm epsilon, head, classes, input shape).
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(x, y, z, channels)``. Defaults to the weights' input shape, else
            ``(160, 192, 160, 1)``. Without the top, any size of at least 32 voxels per
            axis works.
        pooling: with ``include_top=False``: ``None`` (5D feature map), ``"avg"`` or
            ``"max"`` (2D features ``(batch, filters[-1])``).
        classes: number of outputs of the head (soft classification: number of bins).
        classifier_activation: activation of the head's output; ``"auto"`` picks the
            head's own (softmax, sigmoid, or the clamped linear output of regression).
            ``None`` returns logits.
        name: model name.
        head: one of ``"soft_classification"`` (Peng brain age over bins),
            ``"categorical"``, ``"regression"`` (clamped to ``output_range``),
            ``"ranking"`` (ordinal, sigmoid per threshold), ``"binary"``, or
            ``"multitask"`` (pyment v4: one named ``Dense(1)`` output per phenotype, a dict
            ``{"age", "sex", "handedness", "bmi", "fluid_intelligence", "neuroticism"}``;
            sex and handedness are sigmoid probabilities, the rest linear).
        filters: six channel widths, default ``(32, 64, 128, 256, 256, 64)``.
        dropout: dropout rate before the head (default 0.5).
        bn_epsilon: BatchNorm epsilon (Peng's PyTorch models 1e-5, Keras default 1e-3).
        bn_momentum: BatchNorm momentum in training (Keras convention: the weight of the
            old moving statistics). 0.9, as Peng et al. trained SFCN (PyTorch's default
            0.1); Keras' default is 0.99. It does not enter inference: published weights
            give the same outputs.
        output_range: ``(low, high)`` for the regression head's clamp; registry weights
            without a clamp (``reg-2025``) give a linear output.

    Returns:
        A ``keras.Model`` (with registry weights a `PretrainedModel` whose ``preset`` names
        them). With the top: ``(batch, classes)`` (``multitask``: a dict of
        ``(batch, 1)`` outputs); without: the feature map
        ``(batch, x/32, y/32, z/32, filters[-1])`` or pooled ``(batch, filters[-1])``.
    """
    from kerasbrain import weights as weights_lib

    spec = None
    weights_file = None
    if weights is not None and not _common.is_weights_path(weights):
        spec = weights_lib.get_spec(weights, architecture="sfcn", head=head)
    elif weights is not None:
        weights_file = weights

    if spec is not None:
        config = dict(spec.config)
    elif weights_file is not None:
        config = weights_lib.checkpoint_config(weights_file)
    else:
        config = {}
    head = head or config.get("head", "soft_classification")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}.")
    filters = tuple(filters or config.get("filters", DEFAULT_FILTERS))
    if len(filters) != 6:
        raise ValueError(f"filters must have 6 entries (blocks 0-5), got {filters}.")
    dropout = config.get("dropout", 0.5) if dropout is None else dropout
    bn_epsilon = config.get("bn_epsilon", 1e-3) if bn_epsilon is None else bn_epsilon
    if output_range is None:
        output_range = config.get("output_range", (3.0, 95.0))
    if output_range is None and head == "regression" and classifier_activation == "auto":
        classifier_activation = None  # published regression heads without a clamp
    output_range = tuple(output_range) if output_range is not None else None
    if classes is None:
        classes = config.get("classes") or _default_classes(head)
    if include_top and head in ("soft_classification", "categorical") and classes < 2:
        raise ValueError(
            f"SFCN: head={head!r} needs at least 2 classes, got {classes}; use "
            "head='regression' or head='binary' for one output."
        )
    _common.check_registry_head(spec, include_top, classes, "SFCN")
    default_shape = tuple(config.get("input_shape", DEFAULT_INPUT_SHAPE))
    input_shape = _common.obtain_input_shape(
        input_shape,
        default_shape,
        MIN_SIZE,
        include_top,
        weights_fixed_shape=spec is not None and config.get("fixed_shape", False),
        name="SFCN",
    )

    inputs = _common.model_input(input_tensor, input_shape)
    x = inputs
    for i, width in enumerate(filters[:5]):
        x = FastConv3D(width, 3, padding="same", name=f"block{i}_conv")(x)
        x = FastBatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum,
                                            name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = FastMaxPooling3D(2, name=f"block{i}_pool")(x)
    x = FastConv3D(filters[5], 1, name="block5_conv")(x)
    x = FastBatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, name="block5_bn")(x)
    x = keras.layers.ReLU(name="block5_relu")(x)

    if include_top:
        x = _common.global_pool(x, config.get("pooling", "avg"), name="")
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        if head == "multitask":
            x = _multitask_head(x, config.get("outputs", tuple(MULTITASK_ACTIVATIONS)),
                                classifier_activation)
        else:
            x = _head(x, head, classes, classifier_activation, output_range)
    else:
        x = _common.global_pool(x, pooling, name="")

    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)

    if spec is not None or weights_file is not None:
        weights_lib.load_weights(model, spec if spec is not None else weights_file,
                                 include_top=include_top, architecture="sfcn",
                                 build=checkpoint_model)
    return with_preset(model, spec)


def checkpoint_model(architecture, config, include_top):
    """The SFCN a published checkpoint converts into (input size left open)."""
    kwargs = {k: config[k] for k in ("filters", "bn_epsilon", "output_range") if k in config}
    if include_top:
        classes = config.get("classes", 1)
        kwargs["classes"] = classes
        kwargs["head"] = config.get("head") or ("regression" if classes == 1 else "categorical")
    return SFCN(include_top=include_top, weights=None, input_shape=(None, None, None, 1), **kwargs)


def _default_classes(head):
    return {"soft_classification": 40, "categorical": 2, "ranking": 91,
            "multitask": len(MULTITASK_ACTIVATIONS)}.get(head, 1)


def _multitask_head(x, outputs, activation):
    """One named ``Dense(1)`` per phenotype; ``activation="auto"`` uses each one's own."""
    return {
        name: keras.layers.Dense(
            1,
            activation=MULTITASK_ACTIVATIONS.get(name) if activation == "auto" else activation,
            name=name,
            dtype="float32",
        )(x)
        for name in outputs
    }


def _head(x, head, classes, activation, output_range):
    """The dense output layer ``predictions`` (plus the clamp of a regression head).

    Head layers compute in float32, so outputs stay float32 under mixed precision.
    """
    if activation == "auto":
        activation = {
            "soft_classification": "softmax",
            "categorical": "softmax",
            "ranking": "sigmoid",
            "binary": "sigmoid",
            "regression": "clamp",
        }[head]
    if head == "regression":
        x = keras.layers.Dense(classes, name="predictions", dtype="float32")(x)
        if activation == "clamp":
            low, high = output_range
            x = keras.layers.ReLU(max_value=high - low, name="clamp", dtype="float32")(x)
            x = keras.layers.Rescaling(1.0, offset=low, name="offset", dtype="float32")(x)
        elif activation is not None:
            x = keras.layers.Activation(activation, name="activation", dtype="float32")(x)
        return x
    return keras.layers.Dense(
        classes, activation=activation, name="predictions", dtype="float32"
    )(x)


# ---------------------------------------------------------------------------------------
# Pre- and post-processing that belong to each weight set.


def preprocess_input(x, weights="ukb"):
    """Prepare volumes the way the given weights were trained (their preset's intensity
    scaling and, for a volume on the preset's input grid, its crop).

    Args:
        x: one volume ``(x, y, z)`` / ``(x, y, z, 1)`` or a batch ``(n, x, y, z, 1)``
            (NumPy or backend tensor), already in the weights' space (MNI-registered etc.,
            see the preset's ``requires``).
        weights: registry name whose preprocessing to apply. ``"ukb"``/``"ukb-sex"``:
            each volume divided by its own mean, then centre-cropped from the MNI 1 mm
            grid 182x218x182 to 160x192x160 (``[11:171, 13:205, 11:171]``) when given at
            that size. pyment 2022 sets: divided by 255 (cropped ``[6:173, 2:214, 0:160]``
            from 182x218x182). pyment v4 sets (``multi-2025``, ``reg-2025``): intensities
            unchanged; the 224x192x224 crop around the brain of FastSurfer's masked
            ``orig.mgz`` comes from ``kerasbrain.data.Preprocessor.for_weights("multi-2025")``.

    Returns:
        float32 NumPy array, channels-last, batch dimension kept if given.
    """
    from kerasbrain.weights import registry

    preset = registry.get_spec(weights, architecture="sfcn").preprocessing
    x = np.asarray(keras.ops.convert_to_numpy(x), dtype="float32")
    squeeze_batch = x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 1 and x.shape[0] != 1)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5:
        raise ValueError(f"preprocess_input: expected a 3D volume or a 5D batch, got shape {x.shape}.")
    intensity = preset.get("intensity")
    if intensity == "mean":
        mean = x.mean(axis=(1, 2, 3, 4), keepdims=True)
        if np.any(mean == 0):
            raise ValueError("preprocess_input: a volume has mean 0 and cannot be scaled by it.")
        x = x / mean
    elif isinstance(intensity, int | float):
        x = x / float(intensity)
    elif intensity is not None:
        raise ValueError(f"preprocess_input: weights {weights!r} use {intensity!r} intensities; "
                         "use kerasbrain.data.Preprocessor.for_weights() for them.")
    crop = preset.get("crop")
    if not isinstance(crop, str) and crop and x.shape[1:4] == tuple(preset.get("input_shape", ())):
        x = x[:, slice(*crop[0]), slice(*crop[1]), slice(*crop[2])]
    return x[0] if squeeze_batch else x


def decode_predictions(preds, weights="ukb"):
    """Turn raw head outputs into the weights' target units, as the tasks of the weights'
    heads decode them (`kerasbrain.tasks`):

    - soft classification over age bins: expected age ``sum(p * bin_centres)`` (years);
    - ranking: ``low + sum(round(p))`` (years);
    - regression: the (already clamped) value (years);
    - binary: probability of the positive class; categorical: class probabilities;
    - multitask (``multi-2025``): a dict of ``(batch,)`` arrays, age in years, sex and
      handedness as probabilities, the others as the model outputs them.

    Args:
        preds: array ``(batch, classes)`` from the model with its default activation (a
            dict of arrays for ``multitask``).
        weights: registry name whose decoding to use.

    Returns:
        ``(batch,)`` array for scalar targets, else ``(batch, classes)``.
    """
    from kerasbrain import tasks as tasks_lib
    from kerasbrain.weights import registry

    spec = registry.get_spec(weights, architecture="sfcn")
    tasks = [tasks_lib.from_spec(task) for task in spec.tasks]
    if spec.config["head"] == "multitask":
        if not isinstance(preds, dict):
            raise ValueError(
                f"decode_predictions: weights {weights!r} give a dict of outputs "
                f"{tuple(task.name for task in tasks)}; got an array."
            )
        return {task.name: task.decode(preds[task.name]) for task in tasks}
    preds = np.asarray(preds, dtype="float64")
    if preds.ndim == 1:
        preds = preds[None]
    task = tasks[0]
    if task.kind == "categorical":
        return preds  # class probabilities
    if task.kind == "soft_classification" and preds.shape[-1] != task.bins:
        task = tasks_lib.from_spec(spec.tasks[0], bins=preds.shape[-1])
    return task.decode(preds)
