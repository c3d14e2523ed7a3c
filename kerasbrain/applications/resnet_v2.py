"""3D ResNet v2 (pre-activation): ResNet50V2, ResNet101V2, ResNet152V2.

Reference:
    He K, Zhang X, Ren S, Sun J. Identity Mappings in Deep Residual Networks. ECCV 2016.

Mirrors ``keras.applications.ResNet50V2`` layer by layer with the same layer names
(``conv1_conv``, ``conv2_block1_preact_bn``, ..., ``post_bn``, ``predictions``), every 2D
layer replaced by its 3D counterpart, so ``weights="imagenet"`` inflates the 2D ImageNet
weights by name. As in Keras, each stage's last block carries the stride.

Rematerialisation (``remat=``): as for ``kerasbrain.applications.resnet``.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers.conv import FastConv3D

MIN_SIZE = 32
BN_EPSILON = 1.001e-5

#: variant -> blocks per stage
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _keras_2d(depth):
    return {
        50: keras.applications.ResNet50V2,
        101: keras.applications.ResNet101V2,
        152: keras.applications.ResNet152V2,
    }[depth]


def ResNetV2(
    depth, include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name=None, *, filters=64,
    bn_epsilon=BN_EPSILON, remat=None,
):
    """Instantiate a 3D pre-activation ResNet (depth 50, 101 or 152).

    Args:
        depth: 50, 101 or 152.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as ``kerasbrain.applications.resnet.ResNet``;
            ``weights="imagenet"`` inflates keras.applications' 2D ResNet<depth>V2.
        filters: channels of the stem and first stage (published: 64).
        bn_epsilon: BatchNorm epsilon.
        remat: rematerialisation (see ``_common.remat_scope``).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else the map
        ``(batch, ~x/32, ~y/32, ~z/32, 32 * filters)`` or its pooled ``(batch, 32 * filters)``.
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNetV2 depth must be one of {sorted(DEPTHS)}, got {depth!r}.")
    family = f"ResNet{depth}V2"
    name = name or f"resnet{depth}v2"
    spec, weights_file = _common.resolve_weights(weights, architecture=f"resnet{depth}v2")
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    if weights == "imagenet" and filters != 64:
        raise ValueError(f"{family}: weights='imagenet' needs filters=64, got {filters}.")
    _common.check_weights_args(weights, include_top, classes, input_shape, family)

    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        x = keras.layers.ZeroPadding3D(3, name="conv1_pad")(inputs)
        x = FastConv3D(filters, 7, strides=2, name="conv1_conv")(x)
        x = keras.layers.ZeroPadding3D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling3D(3, strides=2, name="pool1_pool")(x)
        for stage, n_blocks in enumerate(DEPTHS[depth]):
            width = filters * 2**stage
            last_stride = 1 if stage == 3 else 2
            for b in range(1, n_blocks + 1):
                x = preact_block(
                    x, width, stride=last_stride if b == n_blocks else 1,
                    conv_shortcut=b == 1, name=f"conv{stage + 2}_block{b}",
                    bn_epsilon=bn_epsilon,
                )
        x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name="post_bn")(x)
        x = keras.layers.Activation("relu", name="post_relu")(x)
        x = _common.classifier_top(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, _keras_2d(depth)
    )


def preact_block(x, filters, stride, conv_shortcut, name, bn_epsilon=BN_EPSILON):
    """BN -> ReLU -> 1x1x1 -> 3x3x3 (stride) -> 1x1x1 (4x filters), plus the shortcut."""
    preact = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_preact_bn")(x)
    preact = keras.layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = FastConv3D(
            4 * filters, 1, strides=stride, name=f"{name}_0_conv"
        )(preact)
    else:
        shortcut = (
            keras.layers.MaxPooling3D(1, strides=stride, name=f"{name}_0_pool")(x)
            if stride > 1 else x
        )
    x = FastConv3D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.ZeroPadding3D(1, name=f"{name}_2_pad")(x)
    x = FastConv3D(
        filters, 3, strides=stride, use_bias=False, name=f"{name}_2_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = FastConv3D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return keras.layers.Add(name=f"{name}_out")([shortcut, x])


def _constructor(depth):
    return _common.variant(
        ResNetV2, f"ResNet{depth}V2",
        f"Instantiate the 3D ResNet{depth}V2 (blocks {DEPTHS[depth]}); "
        "``weights='imagenet'`` inflates keras.applications' 2D weights.\n\n"
        "    Arguments as ``ResNetV2`` without ``depth``.",
        (depth,), default_name=f"resnet{depth}v2",
        keywords=(("filters", 64), ("bn_epsilon", BN_EPSILON), ("remat", None)),
    )


ResNet50V2 = _constructor(50)
ResNet101V2 = _constructor(101)
ResNet152V2 = _constructor(152)


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor ``(..., x, y, z, channels)``) for ``weights``:
    ``"imagenet"``: intensities in ``[0, 255]`` scaled to ``[-1, 1]`` (keras' ``"tf"``
    mode, ``x / 127.5 - 1``); a registry or preset name: its preset's scaling."""
    return _common.preprocess(x, weights, "tf")


decode_predictions = _common.imagenet_decode
