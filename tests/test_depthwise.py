"""DepthwiseConv3D against keras.layers.Conv3D(groups=channels): outputs and gradients."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasbrain.layers import DepthwiseConv3D

# input shape, kernel_size, strides, padding, depth_multiplier, dilation_rate
CASES = [
    ((2, 8, 9, 10, 4), 3, 1, "same", 1, 1),
    ((1, 9, 8, 7, 3), (3, 5, 2), (2, 1, 2), "same", 2, 1),
    ((1, 12, 11, 10, 2), 5, 2, "valid", 1, 1),
    ((1, 10, 9, 11, 2), 3, 1, "valid", 3, (2, 1, 2)),
    ((1, 8, 8, 8, 5), 7, 1, "same", 1, 1),
    ((2, 6, 5, 4, 3), 1, 1, "valid", 2, 1),
    ((1, 11, 10, 9, 2), 3, (1, 3, 2), "same", 1, 1),
]


def _reference(layer, shape):
    """Conv3D(groups=C) holding ``layer``'s kernel (kx, ky, kz, C, M) -> (kx, ky, kz, 1, C*M)."""
    channels = shape[-1]
    conv = keras.layers.Conv3D(
        channels * layer.depth_multiplier,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        groups=channels,
    )
    conv.build(shape)
    return conv


def _to_grouped(kernel):
    return ops.reshape(kernel, tuple(kernel.shape[:3]) + (1, kernel.shape[3] * kernel.shape[4]))


@pytest.mark.parametrize("shape,kernel_size,strides,padding,multiplier,dilation", CASES)
def test_matches_grouped_conv3d(shape, kernel_size, strides, padding, multiplier, dilation, gradients):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype("float32")
    layer = DepthwiseConv3D(
        kernel_size, strides=strides, padding=padding, depth_multiplier=multiplier,
        dilation_rate=dilation, bias_initializer="random_normal",
    )
    y = layer(x)
    conv = _reference(layer, shape)
    kernel = ops.convert_to_numpy(layer.kernel)
    bias = ops.convert_to_numpy(layer.bias)
    expected = conv.stateless_call([_to_grouped(kernel), bias], [], x)[0]
    assert tuple(y.shape) == tuple(expected.shape) == layer.compute_output_shape(shape)
    np.testing.assert_allclose(ops.convert_to_numpy(y), ops.convert_to_numpy(expected), atol=1e-5)

    # Gradients of a random projection of the output, w.r.t. input, kernel and bias.
    r = rng.normal(size=expected.shape).astype("float32")

    def fast_loss(k, b, xx):
        return ops.sum(layer.stateless_call([k, b], [], xx)[0] * r)

    def ref_loss(k, b, xx):
        return ops.sum(conv.stateless_call([_to_grouped(k), b], [], xx)[0] * r)

    got = gradients(fast_loss, [kernel, bias, x])
    want = gradients(ref_loss, [kernel, bias, x])
    for name, g, w in zip(("kernel", "bias", "input"), got, want, strict=True):
        g, w = ops.convert_to_numpy(g), ops.convert_to_numpy(w)
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g / scale, w / scale, atol=1e-5, err_msg=f"d/d{name}")


def test_dynamic_spatial_shape_and_keras_round_trip(tmp_path):
    inputs = keras.Input((None, None, None, 3))
    y = DepthwiseConv3D(3, strides=2, padding="same", depth_multiplier=2, name="dw1")(inputs)
    y = DepthwiseConv3D((3, 1, 3), strides=(1, 2, 1), padding="same", activation="relu")(y)
    model = keras.Model(inputs, y)
    x = np.random.default_rng(0).normal(size=(2, 9, 8, 7, 3)).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (2, 5, 2, 4, 6)
    assert out.min() >= 0.0
    path = tmp_path / "dw.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("dw1"), DepthwiseConv3D)
    assert loaded.get_layer("dw1").kernel.shape == (3, 3, 3, 3, 2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), out, atol=1e-6)


def test_trains_with_fit():
    model = keras.Sequential([keras.Input((8, 8, 8, 2)), DepthwiseConv3D(3, padding="same")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 8, 2)).astype("float32")
    target = np.roll(x, 1, axis=1)  # a depthwise shift: learnable exactly away from borders
    before = model.evaluate(x, target, verbose=0)
    model.fit(x, target, epochs=20, batch_size=4, verbose=0)
    assert model.evaluate(x, target, verbose=0) < 0.5 * before


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(kernel_size=3, strides=2, dilation_rate=2), "cannot be combined"),
        (dict(kernel_size=3, padding="causal"), "padding must be"),
        (dict(kernel_size=3, data_format="channels_first"), "channels-last"),
        (dict(kernel_size=(3, 3)), "kernel_size must be"),
        (dict(kernel_size=3, depth_multiplier=0), "depth_multiplier"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthwiseConv3D(**kwargs)
