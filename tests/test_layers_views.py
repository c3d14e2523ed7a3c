"""kerasbrain.layers.views: resized crop, blur and cutout against exact references."""

import keras
import numpy as np
import pytest
from scipy import ndimage

from kerasbrain.layers import RandomBlur3D, RandomCutout3D, RandomResizedCrop3D, view_augmentation
from kerasbrain.layers.augment import augment_with_seed


def volumes(batch=2, shape=(8, 9, 10), seed=0):
    return (np.random.default_rng(seed).random((batch, *shape, 1)) + 0.5).astype("float32")


def test_resized_crop_whole_volume_is_identity_and_a_crop_zooms():
    x = volumes()
    same = RandomResizedCrop3D(scale=1.0, aspect=1.0)(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(same), x, atol=1e-5)
    ramp = np.broadcast_to(np.arange(16, dtype="float32")[:, None, None, None], (16, 16, 16, 1))[None]
    out = keras.ops.convert_to_numpy(RandomResizedCrop3D(scale=0.125, aspect=1.0, seed=1)(ramp, training=True))
    slope = np.diff(out[0, :, 8, 8, 0])
    np.testing.assert_allclose(slope, 0.5, atol=1e-4)  # half the side: a 2x zoom along x
    assert np.ptp(out[0, 8, :, :, 0]) < 1e-5


def test_blur_matches_scipy_gaussian_filter():
    x = volumes(shape=(10, 11, 12))
    out = keras.ops.convert_to_numpy(RandomBlur3D(sigma=1.0, probability=1.0)(x, training=True))
    for b in range(2):
        expected = ndimage.gaussian_filter(x[b, ..., 0], 1.0, mode="reflect", truncate=3.0)
        np.testing.assert_allclose(out[b, ..., 0], expected, atol=1e-5)
    unchanged = RandomBlur3D(probability=0.0)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unchanged), x)


def test_cutout_fills_one_box_and_keeps_the_rest():
    x = volumes(batch=4, shape=(12, 12, 12))
    out = keras.ops.convert_to_numpy(RandomCutout3D(size=(0.25, 0.5), probability=1.0, seed=3)(x, training=True))
    for b in range(4):
        hole = out[b, ..., 0] == 0.0
        np.testing.assert_array_equal(out[b, ..., 0][~hole], x[b, ..., 0][~hole])
        box = [np.flatnonzero(hole.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        sides = [len(i) for i in box]
        assert all(3 <= s <= 6 and np.all(np.diff(i) == 1) for s, i in zip(sides, box, strict=True))
        assert hole.sum() == np.prod(sides)


@pytest.mark.backend_independent
def test_view_augmentation_seeded_in_tf_data_and_round_trips(tmp_path):
    import tensorflow as tf

    layer = view_augmentation(seed=0)
    x = volumes(1, (12, 12, 12))[0]
    a, b = (augment_with_seed(layer, tf.constant(x), tf.constant([7, 1])).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    other = augment_with_seed(layer, tf.constant(x), tf.constant([8, 1])).numpy()
    assert np.abs(a - other).mean() > 1e-3
    model = keras.Sequential([keras.Input((12, 12, 12, 1)), layer])
    model.save(tmp_path / "views.keras")
    loaded = keras.saving.load_model(tmp_path / "views.keras")
    assert [type(v).__name__ for v in loaded.layers[0].layers] == [
        "RandomResizedCrop3D", "RandomFlip3D", "RandomBlur3D", "RandomIntensity", "RandomCutout3D"]
    with pytest.raises(ValueError, match="scale must be"):
        RandomResizedCrop3D(scale=(0.5, 1.5))
