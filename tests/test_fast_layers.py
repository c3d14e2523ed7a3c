"""FastMaxPooling3D and FastConv3D against the Keras layers they replace: outputs, gradients, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasbrain.layers import FastMaxPooling3D


@pytest.mark.parametrize("shape,pool_size", [
    ((2, 8, 6, 4, 3), 2),
    ((1, 9, 7, 5, 2), 2),  # odd sizes: trailing voxels dropped, as with "valid" padding
    ((1, 9, 8, 10, 2), (3, 2, 5)),
])
def test_matches_keras_max_pooling(shape, pool_size, gradients):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")  # no ties
    fast, reference = FastMaxPooling3D(pool_size), keras.layers.MaxPooling3D(pool_size)
    y = ops.convert_to_numpy(fast(x))
    assert y.shape == tuple(reference.compute_output_shape(shape)) == fast.compute_output_shape(shape)
    np.testing.assert_array_equal(y, ops.convert_to_numpy(reference(x)))
    r = np.random.default_rng(1).normal(size=y.shape).astype("float32")
    (got,) = gradients(lambda v: ops.sum(fast(v) * r), [x])
    (want,) = gradients(lambda v: ops.sum(reference(v) * r), [x])
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(want), atol=1e-6)


def test_unknown_spatial_sizes_and_keras_round_trip(tmp_path):
    inputs = keras.Input((None, None, None, 2))
    model = keras.Model(inputs, FastMaxPooling3D((2, 1, 2), name="pool")(inputs))
    assert model.output.shape == (None, None, None, None, 2)
    x = np.random.default_rng(0).normal(size=(1, 6, 5, 7, 2)).astype("float32")
    expected = ops.convert_to_numpy(keras.layers.MaxPooling3D((2, 1, 2))(x))
    np.testing.assert_array_equal(ops.convert_to_numpy(model(x)), expected)
    model.save(tmp_path / "pool.keras")
    loaded = keras.saving.load_model(tmp_path / "pool.keras")
    assert loaded.get_layer("pool").pool_size == (2, 1, 2)
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)), expected)


@pytest.mark.parametrize("pool_size", [0, (2, 2), (2, -1, 2)])
def test_bad_pool_size(pool_size):
    with pytest.raises(ValueError, match="pool_size must be a positive int or 3 positive ints"):
        FastMaxPooling3D(pool_size)


@pytest.mark.parametrize("kwargs,shape", [
    (dict(filters=6, kernel_size=7, strides=2, padding="same"), (1, 15, 14, 13, 1)),
    (dict(filters=4, kernel_size=(5, 3, 7), strides=(2, 1, 3), padding="valid"), (2, 11, 9, 13, 3)),
    (dict(filters=3, kernel_size=3, strides=1, padding="same"), (1, 6, 6, 6, 2)),  # Conv3D's own path
])
def test_fast_conv3d_matches_conv3d(kwargs, shape, gradients):
    from kerasbrain.layers import FastConv3D

    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    reference, fast = keras.layers.Conv3D(**kwargs), FastConv3D(**kwargs, name="fast")
    reference.build(shape)
    fast.build(shape)
    fast.set_weights([np.random.default_rng(1).normal(size=w.shape).astype("float32")
                      for w in reference.get_weights()])
    weights = [ops.convert_to_numpy(w) for w in fast.weights]
    y = fast.stateless_call(weights, [], x)[0]
    expected = reference.stateless_call(weights, [], x)[0]
    assert tuple(y.shape) == tuple(expected.shape)
    np.testing.assert_allclose(ops.convert_to_numpy(y), ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-4)
    r = np.random.default_rng(2).normal(size=tuple(expected.shape)).astype("float32")
    got = gradients(lambda k, b, v: ops.sum(fast.stateless_call([k, b], [], v)[0] * r), [*weights, x])
    want = gradients(lambda k, b, v: ops.sum(reference.stateless_call([k, b], [], v)[0] * r), [*weights, x])
    for g, w in zip(got, want, strict=True):
        g, w = ops.convert_to_numpy(g), ops.convert_to_numpy(w)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))
