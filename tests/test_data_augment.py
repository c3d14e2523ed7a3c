"""kerasbrain.layers augmentation: exact transforms, training flag, seeds, models, tf.data."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from kerasbrain.layers import (
    RandomAffine3D,
    RandomCrop3D,
    RandomFlip3D,
    RandomIntensity,
    RandomShift3D,
    augmentation,
)
from kerasbrain.layers.augment import affine_resample, augment_with_seed


def volumes(batch=2, shape=(9, 10, 11), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((batch, *shape, 1)) + 0.5).astype("float32")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("fill", [0.0, 2.0])
def test_affine_resample_matches_scipy_map_coordinates(fill):
    x = volumes()
    rng = np.random.default_rng(1)
    matrix = (np.eye(3) + rng.normal(0, 0.15, (2, 3, 3))).astype("float32")
    offset = rng.normal(0, 1.5, (2, 3)).astype("float32")
    backend = RandomAffine3D().backend
    out = numpy(affine_resample(backend, keras.ops.convert_to_tensor(x), matrix, offset, fill))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in x.shape[1:4]], indexing="ij"), 0).reshape(3, -1)
    for b in range(2):
        coords = matrix[b] @ grid + offset[b][:, None]
        expected = ndimage.map_coordinates(x[b, ..., 0], coords, order=1, mode="grid-constant", cval=fill)
        np.testing.assert_allclose(out[b, ..., 0].reshape(-1), expected, atol=1e-5)


def test_flip_shift_crop_are_exact_voxel_moves():
    x = volumes()
    flipped = numpy(RandomFlip3D(axes=(0, 2), probability=1.0)(x, training=True))
    np.testing.assert_array_equal(flipped, x[:, ::-1, :, ::-1])
    np.testing.assert_array_equal(numpy(RandomFlip3D(probability=0.0)(x, training=True)), x)

    shifted = numpy(RandomShift3D(max_shift=2, seed=3)(x, training=True))
    for b in range(2):
        matches = []
        for shift in itertools.product(range(-2, 3), repeat=3):
            moved = ndimage.shift(x[b, ..., 0], shift, order=0, mode="constant", cval=0.0)
            if np.array_equal(moved, shifted[b, ..., 0]):
                matches.append(shift)
        assert len(matches) == 1

    crop = RandomCrop3D((5, 6, 7), seed=2)
    cropped = numpy(crop(x, training=True))
    assert cropped.shape == (2, 5, 6, 7, 1)
    for b in range(2):
        windows = [
            (i, j, k)
            for i, j, k in itertools.product(range(5), range(5), range(5))
            if np.array_equal(x[b, i : i + 5, j : j + 6, k : k + 7], cropped[b])
        ]
        assert len(windows) == 1
    np.testing.assert_array_equal(numpy(crop(x, training=False)), x[:, 2:7, 2:8, 2:9])


def test_intensity_components():
    x = volumes(batch=3)
    scaled = numpy(RandomIntensity(scale=0.2, gamma=0, noise=0, bias=0, seed=1)(x, training=True))
    ratio = scaled / x
    for b in range(3):
        assert np.ptp(ratio[b]) < 1e-5 and 0.8 <= ratio[b].mean() <= 1.2
    gamma = numpy(RandomIntensity(scale=0, gamma=0.5, noise=0, bias=0, seed=1)(x, training=True))
    np.testing.assert_allclose(gamma.min(axis=(1, 2, 3, 4)), x.min(axis=(1, 2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(gamma.max(axis=(1, 2, 3, 4)), x.max(axis=(1, 2, 3, 4)), rtol=1e-5)
    assert np.all(np.diff(np.sort(gamma[0].ravel())) >= -1e-6)  # monotone map keeps order
    biased = numpy(RandomIntensity(scale=0, gamma=0, noise=0, bias=0.1, bias_order=2, seed=1)(x, training=True))
    log_field = np.log(biased / x)[..., 0]
    assert 0 < np.abs(log_field).max() <= 0.1 * 9  # nine monomials of degree 1-2, |coords| <= 1
    assert np.abs(np.diff(log_field, axis=1)).max() < 0.2  # smooth
    noisy = numpy(RandomIntensity(scale=0, gamma=0, noise=0.1, bias=0, seed=1)(x, training=True))
    residual = noisy - x
    assert residual.std() == pytest.approx(0.1 * x.std(), rel=0.2)


def test_training_flag_seeds_and_identity_parameters():
    x = volumes()
    layers = [RandomFlip3D(seed=1), RandomShift3D(seed=1), RandomAffine3D(seed=1), RandomIntensity(seed=1)]
    for layer in layers:
        np.testing.assert_array_equal(numpy(layer(x, training=False)), x)
    for cls in (RandomShift3D, RandomIntensity):
        a, b = numpy(cls(seed=5)(x, training=True)), numpy(cls(seed=5)(x, training=True))
        np.testing.assert_array_equal(a, b)
        layer = cls(seed=5)
        assert not np.array_equal(numpy(layer(x, training=True)), numpy(layer(x, training=True)))
    identity = RandomAffine3D(rotation=0, scale=0, translation=0)(x, training=True)
    np.testing.assert_allclose(numpy(identity), x, atol=1e-6)
    unbatched = numpy(RandomShift3D(max_shift=1, seed=5)(x[0], training=True))
    assert unbatched.shape == x[0].shape


def test_layers_in_a_model_save_and_reload(tmp_path):
    inputs = keras.Input((12, 12, 12, 1))
    hidden = augmentation(strength=0.5, affine=True, seed=1)(inputs)
    hidden = RandomCrop3D((8, 8, 8))(hidden)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling3D()(hidden))
    model = keras.Model(inputs, outputs)
    x = volumes(batch=4, shape=(12, 12, 12))
    y = np.arange(4, dtype="float32")
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(numpy(loaded.predict(x, verbose=0)), numpy(model.predict(x, verbose=0)), rtol=1e-5)
    layer = loaded.get_layer("augmentation").layers[2]
    assert isinstance(layer, RandomAffine3D) and layer.rotation == (5.0, 5.0, 5.0) and layer.seed == 3


def test_layers_run_in_tf_data_on_any_backend():
    x = volumes(batch=3)
    pipeline = augmentation(strength=1.0, affine=True, seed=0)
    flip = RandomFlip3D(probability=1.0)
    ds = tf.data.Dataset.from_tensor_slices(x).map(lambda v: flip(v))
    for out, original in zip(ds, x, strict=True):
        assert isinstance(out, tf.Tensor)
        np.testing.assert_array_equal(out.numpy(), original[::-1])
    seeds = tf.data.Dataset.random(seed=1)
    ds = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(x), seeds)
    ds = ds.map(lambda v, s: augment_with_seed(pipeline, v, s), num_parallel_calls=3)
    first, second = [o.numpy() for o in ds], [o.numpy() for o in ds]
    assert first[0].shape == x[0].shape and not np.array_equal(first[0], x[0])
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_noise_draws_are_standard_normal_in_the_model_and_in_tf_data():
    from scipy import stats

    layer = RandomIntensity(scale=0, gamma=0, noise=1.0, bias=0, seed=4)
    x = np.zeros((3, 20, 20, 21, 1), "float32")
    x[:, :10] = 1.0  # volume std 0.5: the noise is 0.5 x a standard normal
    for noisy in (keras.ops.convert_to_numpy(layer(x, training=True)),
                  augment_with_seed(layer, tf.constant(x), tf.constant([3, 9])).numpy()):
        draws = ((noisy - x) / 0.5).ravel()
        assert stats.kstest(draws, "norm").pvalue > 1e-3
        assert abs(draws.mean()) < 0.02 and abs(draws.std() - 1.0) < 0.02
        # the two Box-Muller outputs (first and second half of the last spatial axis) are independent
        halves = (noisy - x)[..., :10, 0].ravel(), (noisy - x)[..., 11:, 0].ravel()
        assert abs(np.corrcoef(*halves)[0, 1]) < 0.03
