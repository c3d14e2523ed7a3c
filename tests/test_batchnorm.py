"""FastBatchNormalization against keras.layers.BatchNormalization: outputs, gradients, moving statistics."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasbrain.layers.batchnorm import FastBatchNormalization

CASES = [
    (dict(), (2, 5, 4, 6, 3)),
    (dict(momentum=0.9, epsilon=1e-5, center=False), (1, 4, 6, 5, 4)),
    (dict(scale=False, epsilon=1e-6), (2, 3, 4, 2, 2)),  # below the fused kernel's epsilon
    (dict(), (3, 6, 5, 2)),
]


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_matches_batch_normalization(kwargs, shape, gradients):
    reference, fast = keras.layers.BatchNormalization(**kwargs), FastBatchNormalization(**kwargs)
    reference.build(shape)
    fast.build(shape)
    rng = np.random.default_rng(0)
    trainable = [rng.normal(size=w.shape).astype("float32") for w in reference.trainable_weights]
    moving = [rng.normal(size=w.shape).astype("float32") ** 2 for w in reference.non_trainable_weights]
    x = (rng.normal(size=shape) * 3 + 1).astype("float32")
    for training in (True, False):
        y, new = fast.stateless_call(trainable, moving, x, training=training)
        y_ref, new_ref = reference.stateless_call(trainable, moving, x, training=training)
        np.testing.assert_allclose(ops.convert_to_numpy(y), ops.convert_to_numpy(y_ref), rtol=1e-4, atol=1e-4)
        for a, b in zip(new, new_ref, strict=True):
            np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)
    r = rng.normal(size=shape).astype("float32")
    got = gradients(lambda v, *w: ops.sum(fast.stateless_call(list(w), moving, v, training=True)[0] * r),
                    [x, *trainable])
    want = gradients(lambda v, *w: ops.sum(reference.stateless_call(list(w), moving, v, training=True)[0] * r),
                     [x, *trainable])
    for g, w in zip(got, want, strict=True):
        g, w = ops.convert_to_numpy(g), ops.convert_to_numpy(w)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))


def test_fit_and_keras_round_trip(tmp_path):
    inputs = keras.Input((4, 4, 4, 2))
    model = keras.Model(inputs, FastBatchNormalization(momentum=0.5, name="bn")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(4, 4, 4, 4, 2)).astype("float32") * 2 + 3
    model.fit(x, x, epochs=1, batch_size=4, verbose=0)
    # moving mean after one step from 0 with momentum 0.5: half the batch mean
    np.testing.assert_allclose(ops.convert_to_numpy(model.get_layer("bn").moving_mean),
                               0.5 * x.mean(axis=(0, 1, 2, 3)), rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "bn.keras")
    loaded = keras.saving.load_model(tmp_path / "bn.keras")
    assert isinstance(loaded.get_layer("bn"), FastBatchNormalization)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)), atol=1e-6)
