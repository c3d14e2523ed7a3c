"""EfficientNetV2 B0-B3, S, M, L for volumes: Fused-MBConv and MBConv blocks in 3D.

Reference:
    Tan M, Le QV. EfficientNetV2: Smaller Models and Faster Training. ICML 2021.

The graph and layer names are those of ``keras.applications.EfficientNetV2*`` with 3D
layers (``DepthwiseConv2D`` -> ``kerasbrain.layers.DepthwiseConv3D``), so
``weights="imagenet"`` inflates the 2D ImageNet weights layer by layer.

With ``include_preprocessing=True`` the model scales its own inputs, which are expected
in ``[0, 255]``: the B variants use ``Rescaling(1/255)`` and a ``Normalization`` with
ImageNet's statistics (per channel for 3 channels; for other channel counts the RGB
means and variances averaged, the grey-level equivalent), S/M/L use
``Rescaling(1/128, offset=-1)``. ``preprocess_input`` is the identity.
"""

import copy
import math

import keras

from kerasbrain.applications import _common
from kerasbrain.layers import DepthwiseConv3D, FastConv3D

MIN_SIZE = 32  # five stride-2 stages
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)

_KEYS = ("kernel_size", "num_repeat", "input_filters", "output_filters", "expand_ratio",
         "se_ratio", "strides", "conv_type")  # conv_type 1: Fused-MBConv, 0: MBConv
_B_BLOCKS = [
    (3, 1, 32, 16, 1, 0, 1, 1),
    (3, 2, 16, 32, 4, 0, 2, 1),
    (3, 2, 32, 48, 4, 0, 2, 1),
    (3, 3, 48, 96, 4, 0.25, 2, 0),
    (3, 5, 96, 112, 6, 0.25, 1, 0),
    (3, 8, 112, 192, 6, 0.25, 2, 0),
]
DEFAULT_BLOCKS_ARGS = {
    name: [dict(zip(_KEYS, row, strict=True)) for row in rows]
    for name, rows in {
        "efficientnetv2-s": [
            (3, 2, 24, 24, 1, 0, 1, 1),
            (3, 4, 24, 48, 4, 0, 2, 1),
            (3, 4, 48, 64, 4, 0, 2, 1),
            (3, 6, 64, 128, 4, 0.25, 2, 0),
            (3, 9, 128, 160, 6, 0.25, 1, 0),
            (3, 15, 160, 256, 6, 0.25, 2, 0),
        ],
        "efficientnetv2-m": [
            (3, 3, 24, 24, 1, 0, 1, 1),
            (3, 5, 24, 48, 4, 0, 2, 1),
            (3, 5, 48, 80, 4, 0, 2, 1),
            (3, 7, 80, 160, 4, 0.25, 2, 0),
            (3, 14, 160, 176, 6, 0.25, 1, 0),
            (3, 18, 176, 304, 6, 0.25, 2, 0),
            (3, 5, 304, 512, 6, 0.25, 1, 0),
        ],
        "efficientnetv2-l": [
            (3, 4, 32, 32, 1, 0, 1, 1),
            (3, 7, 32, 64, 4, 0, 2, 1),
            (3, 7, 64, 96, 4, 0, 2, 1),
            (3, 10, 96, 192, 4, 0.25, 2, 0),
            (3, 19, 192, 224, 6, 0.25, 1, 0),
            (3, 25, 224, 384, 6, 0.25, 2, 0),
            (3, 7, 384, 640, 6, 0.25, 1, 0),
        ],
        "efficientnetv2-b0": _B_BLOCKS,
        "efficientnetv2-b1": _B_BLOCKS,
        "efficientnetv2-b2": _B_BLOCKS,
        "efficientnetv2-b3": _B_BLOCKS,
    }.items()
}

# constructor suffix: (keras block table, width, depth, 2D default size)
VARIANTS = {
    "B0": ("efficientnetv2-b0", 1.0, 1.0, 224),
    "B1": ("efficientnetv2-b1", 1.0, 1.1, 240),
    "B2": ("efficientnetv2-b2", 1.1, 1.2, 260),
    "B3": ("efficientnetv2-b3", 1.2, 1.4, 300),
    "S": ("efficientnetv2-s", 1.0, 1.0, 384),
    "M": ("efficientnetv2-m", 1.0, 1.0, 480),
    "L": ("efficientnetv2-l", 1.0, 1.0, 480),
}

CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    filters *= width_coefficient
    minimum_depth = min_depth or depth_divisor
    return int(max(minimum_depth, int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def round_repeats(repeats, depth_coefficient):
    return int(math.ceil(depth_coefficient * repeats))


def MBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1,
                se_ratio=0.0, bn_momentum=0.9, activation="swish", survival_probability=0.8,
                name=""):
    """MBConv: expand (1x1x1) -> depthwise -> squeeze-excite -> project, residual."""

    def apply(inputs):
        filters = input_filters * expand_ratio
        if expand_ratio != 1:
            x = FastConv3D(
                filters, 1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                padding="same", use_bias=False, name=f"{name}expand_conv",
            )(inputs)
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = keras.layers.Activation(activation, name=f"{name}expand_activation")(x)
        else:
            x = inputs

        x = DepthwiseConv3D(
            kernel_size, strides=strides, depthwise_initializer=CONV_KERNEL_INITIALIZER,
            padding="same", use_bias=False, name=f"{name}dwconv2",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}bn")(x)
        x = keras.layers.Activation(activation, name=f"{name}activation")(x)

        if 0 < se_ratio <= 1:
            x = _squeeze_excite(x, input_filters, filters, se_ratio, activation, name)

        x = FastConv3D(
            output_filters, 1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
            padding="same", use_bias=False, name=f"{name}project_conv",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}project_bn")(x)
        if strides == 1 and input_filters == output_filters:
            if survival_probability:
                x = keras.layers.Dropout(
                    survival_probability, noise_shape=(None, 1, 1, 1, 1), name=f"{name}drop"
                )(x)
            x = keras.layers.Add(name=f"{name}add")([x, inputs])
        return x

    return apply


def FusedMBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1,
                     se_ratio=0.0, bn_momentum=0.9, activation="swish",
                     survival_probability=0.8, name=""):
    """Fused-MBConv: a full 3x3x3 expansion conv in place of expand + depthwise."""

    def apply(inputs):
        filters = input_filters * expand_ratio
        if expand_ratio != 1:
            x = FastConv3D(
                filters, kernel_size, strides=strides, kernel_initializer=CONV_KERNEL_INITIALIZER,
                padding="same", use_bias=False, name=f"{name}expand_conv",
            )(inputs)
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = keras.layers.Activation(activation, name=f"{name}expand_activation")(x)
        else:
            x = inputs

        if 0 < se_ratio <= 1:
            x = _squeeze_excite(x, input_filters, filters, se_ratio, activation, name)

        x = FastConv3D(
            output_filters,
            1 if expand_ratio != 1 else kernel_size,
            strides=1 if expand_ratio != 1 else strides,
            kernel_initializer=CONV_KERNEL_INITIALIZER,
            padding="same", use_bias=False, name=f"{name}project_conv",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}project_bn")(x)
        if expand_ratio == 1:
            x = keras.layers.Activation(activation, name=f"{name}project_activation")(x)
        if strides == 1 and input_filters == output_filters:
            if survival_probability:
                x = keras.layers.Dropout(
                    survival_probability, noise_shape=(None, 1, 1, 1, 1), name=f"{name}drop"
                )(x)
            x = keras.layers.Add(name=f"{name}add")([x, inputs])
        return x

    return apply


def _squeeze_excite(x, input_filters, filters, se_ratio, activation, name):
    filters_se = max(1, int(input_filters * se_ratio))
    se = keras.layers.GlobalAveragePooling3D(name=f"{name}se_squeeze")(x)
    se = keras.layers.Reshape((1, 1, 1, filters), name=f"{name}se_reshape")(se)
    se = FastConv3D(
        filters_se, 1, padding="same", activation=activation,
        kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_reduce",
    )(se)
    se = FastConv3D(
        filters, 1, padding="same", activation="sigmoid",
        kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_expand",
    )(se)
    return keras.layers.Multiply(name=f"{name}se_excite")([x, se])


