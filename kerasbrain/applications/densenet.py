"""3D DenseNets: DenseNet121, DenseNet169, DenseNet201.

Reference:
    Huang G, Liu Z, van der Maaten L, Weinberger KQ. Densely Connected Convolutional
    Networks. CVPR 2017.

Mirrors ``keras.applications.DenseNet121`` layer by layer with the same layer names
(``conv1_conv``, ``conv2_block1_0_bn``, ``pool2_conv``, ..., ``bn``, ``predictions``),
every 2D layer replaced by its 3D counterpart, so ``weights="imagenet"`` inflates the 2D
ImageNet weights by name.

The same graph is MONAI's ``DenseNet121/169/201(spatial_dims=3)`` (torch BatchNorm
epsilon 1e-5: pass ``bn_epsilon=1e-5``), whose state-dict keys map to layer names as::

    features.conv0 / features.norm0                  -> conv1_conv / conv1_bn
    features.denseblock{i}.denselayer{j}.norm1       -> conv{i+1}_block{j}_0_bn
    features.denseblock{i}.denselayer{j}.conv1       -> conv{i+1}_block{j}_1_conv
    features.denseblock{i}.denselayer{j}.norm2       -> conv{i+1}_block{j}_1_bn
    features.denseblock{i}.denselayer{j}.conv2       -> conv{i+1}_block{j}_2_conv
    features.transition{i}.norm / .conv              -> pool{i+1}_bn / pool{i+1}_conv
    features.norm5                                   -> bn
    class_layers.out                                 -> predictions

(kernels permuted ``(2, 3, 4, 1, 0)``). MONAI pads the 7x7x7 stem by 3 and the max pool
by 1 on both sides, as the ``ZeroPadding3D`` layers here do; its head is final BN ->
ReLU -> global average pooling -> linear, as here with ``include_top=True``.

Rematerialisation (``remat=``): see ``_common.remat_scope``; DenseNets keep every
concatenated map alive, so ``remat=True`` saves much of their training memory.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers.conv import FastConv3D

MIN_SIZE = 32
BN_EPSILON = 1.001e-5

#: variant -> dense layers per block
BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


def _keras_2d(depth):
    return {
        121: keras.applications.DenseNet121,
        169: keras.applications.DenseNet169,
        201: keras.applications.DenseNet201,
    }[depth]


def DenseNet(
    blocks, include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="densenet", *, growth_rate=32,
    stem_filters=64, bn_epsilon=None, remat=None,
):
    """Instantiate a 3D DenseNet.

    Args:
        blocks: dense layers in each of the four dense blocks, or a depth 121/169/201.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as ``kerasbrain.applications.resnet.ResNet``;
            ``weights="imagenet"`` inflates keras.applications' 2D DenseNet of that depth;
            a registry name (``"synthba-g"``, ``"synthba-u"``: SynthBA brain age, whose
            top outputs years, i.e. the network's output x 100) loads published 3D weights.
        growth_rate: channels each dense layer adds (published: 32); its bottleneck has
            ``4 * growth_rate``.
        stem_filters: channels of the 7x7x7 stem (published: 64).
        bn_epsilon: BatchNorm epsilon: 1.001e-5 (Keras) by default, 1e-5 for MONAI/torch
            weights (registry weights set it).
        remat: rematerialisation (see ``_common.remat_scope``).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else the map
        ``(batch, ~x/32, ~y/32, ~z/32, channels)`` or its pooled ``(batch, channels)``.
    """
    depth = blocks if isinstance(blocks, int) else None
    if depth is not None:
        if depth not in BLOCKS:
            raise ValueError(f"DenseNet depth must be one of {sorted(BLOCKS)}, got {depth}.")
        blocks = BLOCKS[depth]
    blocks = tuple(blocks)
    if len(blocks) != 4:
        raise ValueError(f"DenseNet blocks must have 4 entries, got {blocks}.")
    depth = depth or {v: k for k, v in BLOCKS.items()}.get(blocks)
    family = f"DenseNet{depth}" if depth else "DenseNet"
    spec, weights_file = _common.resolve_weights(
        weights, architecture=f"densenet{depth}" if depth else "densenet"
    )
    config = dict(spec.config) if spec is not None else {}
    if bn_epsilon is None:
        bn_epsilon = config.get("bn_epsilon", BN_EPSILON)
    classes = _common.check_registry_head(spec, include_top, classes, family, default=1000)
    if spec is not None and include_top:
        classifier_activation = config.get("classifier_activation", classifier_activation)
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    if weights == "imagenet" and (growth_rate, stem_filters) != (32, 64):
        raise ValueError(
            f"{family}: weights='imagenet' needs the published widths growth_rate=32 and "
            f"stem_filters=64, got {growth_rate} and {stem_filters}."
        )
    _common.check_weights_args(
        weights, include_top, classes, input_shape, family,
        imagenet_available=depth is not None,
    )

    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        x = keras.layers.ZeroPadding3D(3, name="conv1_pad")(inputs)
        x = FastConv3D(stem_filters, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
        x = keras.layers.ZeroPadding3D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling3D(3, strides=2, name="pool1")(x)
        for i, n_layers in enumerate(blocks):
            x = dense_block(x, n_layers, growth_rate, f"conv{i + 2}", bn_epsilon)
            if i < 3:
                x = transition_block(x, 0.5, f"pool{i + 2}", bn_epsilon)
        x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name="bn")(x)
        x = keras.layers.Activation("relu", name="relu")(x)
        x = _common.classifier_top(x, include_top, pooling, classes, classifier_activation)
        if include_top and config.get("output_scale"):
            x = keras.layers.Rescaling(config["output_scale"], name="years")(x)
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, _keras_2d(depth) if depth else None,
        architecture=f"densenet{depth}" if depth else "densenet",
        build=_common.checkpoint_builder(DenseNet),
    )


def dense_block(x, n_layers, growth_rate, name, bn_epsilon=BN_EPSILON):
    """``n_layers`` conv blocks, each concatenating ``growth_rate`` new channels."""
    for i in range(n_layers):
        x = conv_block(x, growth_rate, name=f"{name}_block{i + 1}", bn_epsilon=bn_epsilon)
    return x


def transition_block(x, reduction, name, bn_epsilon=BN_EPSILON):
    """BN -> ReLU -> 1x1x1 conv to ``reduction`` x channels -> 2x2x2 average pooling."""
    x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    x = FastConv3D(
        int(x.shape[-1] * reduction), 1, use_bias=False, name=f"{name}_conv"
    )(x)
    return keras.layers.AveragePooling3D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name, bn_epsilon=BN_EPSILON):
    """BN -> ReLU -> 1x1x1 (4 x growth) -> BN -> ReLU -> 3x3x3 (growth), concatenated."""
    y = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_0_bn")(x)
    y = keras.layers.Activation("relu", name=f"{name}_0_relu")(y)
    y = FastConv3D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = FastConv3D(
        growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv"
    )(y)
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def _constructor(depth):
    return _common.variant(
        DenseNet, f"DenseNet{depth}",
        f"Instantiate the 3D DenseNet{depth} (dense blocks {BLOCKS[depth]}); "
        "``weights='imagenet'`` inflates keras.applications' 2D weights.\n\n"
        "    Arguments as ``DenseNet`` without ``blocks``.",
        (depth,), default_name=f"densenet{depth}",
        keywords=(("growth_rate", 32), ("stem_filters", 64), ("bn_epsilon", None), ("remat", None)),
    )


DenseNet121 = _constructor(121)
DenseNet169 = _constructor(169)
DenseNet201 = _constructor(201)


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor) the way the weights expect.

    ``"imagenet"``: intensities in ``[0, 255]`` scaled to ``[0, 1]`` and normalised with
    the ImageNet mean and standard deviation (keras' ``"torch"`` mode; the means over
    R, G, B for non-RGB volumes). A registry name (``"synthba-g"``/``"synthba-u"``): its
    preset's scaling, each volume min-max scaled to ``[0, 1]``.
    """
    return _common.preprocess(x, weights, "torch")


decode_predictions = _common.imagenet_decode
