"""Inflation of 2D keras.applications weights into the 3D families."""

import keras
import numpy as np

from kerasbrain.applications import densenet, inception_v3, resnet
from kerasbrain.applications.inflate import inflate


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


def test_resnet50_inflation_property():
    m2 = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = resnet.ResNet50(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "conv2_block3_out", "conv2_block3_out", 32, 48)


def test_densenet121_inflation_property():
    m2 = keras.applications.DenseNet121(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = densenet.DenseNet121(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "pool2_pool", "pool2_pool", 32, 96)


def test_inception_v3_inflation_property():
    m2 = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(None, None, 3))
    m3 = inception_v3.InceptionV3(include_top=False, input_shape=(None, None, None, 1))
    _check_property(m2, m3, "mixed0", "mixed0", 40, 75)
