"""EfficientNet B0-B7 for volumes: MBConv blocks with 3D depthwise convolutions and SE.

Reference:
    Tan M, Le QV. EfficientNet: Rethinking Model Scaling for Convolutional Neural
    Networks. ICML 2019.

The graph and layer names are those of ``keras.applications.EfficientNetB*`` with 3D
layers (``DepthwiseConv2D`` -> ``kerasbrain.layers.DepthwiseConv3D``), so
``weights="imagenet"`` inflates the 2D ImageNet weights layer by layer.

Input scaling is part of the model, as in Keras: ``Rescaling(1/255)`` then a
``Normalization`` layer with one mean/variance per input channel (loaded with the
weights; inflating ImageNet weights into a volume of other than 3 channels gives each
channel the mean of the RGB means and variances), and with ``weights="imagenet"`` the extra ``Rescaling(1/sqrt(std))`` of the
Keras port (the mean ImageNet standard deviation for single-channel volumes). The model
therefore expects intensities in ``[0, 255]``; ``preprocess_input`` is the identity.
"""

import copy
import math

import keras

from kerasbrain.applications import _common
from kerasbrain.layers import DepthwiseConv3D, FastConv3D

MIN_SIZE = 32  # five stride-2 stages
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)

# kernel_size, repeats, filters_in, filters_out, expand_ratio, strides (se_ratio 0.25,
# id_skip True for every stage).
DEFAULT_BLOCKS_ARGS = [
    dict(kernel_size=k, repeats=r, filters_in=i, filters_out=o, expand_ratio=e,
         id_skip=True, strides=s, se_ratio=0.25)
    for k, r, i, o, e, s in [
        (3, 1, 32, 16, 1, 1),
        (3, 2, 16, 24, 6, 2),
        (5, 2, 24, 40, 6, 2),
        (3, 3, 40, 80, 6, 2),
        (5, 3, 80, 112, 6, 1),
        (5, 4, 112, 192, 6, 2),
        (3, 1, 192, 320, 6, 1),
    ]
]  # fmt: skip

# width, depth, 2D default size, dropout per variant (as keras.applications).
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


def EfficientNet(
    width_coefficient, depth_coefficient, dropout_rate=0.2, drop_connect_rate=0.2,
    depth_divisor=8, activation="swish", blocks_args="default", name="efficientnet",
    include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", constructor_2d=None, remat=None,
):
    """Build a 3D EfficientNet from scaling coefficients (see ``EfficientNetB0``)."""
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS
    family = name
    if weights == "imagenet" and constructor_2d is None:
        raise ValueError(f"{family}: weights='imagenet' needs one of the named variants.")
    spec, weights_file = _common.resolve_weights(weights, architecture=family)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    _common.check_weights_args(weights, include_top, classes, input_shape, family)
    channels = input_shape[-1]

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:  # do not round down by more than 10%
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    with _common.remat_scope(remat):
        img_input = _common.model_input(input_tensor, input_shape)
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(img_input)
        x = keras.layers.Normalization(axis=-1, name="normalization")(x)
        if weights == "imagenet":
            # The Keras port divides by sqrt(std) once more (tensorflow/tensorflow#49930).
            stddev = IMAGENET_STDDEV_RGB if channels == 3 else [
                sum(IMAGENET_STDDEV_RGB) / 3.0
            ] * channels
            x = keras.layers.Rescaling(
                [1.0 / math.sqrt(s) for s in stddev], name="rescaling_1"
            )(x)

        x = keras.layers.ZeroPadding3D(
            padding=_common.correct_pad(x, 3), name="stem_conv_pad"
        )(x)
        x = FastConv3D(
            round_filters(32), 3, strides=2, padding="valid", use_bias=False,
            kernel_initializer=CONV_KERNEL_INITIALIZER, name="stem_conv",
        )(x)
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        x = keras.layers.Activation(activation, name="stem_activation")(x)

        blocks_args = copy.deepcopy(blocks_args)
        b = 0
        blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
        for i, args in enumerate(blocks_args):
            args["filters_in"] = round_filters(args["filters_in"])
            args["filters_out"] = round_filters(args["filters_out"])
            for j in range(round_repeats(args.pop("repeats"))):
                if j > 0:
                    args["strides"] = 1
                    args["filters_in"] = args["filters_out"]
                x = block(
                    x, activation, drop_connect_rate * b / blocks,
                    name=f"block{i + 1}{chr(j + 97)}_", **args,
                )
                b += 1

        x = FastConv3D(
            round_filters(1280), 1, padding="same", use_bias=False,
            kernel_initializer=CONV_KERNEL_INITIALIZER, name="top_conv",
        )(x)
        x = keras.layers.BatchNormalization(name="top_bn")(x)
        x = keras.layers.Activation(activation, name="top_activation")(x)
        if include_top:
            x = _common.global_pool(x, "avg", name="")
            if dropout_rate > 0:
                x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
            x = keras.layers.Dense(
                classes, activation=classifier_activation,
                kernel_initializer=DENSE_KERNEL_INITIALIZER, name="predictions",
            )(x)
        else:
            x = _common.global_pool(x, pooling, name="")

    model = keras.Model(_common.model_inputs_for(input_tensor, img_input), x, name=name)
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, constructor_2d
    )


def block(
    inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16,
    kernel_size=3, strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True,
):
    """MBConv: expand (1x1x1) -> depthwise -> squeeze-excite -> project, residual."""
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = FastConv3D(
            filters, 1, padding="same", use_bias=False,
            kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}expand_conv",
        )(inputs)
        x = keras.layers.BatchNormalization(name=f"{name}expand_bn")(x)
        x = keras.layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs

    if strides == 2:
        x = keras.layers.ZeroPadding3D(
            padding=_common.correct_pad(x, kernel_size), name=f"{name}dwconv_pad"
        )(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = DepthwiseConv3D(
        kernel_size, strides=strides, padding=conv_pad, use_bias=False,
        depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}bn")(x)
    x = keras.layers.Activation(activation, name=f"{name}activation")(x)

    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
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
        x = keras.layers.Multiply(name=f"{name}se_excite")([x, se])

    x = FastConv3D(
        filters_out, 1, padding="same", use_bias=False,
        kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}project_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(
                drop_rate, noise_shape=(None, 1, 1, 1, 1), name=f"{name}drop"
            )(x)
        x = keras.layers.Add(name=f"{name}add")([x, inputs])
    return x


def _variant(variant):
    width, depth, size, dropout = VARIANTS[variant]
    name = f"EfficientNet{variant.upper()}"
    return _common.variant(
        EfficientNet, name, _common.variant_docstring(
            name, "global average pooling, dropout and the dense classifier",
            "        name: model name.\n",
            "The model includes its input scaling and expects intensities in ``[0, 255]``.",
            size=size), (width, depth, dropout),
        default_name=f"efficientnet{variant}", keywords=(("remat", None),),
        constructor_2d=getattr(keras.applications, name),
    )


EfficientNetB0 = _variant("b0")
EfficientNetB1 = _variant("b1")
EfficientNetB2 = _variant("b2")
EfficientNetB3 = _variant("b3")
EfficientNetB4 = _variant("b4")
EfficientNetB5 = _variant("b5")
EfficientNetB6 = _variant("b6")
EfficientNetB7 = _variant("b7")


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor) for ``weights``: ``"imagenet"``: nothing, the
    model scales its own inputs (intensities in ``[0, 255]``); a registry or preset name:
    its preset's scaling. Returns float32."""
    return _common.preprocess(x, weights, None)


decode_predictions = _common.imagenet_decode
