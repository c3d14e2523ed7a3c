"""3D Inception v3.

Reference:
    Szegedy C, Vanhoucke V, Ioffe S, Shlens J, Wojna Z. Rethinking the Inception
    Architecture for Computer Vision. CVPR 2016.

Mirrors ``keras.applications.InceptionV3`` layer by layer, in the same order: named
layers keep Keras' names (``mixed0`` ... ``mixed10``, ``mixed9_0``, ``avg_pool``,
``predictions``); the convolution/BatchNorm pairs are unnamed in Keras too and are
matched by order when inflating. Each 2D kernel ``(kh, kw)`` becomes ``(kh, kw, kw)``:
square kernels become cubes, and the factorised pairs ``1x7`` -> ``7x1`` become
``1x7x7`` -> ``7x1x1`` (likewise ``1x3``/``3x1``), so each pair still covers a 7x7x7
(3x3x3) neighbourhood at the cost of one 7x7 plane.

Minimum input size: 75 voxels per axis (as in Keras).

Rematerialisation (``remat=``): see ``_common.remat_scope``.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers.conv import FastConv3D

MIN_SIZE = 75


def conv3d_bn(x, filters, kh, kw, padding="same", strides=1, name=None):
    """Conv3D ``(kh, kw, kw)`` without bias -> BatchNorm (no scale) -> ReLU."""
    x = FastConv3D(
        filters, (kh, kw, kw), strides=strides, padding=padding, use_bias=False,
        name=None if name is None else f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        scale=False, name=None if name is None else f"{name}_bn"
    )(x)
    return keras.layers.Activation("relu", name=name)(x)


def _avg_pool_same(x):
    return keras.layers.AveragePooling3D(3, strides=1, padding="same")(x)


def InceptionV3(
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="inception_v3", *, remat=None,
):
    """Instantiate the 3D Inception v3.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as ``kerasbrain.applications.resnet.ResNet``;
            ``weights="imagenet"`` inflates keras.applications' 2D InceptionV3; every
            spatial size at least 75 voxels.
        remat: rematerialisation (see ``_common.remat_scope``).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else the ``mixed10`` map
        ``(batch, ~x/32, ~y/32, ~z/32, 2048)`` or its pooled ``(batch, 2048)``.
    """
    spec, weights_file = _common.resolve_weights(weights, architecture="inception_v3")
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, "InceptionV3")
    _common.check_weights_args(weights, include_top, classes, input_shape, "InceptionV3")
    cat = keras.layers.Concatenate

    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        x = conv3d_bn(inputs, 32, 3, 3, strides=2, padding="valid")
        x = conv3d_bn(x, 32, 3, 3, padding="valid")
        x = conv3d_bn(x, 64, 3, 3)
        x = keras.layers.MaxPooling3D(3, strides=2)(x)
        x = conv3d_bn(x, 80, 1, 1, padding="valid")
        x = conv3d_bn(x, 192, 3, 3, padding="valid")
        x = keras.layers.MaxPooling3D(3, strides=2)(x)

        # mixed 0, 1, 2: 35 x 35 x 256 / 288 in 2D
        for i, pool_filters in enumerate((32, 64, 64)):
            branch1x1 = conv3d_bn(x, 64, 1, 1)
            branch5x5 = conv3d_bn(x, 48, 1, 1)
            branch5x5 = conv3d_bn(branch5x5, 64, 5, 5)
            branch3x3dbl = conv3d_bn(x, 64, 1, 1)
            branch3x3dbl = conv3d_bn(branch3x3dbl, 96, 3, 3)
            branch3x3dbl = conv3d_bn(branch3x3dbl, 96, 3, 3)
            branch_pool = conv3d_bn(_avg_pool_same(x), pool_filters, 1, 1)
            x = cat(name=f"mixed{i}")([branch1x1, branch5x5, branch3x3dbl, branch_pool])

        # mixed 3: 17 x 17 x 768 in 2D
        branch3x3 = conv3d_bn(x, 384, 3, 3, strides=2, padding="valid")
        branch3x3dbl = conv3d_bn(x, 64, 1, 1)
        branch3x3dbl = conv3d_bn(branch3x3dbl, 96, 3, 3)
        branch3x3dbl = conv3d_bn(branch3x3dbl, 96, 3, 3, strides=2, padding="valid")
        branch_pool = keras.layers.MaxPooling3D(3, strides=2)(x)
        x = cat(name="mixed3")([branch3x3, branch3x3dbl, branch_pool])

        # mixed 4, 5, 6, 7: 17 x 17 x 768 in 2D
        for i, width in enumerate((128, 160, 160, 192)):
            branch1x1 = conv3d_bn(x, 192, 1, 1)
            branch7x7 = conv3d_bn(x, width, 1, 1)
            branch7x7 = conv3d_bn(branch7x7, width, 1, 7)
            branch7x7 = conv3d_bn(branch7x7, 192, 7, 1)
            branch7x7dbl = conv3d_bn(x, width, 1, 1)
            branch7x7dbl = conv3d_bn(branch7x7dbl, width, 7, 1)
            branch7x7dbl = conv3d_bn(branch7x7dbl, width, 1, 7)
            branch7x7dbl = conv3d_bn(branch7x7dbl, width, 7, 1)
            branch7x7dbl = conv3d_bn(branch7x7dbl, 192, 1, 7)
            branch_pool = conv3d_bn(_avg_pool_same(x), 192, 1, 1)
            x = cat(name=f"mixed{4 + i}")([branch1x1, branch7x7, branch7x7dbl, branch_pool])

        # mixed 8: 8 x 8 x 1280 in 2D
        branch3x3 = conv3d_bn(x, 192, 1, 1)
        branch3x3 = conv3d_bn(branch3x3, 320, 3, 3, strides=2, padding="valid")
        branch7x7x3 = conv3d_bn(x, 192, 1, 1)
        branch7x7x3 = conv3d_bn(branch7x7x3, 192, 1, 7)
        branch7x7x3 = conv3d_bn(branch7x7x3, 192, 7, 1)
        branch7x7x3 = conv3d_bn(branch7x7x3, 192, 3, 3, strides=2, padding="valid")
        branch_pool = keras.layers.MaxPooling3D(3, strides=2)(x)
        x = cat(name="mixed8")([branch3x3, branch7x7x3, branch_pool])

        # mixed 9, 10: 8 x 8 x 2048 in 2D
        for i in range(2):
            branch1x1 = conv3d_bn(x, 320, 1, 1)
            branch3x3 = conv3d_bn(x, 384, 1, 1)
            branch3x3_1 = conv3d_bn(branch3x3, 384, 1, 3)
            branch3x3_2 = conv3d_bn(branch3x3, 384, 3, 1)
            branch3x3 = cat(name=f"mixed9_{i}")([branch3x3_1, branch3x3_2])
            branch3x3dbl = conv3d_bn(x, 448, 1, 1)
            branch3x3dbl = conv3d_bn(branch3x3dbl, 384, 3, 3)
            branch3x3dbl_1 = conv3d_bn(branch3x3dbl, 384, 1, 3)
            branch3x3dbl_2 = conv3d_bn(branch3x3dbl, 384, 3, 1)
            branch3x3dbl = cat()([branch3x3dbl_1, branch3x3dbl_2])
            branch_pool = conv3d_bn(_avg_pool_same(x), 192, 1, 1)
            x = cat(name=f"mixed{9 + i}")([branch1x1, branch3x3, branch3x3dbl, branch_pool])

        x = _common.classifier_top(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, keras.applications.InceptionV3
    )


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor ``(..., x, y, z, channels)``) for ``weights``:
    ``"imagenet"``: intensities in ``[0, 255]`` scaled to ``[-1, 1]`` (keras' ``"tf"``
    mode, ``x / 127.5 - 1``); a registry or preset name: its preset's scaling."""
    return _common.preprocess(x, weights, "tf")


decode_predictions = _common.imagenet_decode