def EfficientNetV2(
    width_coefficient, depth_coefficient, dropout_rate=0.2, drop_connect_rate=0.2,
    depth_divisor=8, min_depth=8, bn_momentum=0.9, activation="swish",
    blocks_args="efficientnetv2-b0", name="efficientnetv2", include_top=True,
    weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
    classifier_activation="softmax", include_preprocessing=True, constructor_2d=None,
    remat=None,
):
    """Build a 3D EfficientNetV2 from scaling coefficients (see ``EfficientNetV2B0``).

    ``blocks_args`` is a list of block dicts or the name of a Keras table
    (``"efficientnetv2-b0"`` ... ``"efficientnetv2-l"``).
    """
    family = name
    preprocessing_kind = "imagenet" if "-b" in str(blocks_args) else "tf"
    if isinstance(blocks_args, str):
        blocks_args = DEFAULT_BLOCKS_ARGS[blocks_args]
    if weights == "imagenet" and constructor_2d is None:
        raise ValueError(f"{family}: weights='imagenet' needs one of the named variants.")
    spec, weights_file = _common.resolve_weights(weights, architecture=family)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    _common.check_weights_args(weights, include_top, classes, input_shape, family)
    channels = input_shape[-1]

    def filters_of(n):
        return round_filters(n, width_coefficient, min_depth, depth_divisor)

    with _common.remat_scope(remat):
        img_input = _common.model_input(input_tensor, input_shape)
        x = img_input
        if include_preprocessing:
            if preprocessing_kind == "imagenet":
                x = keras.layers.Rescaling(scale=1.0 / 255, name="rescaling")(x)
                if channels == 3:
                    mean, variance = IMAGENET_MEAN_RGB, [s**2 for s in IMAGENET_STDDEV_RGB]
                else:
                    mean = [sum(IMAGENET_MEAN_RGB) / 3.0] * channels
                    variance = [sum(s**2 for s in IMAGENET_STDDEV_RGB) / 3.0] * channels
                x = keras.layers.Normalization(
                    mean=list(mean), variance=list(variance), axis=-1, name="normalization"
                )(x)
            else:
                x = keras.layers.Rescaling(scale=1.0 / 128.0, offset=-1, name="rescaling")(x)

        x = FastConv3D(
            filters_of(blocks_args[0]["input_filters"]), 3, strides=2,
            kernel_initializer=CONV_KERNEL_INITIALIZER, padding="same", use_bias=False,
            name="stem_conv",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
        x = keras.layers.Activation(activation, name="stem_activation")(x)

        blocks_args = copy.deepcopy(blocks_args)
        b = 0
        blocks = float(sum(args["num_repeat"] for args in blocks_args))
        for i, args in enumerate(blocks_args):
            args["input_filters"] = filters_of(args["input_filters"])
            args["output_filters"] = filters_of(args["output_filters"])
            block = {0: MBConvBlock, 1: FusedMBConvBlock}[args.pop("conv_type")]
            repeats = round_repeats(args.pop("num_repeat"), depth_coefficient)
            for j in range(repeats):
                if j > 0:
                    args["strides"] = 1
                    args["input_filters"] = args["output_filters"]
                x = block(
                    activation=activation,
                    bn_momentum=bn_momentum,
                    survival_probability=drop_connect_rate * b / blocks,
                    name=f"block{i + 1}{chr(j + 97)}_",
                    **args,
                )(x)
                b += 1

        x = FastConv3D(
            filters_of(1280), 1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
            padding="same", use_bias=False, name="top_conv",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name="top_bn")(x)
        x = keras.layers.Activation(activation, name="top_activation")(x)

        if include_top:
            x = _common.global_pool(x, "avg", name="")
            if dropout_rate > 0:
                x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
            x = keras.layers.Dense(
                classes, activation=classifier_activation,
                kernel_initializer=DENSE_KERNEL_INITIALIZER,
                bias_initializer=keras.initializers.Constant(0.0), name="predictions",
            )(x)
        else:
            x = _common.global_pool(x, pooling, name="")

    model = keras.Model(_common.model_inputs_for(input_tensor, img_input), x, name=name)
    if include_preprocessing is not True:
        constructor_2d = _common.named_constructor(
            constructor_2d, f"{constructor_2d.__name__}_nopreprocessing",
            include_preprocessing=include_preprocessing,
        )
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, constructor_2d
    )


def _variant(suffix):
    table, width, depth, size = VARIANTS[suffix]
    name = f"EfficientNetV2{suffix}"
    return _common.variant(
        EfficientNetV2, name, _common.variant_docstring(
            name, "global average pooling, dropout and the dense classifier",
            "        include_preprocessing: whether the model scales its inputs (``[0, 255]`` in).\n"
            "        name: model name.\n", size=size), (width, depth),
        default_name=table, extra_args=(("include_preprocessing", True, "classifier_activation"),),
        keywords=(("remat", None),), blocks_args=table,
        constructor_2d=getattr(keras.applications, name),
    )


EfficientNetV2B0 = _variant("B0")
EfficientNetV2B1 = _variant("B1")
EfficientNetV2B2 = _variant("B2")
EfficientNetV2B3 = _variant("B3")
EfficientNetV2S = _variant("S")
EfficientNetV2M = _variant("M")
EfficientNetV2L = _variant("L")


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor) for ``weights``: ``"imagenet"``: nothing, the
    model scales its own inputs (intensities in ``[0, 255]``); a registry or preset name:
    its preset's scaling. Returns float32."""
    return _common.preprocess(x, weights, None)


decode_predictions = _common.imagenet_decode
