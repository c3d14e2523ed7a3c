"""MobileNetV2 for volumes: inverted residual blocks with 3D depthwise convolutions.

Reference:
    Sandler M, Howard A, Zhu M, Zhmoginov A, Chen L-C. MobileNetV2: Inverted Residuals and
    Linear Bottlenecks. CVPR 2018.

The graph and layer names are those of ``keras.applications.MobileNetV2`` with every 2D
layer replaced by its 3D counterpart (``DepthwiseConv2D`` by
``kerasbrain.layers.DepthwiseConv3D``), so ``weights="imagenet"`` inflates the 2D
ImageNet weights layer by layer. Inputs are channels-last volumes ``(x, y, z, channels)``.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers import DepthwiseConv3D, FastConv3D

MIN_SIZE = 32  # five stride-2 stages
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def MobileNetV2(
    input_shape=None, alpha=1.0, include_top=True, weights=None, input_tensor=None,
    pooling=None, classes=1000, classifier_activation="softmax", name=None, *, remat=None,
):
    """Instantiate the 3D MobileNetV2 architecture.

    Args:
        input_shape: ``(x, y, z, channels)``, every spatial size at least 32. Defaults to
            ``(160, 192, 160, 1)``.
        alpha: width multiplier (ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
        include_top: whether to include global average pooling and the dense classifier.
        weights: ``None`` (random), ``"imagenet"`` (the 2D ImageNet weights for this
            ``alpha`` inflated to 3D, cached; with the top the input needs 3 channels), a
            registry name or the path of a weights file.
        input_tensor: optional Keras tensor to use as the model input.
        pooling: without the top: ``None`` (5D map), ``"avg"`` or ``"max"``.
        classes: number of classes of the top.
        classifier_activation: activation of the top (``None`` for logits).
        name: model name, default ``"mobilenetv2_{alpha:0.2f}"``.
        remat: rematerialisation (gradient checkpointing: activations recomputed in the
            backward pass, less memory on full-size volumes for about one more forward
            pass of compute): ``None``, ``True``/``"full"``, ``"activations"`` or a
            ``keras.RematScope`` (see ``_common.remat_scope``).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else
        ``(batch, x/32, y/32, z/32, 1280)`` or pooled ``(batch, 1280)`` (1280 grows with
        ``alpha > 1``).
    """
    if weights == "imagenet" and alpha not in IMAGENET_ALPHAS:
        raise ValueError(
            f"MobileNetV2: ImageNet weights exist for alpha in {IMAGENET_ALPHAS}; got alpha={alpha}."
        )
    spec, weights_file = _common.resolve_weights(weights, architecture="mobilenet_v2")
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, "MobileNetV2")
    _common.check_weights_args(weights, include_top, classes, input_shape, "MobileNetV2")
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}"

    with _common.remat_scope(remat):
        img_input = _common.model_input(input_tensor, input_shape)
        first_block_filters = _make_divisible(32 * alpha, 8)
        x = FastConv3D(
            first_block_filters, 3, strides=2, padding="same", use_bias=False, name="Conv1"
        )(img_input)
        x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
        x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)

        blocks = [  # (filters, stride, expansion) per block_id
            (16, 1, 1),
            (24, 2, 6), (24, 1, 6),
            (32, 2, 6), (32, 1, 6), (32, 1, 6),
            (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
            (96, 1, 6), (96, 1, 6), (96, 1, 6),
            (160, 2, 6), (160, 1, 6), (160, 1, 6),
            (320, 1, 6),
        ]  # fmt: skip
        for block_id, (filters, stride, expansion) in enumerate(blocks):
            x = _inverted_res_block(x, expansion, stride, alpha, filters, block_id)

        # No alpha below 1 on the last conv (as in the paper).
        last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
        x = FastConv3D(last_block_filters, 1, use_bias=False, name="Conv_1")(x)
        x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
        x = keras.layers.ReLU(6.0, name="out_relu")(x)

        if include_top:
            x = _common.global_pool(x, "avg", name="")
            x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
        else:
            x = _common.global_pool(x, pooling, name="")

    model = keras.Model(_common.model_inputs_for(input_tensor, img_input), x, name=name)
    constructor_2d = _common.named_constructor(
        keras.applications.MobileNetV2, f"MobileNetV2_alpha{alpha:0.2f}", alpha=alpha
    )
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, constructor_2d
    )


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """Expand (1x1x1) -> depthwise 3x3x3 -> project (1x1x1), residual when shapes match."""
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"

    if block_id:
        x = FastConv3D(
            expansion * in_channels, 1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = keras.layers.BatchNormalization(
            epsilon=1e-3, momentum=0.999, name=f"{prefix}expand_BN"
        )(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"

    if stride == 2:
        x = keras.layers.ZeroPadding3D(
            padding=_common.correct_pad(x, 3), name=f"{prefix}pad"
        )(x)
    x = DepthwiseConv3D(
        3,
        strides=stride,
        use_bias=False,
        padding="same" if stride == 1 else "valid",
        name=f"{prefix}depthwise",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=1e-3, momentum=0.999, name=f"{prefix}depthwise_BN"
    )(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)

    x = FastConv3D(
        pointwise_filters, 1, padding="same", use_bias=False, name=f"{prefix}project"
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=1e-3, momentum=0.999, name=f"{prefix}project_BN"
    )(x)
    if in_channels == pointwise_filters and stride == 1:
        return keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _make_divisible(v, divisor, min_value=None):
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10%
        new_v += divisor
    return new_v


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor ``(..., x, y, z, channels)``) for ``weights``:
    ``"imagenet"``: intensities in ``[0, 255]`` scaled to ``[-1, 1]`` (keras' ``"tf"``
    mode, ``x / 127.5 - 1``); a registry or preset name: its preset's scaling."""
    return _common.preprocess(x, weights, "tf")


decode_predictions = _common.imagenet_decode
