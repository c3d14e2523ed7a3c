"""Inflation of 2D keras.applications weights into the 3D families."""

import keras
import numpy as np
import pytest

from kerasbrain.applications import densenet, inception_v3, resnet
from kerasbrain.applications.inflate import inflate, load_imagenet


def _randomise(model, seed=0):
    """Random weights everywhere, BatchNorm statistics included (variances positive)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.path:
                values.append(rng.uniform(0.5, 1.5, shape))
            elif len(shape) >= 2:
                fan_in = np.prod(shape[:-1])
                values.append(rng.normal(0, 1.0 / np.sqrt(fan_in), shape))
            else:
                values.append(rng.normal(0, 0.1, shape) + (1.0 if "gamma" in w.path else 0.0))
        if values:
            layer.set_weights([v.astype("float32") for v in values])


def _feature_model(model, layer_name):
    return keras.Model(model.input, model.get_layer(layer_name).output)


def _check_property(model_2d, model_3d, layer_2d, layer_3d, image_size, depth, mode="repeat"):
    """Volume = one grey image repeated along z; central z slice of 3D features = 2D."""
    _randomise(model_2d)
    inflate(model_2d, model_3d, mode=mode)
    rng = np.random.default_rng(1)
    grey = rng.uniform(0, 1, (1, image_size, image_size, 1)).astype("float32")
    rgb = np.repeat(grey, 3, axis=-1)
    volume = np.repeat(grey[:, :, :, None, :], depth, axis=3)
    f2 = keras.ops.convert_to_numpy(_feature_model(model_2d, layer_2d)(rgb))
    f3 = keras.ops.convert_to_numpy(_feature_model(model_3d, layer_3d)(volume))
    centre = f3[:, :, :, f3.shape[3] // 2]
    assert centre.shape == f2.shape
    scale = np.abs(f2).max()
    assert scale > 0
    np.testing.assert_allclose(centre / scale, f2 / scale, atol=1e-4)
    return f2, f3


@pytest.mark.slow
def test_resnet50_inflation_property():
    m2 = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = resnet.ResNet50(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "conv2_block3_out", "conv2_block3_out", 32, 48)


@pytest.mark.slow
def test_densenet121_inflation_property():
    m2 = keras.applications.DenseNet121(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = densenet.DenseNet121(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "pool2_pool", "pool2_pool", 32, 80)


@pytest.mark.slow
def test_inception_v3_inflation_property():
    m2 = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = inception_v3.InceptionV3(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "mixed0", "mixed0", 40, 75)


def _tiny(dims, channels, filters=4, extra=False):
    conv = keras.layers.Conv2D if dims == 2 else keras.layers.Conv3D
    pool = keras.layers.GlobalAveragePooling2D if dims == 2 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input((None,) * dims + (channels,))
    x = conv(filters, 3, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = conv(filters, 3)(x)  # automatically named: paired by order
    if extra:
        x = conv(filters, 1, name="extra")(x)
    x = pool()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x), name=f"tiny{dims}d")


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_inflate_kernel_rules(channels):
    m2, m3 = _tiny(2, 3), _tiny(3, channels)
    _randomise(m2)
    inflate(m2, m3)
    k2 = m2.get_layer("stem").get_weights()[0]
    k3 = m3.get_layer("stem").get_weights()[0]
    assert k3.shape == (3, 3, 3, channels, 4)
    expected = k2 if channels == 3 else np.repeat(k2.sum(2, keepdims=True) / channels, channels, 2)
    for z in range(3):
        np.testing.assert_allclose(k3[:, :, z], expected / 3, rtol=1e-6)
    second = [layer for layer in m3.layers if layer.name.startswith("conv3d")][0]
    np.testing.assert_allclose(second.get_weights()[0].sum(axis=2),
                               [la for la in m2.layers if la.name.startswith("conv2d")][0]
                               .get_weights()[0], rtol=1e-5, atol=1e-7)
    for name in ("stem_bn", "predictions"):
        for a, b in zip(m2.get_layer(name).get_weights(), m3.get_layer(name).get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    centre = inflate(m2, _tiny(3, channels), mode="centre").get_layer("stem").get_weights()[0]
    np.testing.assert_allclose(centre[:, :, 1], expected, rtol=1e-6)
    assert not centre[:, :, 0].any() and not centre[:, :, 2].any()


def test_inflate_fails_naming_the_layer():
    with pytest.raises(ValueError, match="'extra'"):
        inflate(_tiny(2, 3), _tiny(3, 1, extra=True))
    with pytest.raises(ValueError, match="'stem'.*output channels"):
        inflate(_tiny(2, 3), _tiny(3, 1, filters=5))


def test_load_imagenet_caches_the_inflated_weights(keras_home):
    calls = []

    def TinyNet(include_top, weights):  # stands in for a keras.applications constructor
        calls.append((include_top, weights))
        model = _tiny(2, 3)
        _randomise(model, seed=len(calls))
        return model

    first = load_imagenet(_tiny(3, 1), TinyNet, include_top=True)
    assert calls == [(True, "imagenet")]
    cached = list((keras_home / "models" / "kerasbrain").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith(".weights.h5")
    second = load_imagenet(_tiny(3, 1), TinyNet, include_top=True)
    assert len(calls) == 1  # read from the cache, not rebuilt
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    load_imagenet(_tiny(3, 2), TinyNet, include_top=True)  # another shape: another entry
    assert len(calls) == 2 and len(list(cached[0].parent.iterdir())) == 2
