"""3D ResNets: ResNet10/18/34/50/101/152/200 for channels-last volumes.

References:
    He K, Zhang X, Ren S, Sun J. Deep Residual Learning for Image Recognition. CVPR 2016.
    Chen S, Ma K, Zheng Y. Med3D: Transfer Learning for 3D Medical Image Analysis. 2019
    (MedicalNet; the same layout as MONAI's ``monai.networks.nets.ResNet``).

Two block layouts:

``block_layout="keras"`` (default) mirrors ``keras.applications.ResNet50`` layer by layer,
with every 2D layer replaced by its 3D counterpart and the same layer names
(``conv1_conv``, ``conv2_block1_1_conv``, ..., ``predictions``), so that
``weights="imagenet"`` inflates the 2D ImageNet weights by name. Bottleneck blocks put
the stride on the first 1x1x1 convolution (ResNet v1 as in Keras), convolutions have
biases, BatchNorm epsilon 1.001e-5. ResNet10/18/34 use basic blocks named the same way
(``_1_conv``, ``_2_conv``, projection shortcut ``_0_conv`` where the shape changes).

``block_layout="medicalnet"`` is MedicalNet's / MONAI's: conv1 7x7x7 stride 2 without
bias -> BN -> ReLU -> max pool 3 stride 2 -> layers 1-4 (strides 1, 2, 2, 2; basic blocks
for 10/18/34, bottlenecks with the stride on the 3x3x3 convolution for 50+), no
convolution biases, torch padding (symmetric zero padding of 1 before each 3x3x3
convolution), BatchNorm epsilon 1e-5, shortcut type A for 18 and 34 (identity subsampled
by the stride and zero-padded to the new channel count, no weights) and type B (1x1x1
convolution + BN) otherwise. PyTorch state-dict keys map to layer names as::

    conv1 / bn1                          -> conv1_conv / conv1_bn
    layer{i}.{j}.conv{k} / .bn{k}        -> conv{i+1}_block{j+1}_{k}_conv / _{k}_bn
    layer{i}.{j}.downsample.0 / .1       -> conv{i+1}_block{j+1}_0_conv / _0_bn
    fc (MONAI)                           -> predictions

(kernels permuted ``(2, 3, 4, 1, 0)``; the volume axes are the same in both).
MedicalNet's segmentation network dilates layers 3-4 instead of striding them; the
weights are the same tensors, this backbone uses MONAI's strides.

Rematerialisation (``remat=``): the layers are built under ``keras.RematScope``; with
``remat=True`` every layer recomputes its forward pass during backpropagation instead of
keeping its internal intermediates (BatchNorm's normalised input, activations), which
lowers training memory for full-size volumes at the price of a second forward pass.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers.conv import FastConv3D

MIN_SIZE = 32

#: depth -> (block kind, blocks per stage)
DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
LAYOUTS = ("keras", "medicalnet")
KERAS_BN_EPSILON = 1.001e-5
TORCH_BN_EPSILON = 1e-5


def _keras_2d(depth):
    """The keras.applications constructor with ImageNet weights for ``depth``, if any."""
    return {
        50: keras.applications.ResNet50,
        101: keras.applications.ResNet101,
        152: keras.applications.ResNet152,
    }.get(depth)


def ResNet(
    depth, include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name=None, *, block_layout=None, filters=64,
    bn_epsilon=None, remat=None,
):
    """Instantiate a 3D ResNet of the given depth (10, 18, 34, 50, 101, 152 or 200).

    Args:
        depth: number of weighted layers, a key of ``DEPTHS``.
        include_top: whether to add global average pooling and the dense
            ``predictions`` layer.
        weights: ``None`` (random), ``"imagenet"`` (2D keras.applications weights inflated
            to 3D; ResNet50/101/152 with ``block_layout="keras"`` only), a registry name
            (e.g. ``"medicalnet"``) or the path to a weights file.
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(x, y, z, channels)``, default ``(160, 192, 160, 1)``; every
            spatial size at least 32 voxels.
        pooling: without the top: ``None`` (5D map), ``"avg"`` or ``"max"``.
        classes: outputs of the top.
        classifier_activation: activation of ``predictions`` (``None`` for logits).
        name: model name, default ``"resnet<depth>"``.
        block_layout: ``"keras"`` or ``"medicalnet"`` (see the module docstring); default
            ``"keras"``, or the one registry weights need.
        filters: channels of the stem and first stage (stages use 1x, 2x, 4x, 8x; the
            published networks use 64).
        bn_epsilon: BatchNorm epsilon; default 1.001e-5 (keras) or 1e-5 (medicalnet).
        remat: rematerialisation, see ``_common.remat_scope`` (``None``, ``True``, a
            ``keras.RematScope`` mode or instance).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else the feature map
        ``(batch, ~x/32, ~y/32, ~z/32, 8 * filters * expansion)`` or its pooled
        ``(batch, 8 * filters * expansion)`` (expansion 4 for bottlenecks, else 1).
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth!r}.")
    family = f"ResNet{depth}"
    name = name or f"resnet{depth}"
    spec, weights_file = _common.resolve_weights(weights, architecture=f"resnet{depth}")
    config = dict(spec.config) if spec is not None else {}
    block_layout = block_layout or config.get("block_layout", "keras")
    if block_layout not in LAYOUTS:
        raise ValueError(f"block_layout must be one of {LAYOUTS}, got {block_layout!r}.")
    if bn_epsilon is None:
        default_eps = KERAS_BN_EPSILON if block_layout == "keras" else TORCH_BN_EPSILON
        bn_epsilon = config.get("bn_epsilon", default_eps)
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    constructor_2d = _keras_2d(depth) if block_layout == "keras" else None
    if weights == "imagenet" and block_layout != "keras":
        raise ValueError(
            f"{family}: weights='imagenet' needs block_layout='keras' (the layout of "
            "keras.applications' 2D ResNets); the medicalnet layout has other strides "
            "and no convolution biases."
        )
    if weights == "imagenet" and filters != 64:
        raise ValueError(f"{family}: weights='imagenet' needs filters=64, got {filters}.")
    _common.check_weights_args(
        weights, include_top, classes, input_shape, family,
        imagenet_available=constructor_2d is not None,
    )

    if spec is not None and include_top and "classes" not in config:
        raise ValueError(
            f"{family}: weights={weights!r} have no classifier (MedicalNet was trained for "
            "segmentation); use include_top=False, with pooling='avg' for features."
        )
    kind, blocks = DEPTHS[depth]
    torch_layout = block_layout == "medicalnet"
    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        x = keras.layers.ZeroPadding3D(3, name="conv1_pad")(inputs)
        x = FastConv3D(filters, 7, strides=2, use_bias=not torch_layout, name="conv1_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
        x = keras.layers.ZeroPadding3D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling3D(3, strides=2, name="pool1_pool")(x)

        shortcut_a = torch_layout and depth in (18, 34)
        for stage, n_blocks in enumerate(blocks):
            width = filters * 2**stage
            for b in range(n_blocks):
                stride = 2 if (stage > 0 and b == 0) else 1
                block_name = f"conv{stage + 2}_block{b + 1}"
                if kind == "basic":
                    x = basic_block(
                        x, width, stride, block_name, bn_epsilon, torch_layout, shortcut_a
                    )
                else:
                    x = bottleneck_block(x, width, stride, block_name, bn_epsilon, torch_layout)

        x = _common.classifier_top(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, constructor_2d,
        architecture=f"resnet{depth}", build=_common.checkpoint_builder(ResNet),
    )


def _conv(x, filters, kernel_size, stride, name, torch_layout):
    """A convolution; in the torch layout 3x3x3 kernels get symmetric padding of 1."""
    if kernel_size == 3 and torch_layout:
        x = keras.layers.ZeroPadding3D(1, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return FastConv3D(
        filters, kernel_size, strides=stride, padding=padding,
        use_bias=not torch_layout, name=f"{name}_conv",
    )(x)


def _shortcut(x, out_channels, stride, name, bn_epsilon, torch_layout, type_a):
    """Identity, type A (subsample + zero channels) or type B (1x1x1 conv + BN)."""
    in_channels = x.shape[-1]
    if stride == 1 and in_channels == out_channels:
        return x
    if type_a:
        if out_channels != 2 * in_channels:
            raise ValueError(
                f"{name}: shortcut type A doubles the channels, got {in_channels} -> "
                f"{out_channels}."
            )
        x = keras.layers.MaxPooling3D(1, strides=stride, name=f"{name}_0_pool")(x)
        zeros = keras.layers.Rescaling(0.0, name=f"{name}_0_zeros")(x)
        return keras.layers.Concatenate(name=f"{name}_0_pad")([x, zeros])
    x = FastConv3D(
        out_channels, 1, strides=stride, use_bias=not torch_layout, name=f"{name}_0_conv"
    )(x)
    return keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_0_bn")(x)


def basic_block(x, filters, stride, name, bn_epsilon, torch_layout=False, shortcut_a=False):
    """Two 3x3x3 convolutions with a residual connection (ResNet10/18/34)."""
    shortcut = _shortcut(x, filters, stride, name, bn_epsilon, torch_layout, shortcut_a)
    x = _conv(x, filters, 3, stride, f"{name}_1", torch_layout)
    x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(x, filters, 3, 1, f"{name}_2", torch_layout)
    x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters, stride, name, bn_epsilon, torch_layout=False):
    """1x1x1 -> 3x3x3 -> 1x1x1 (4x filters) with a residual connection (ResNet50+).

    Keras layout: stride on the first 1x1x1 convolution and a projection shortcut in every
    stage's first block; torch layout: stride on the 3x3x3 convolution.
    """
    shortcut = _shortcut(x, 4 * filters, stride, name, bn_epsilon, torch_layout, False)
    stride_1, stride_2 = (1, stride) if torch_layout else (stride, 1)
    y = _conv(x, filters, 1, stride_1, f"{name}_1", torch_layout)
    y = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 3, stride_2, f"{name}_2", torch_layout)
    y = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_2_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = _conv(y, 4 * filters, 1, 1, f"{name}_3", torch_layout)
    y = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_3_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def _constructor(depth):
    imagenet = "; ``weights='imagenet'`` inflates keras.applications' 2D weights" if (
        _keras_2d(depth) is not None) else (
        f"; no ImageNet weights (keras.applications has no 2D ResNet{depth})")
    return _common.variant(
        ResNet, f"ResNet{depth}",
        f"Instantiate the 3D ResNet{depth} ({DEPTHS[depth][0]} blocks {DEPTHS[depth][1]})"
        f"{imagenet}.\n\n    Arguments as ``ResNet`` without ``depth``.",
        (depth,), default_name=f"resnet{depth}",
        keywords=(("block_layout", None), ("filters", 64), ("bn_epsilon", None), ("remat", None)),
    )


ResNet10 = _constructor(10)
ResNet18 = _constructor(18)
ResNet34 = _constructor(34)
ResNet50 = _constructor(50)
ResNet101 = _constructor(101)
ResNet152 = _constructor(152)
ResNet200 = _constructor(200)


def preprocess_input(x, weights="imagenet"):
    """Scale volumes the way the weights expect.

    Args:
        x: array or backend tensor ``(..., x, y, z, channels)``.
        weights: ``"imagenet"``: intensities in ``[0, 255]`` minus the ImageNet mean
            (keras' ``"caffe"`` mode; BGR order for 3 channels, the mean over R, G, B
            otherwise). A registry name (``"medicalnet"``): its preset's scaling, for
            MedicalNet each volume standardised to zero mean and unit standard deviation
            over its non-zero voxels (background stays 0).

    Returns:
        float32 array of the same shape.
    """
    return _common.preprocess(x, weights, "caffe")


decode_predictions = _common.imagenet_decode
