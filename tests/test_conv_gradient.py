"""FastConv3D's forward-convolution gradients against Conv3D's: single layers and a backbone."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasbrain.layers import FastConv3D

# the backbones' stride-1 convolutions (3x3x3 "same", 1x1x1) and other kernels and
# paddings; their strided 3x3x3 and 1x1x1 ones (Conv3D's kernels)
CASES = [
    (dict(filters=4, kernel_size=3, padding="same"), (2, 6, 7, 5, 3)),
    (dict(filters=3, kernel_size=1, padding="valid"), (1, 5, 4, 6, 4)),
    (dict(filters=2, kernel_size=(3, 2, 1), padding="same", use_bias=False), (1, 6, 5, 4, 2)),
    (dict(filters=3, kernel_size=(1, 3, 3), padding="valid"), (2, 4, 6, 5, 1)),
    (dict(filters=3, kernel_size=3, strides=2, padding="same"), (1, 7, 6, 5, 2)),
    (dict(filters=4, kernel_size=1, strides=2, padding="valid", use_bias=False), (1, 7, 6, 5, 3)),
]


@pytest.fixture(params=["both", "input"] if keras.backend.backend() == "tensorflow" else ["none"])
def forward_gradients(request, monkeypatch):
    """On TensorFlow, whatever the CPU and oneDNN: both gradients from forward convolutions
    (as without oneDNN), or the input gradient only (as with oneDNN)."""
    if keras.backend.backend() == "tensorflow":
        from kerasbrain.layers import conv_gradient

        monkeypatch.setattr(conv_gradient, "forward_gradients", lambda: request.param)


def _pair(kwargs, shape, dtype=None):
    reference = keras.layers.Conv3D(**kwargs, dtype=dtype)
    fast = FastConv3D(**kwargs, dtype=dtype)
    reference.build(shape)
    fast.build(shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in reference.get_weights()]
    return reference, fast, weights


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_values_and_gradients_match_conv3d(kwargs, shape, gradients, forward_gradients):
    reference, fast, weights = _pair(kwargs, shape)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = ops.convert_to_numpy(reference.stateless_call(weights, [], x)[0])
    y = ops.convert_to_numpy(fast.stateless_call(weights, [], x)[0])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    r = np.random.default_rng(2).normal(size=expected.shape).astype("float32")
    got = gradients(lambda v, *w: ops.sum(fast.stateless_call(list(w), [], v)[0] * r), [x, *weights])
    want = gradients(lambda v, *w: ops.sum(reference.stateless_call(list(w), [], v)[0] * r), [x, *weights])
    for g, w in zip(got, want, strict=True):
        g, w = ops.convert_to_numpy(g), ops.convert_to_numpy(w)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(w).max())))


@pytest.mark.parametrize("kwargs,shape", [CASES[0], CASES[1], CASES[3]])
def test_mixed_bfloat16_matches_conv3d(kwargs, shape, gradients, forward_gradients):
    reference, fast, weights = _pair(kwargs, shape, dtype="mixed_bfloat16")
    # in a model, so that the layers compute in bfloat16 (stateless_call alone does not cast)
    reference, fast = (keras.Sequential([keras.Input(shape[1:]), layer]) for layer in (reference, fast))
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = reference.stateless_call(weights, [], x)[0]
    y = fast.stateless_call(weights, [], x)[0]
    assert y.dtype == expected.dtype == "bfloat16"
    y, expected = (ops.convert_to_numpy(ops.cast(a, "float32")) for a in (y, expected))
    np.testing.assert_allclose(y, expected, rtol=1e-2, atol=2e-2 * float(np.abs(expected).max()))
    r = np.random.default_rng(2).normal(size=expected.shape).astype("float32")

    def loss(model):
        return lambda v, *w: ops.sum(ops.cast(model.stateless_call(list(w), [], v)[0], "float32") * r)

    for g, w in zip(gradients(loss(fast), [x, *weights]), gradients(loss(reference), [x, *weights]), strict=True):
        g, w = ops.convert_to_numpy(ops.cast(g, "float32")), ops.convert_to_numpy(ops.cast(w, "float32"))
        # bfloat16 keeps 8 bits of mantissa; the sums run in another order
        np.testing.assert_allclose(g, w, rtol=2e-2, atol=2e-2 * float(np.abs(w).max()))


def _sfcn():
    from kerasbrain.applications import SFCN

    return SFCN(weights=None, input_shape=(32, 32, 32, 1), classes=5, filters=(4, 6, 8, 8, 8, 4))


def _resnet10():  # beside stride-1 ones, strided 3x3x3 and 1x1x1 convolutions and a 7x7x7 stem
    from kerasbrain.applications import ResNet10

    return ResNet10(weights=None, input_shape=(32, 32, 32, 1), classes=5, filters=4)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="other backends run Conv3D's own kernels for the backbones' layers")
@pytest.mark.parametrize("build,convolutions,strided", [(_sfcn, 6, 0), (_resnet10, 12, 6)])
def test_backbone_gradients_unchanged(build, convolutions, strided, gradients, forward_gradients):
    model = build()
    fast = [layer for layer in model.layers if isinstance(layer, FastConv3D)]
    assert len(fast) == convolutions
    assert sum(tuple(layer.strides) != (1, 1, 1) and layer.kernel_size[0] < 5 for layer in fast) == strided

    def plain(layer):
        cls = keras.layers.Conv3D if isinstance(layer, FastConv3D) else type(layer)
        return cls.from_config(layer.get_config())

    reference = keras.models.clone_model(model, clone_function=plain)
    assert not any(isinstance(layer, FastConv3D) for layer in reference.layers)
    reference.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 32, 1)).astype("float32")
    r = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    trainable = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    fixed = [ops.convert_to_numpy(v) for v in model.non_trainable_variables]

    def loss(m):
        return lambda *w: ops.sum(m.stateless_call(list(w), fixed, x, training=True)[0] * r)

    got = gradients(loss(model), trainable)
    want = gradients(loss(reference), trainable)
    for g, w in zip(got, want, strict=True):
        g, w = ops.convert_to_numpy(g), ops.convert_to_numpy(w)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's device and oneDNN check")
def test_forward_gradients_only_on_cpu():
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    from kerasbrain.layers import conv_gradient

    if tf.config.list_logical_devices("GPU"):
        expected = None
    else:
        expected = "input" if _pywrap_util_port.IsMklEnabled() else "both"
    assert conv_gradient.forward_gradients() == expected
