"""kerasbrain.pretraining models: views, label alignment, training, .keras round trips, errors."""

import keras
import numpy as np
import pytest

import kerasbrain as kb
from kerasbrain.pretraining import Contrastive, MaskedVolume
from tests.test_pretraining_losses import reference

SHAPE = (16, 16, 16, 1)


def backbone(pooling="avg"):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling3D(2)(x)
    x = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling3D(2)(x)
    if pooling:
        x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, x, name="tiny")


def volumes(n=8, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 16)] * 3, indexing="ij"), -1)
    radius = rng.uniform(0.3, 0.9, n)
    x = (np.linalg.norm(grid, axis=-1)[None] < radius[:, None, None, None]).astype("float32")
    return (x + 0.05 * rng.normal(size=x.shape)).astype("float32")[..., None]


def test_two_views_differ_and_labels_stay_aligned():
    x = volumes(6)
    ages = np.array([20.0, 25.0, np.nan, 50.0, 52.0, 80.0], "float32")
    model = Contrastive(backbone(), projection_dim=8, kernel=("age", 5.0), temperature=0.2, seed=1)
    views = [keras.ops.convert_to_numpy(model.augment(x, training=True)) for _ in range(2)]
    assert views[0].shape == x.shape and np.abs(views[0] - views[1]).mean() > 1e-3
    z = keras.ops.convert_to_numpy(model(x, training=True))
    assert z.shape == (12, 8)
    # compute_loss pairs row i of each view with label i (here through a dataset-style weight)
    filled = np.nan_to_num(ages)
    weights = (~np.isnan(ages)).astype("float32")
    loss = model.compute_loss(x, {"age": filled[:, None]}, z, {"age": weights})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), reference(z[:6], z[6:], 0.2, ages, 5.0),
                               rtol=1e-4)
    same = Contrastive(model.backbone, projection_dim=8, augment=keras.layers.Identity())
    z = keras.ops.convert_to_numpy(same(x, training=False))
    np.testing.assert_allclose(z[:6], z[6:], atol=1e-6)


class Alternate(keras.layers.Layer):
    """Views without randomness: the second call of a trace scales the volumes by 10."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, x, training=None):
        self.calls += 1
        return x * (10.0 if self.calls % 2 == 0 else 1.0)


def test_each_view_has_its_own_batchnorm_statistics():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv3D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-6)(x)
    outputs = keras.layers.GlobalAveragePooling3D()(keras.layers.ReLU()(x))
    model = Contrastive(keras.Model(inputs, outputs), projection_dim=4, augment=Alternate())
    # BatchNorm over one view undoes its scale: both views give the same features; one
    # batch of both views would normalise them together and they would differ tenfold
    z = keras.ops.convert_to_numpy(model(volumes(4), training=True))
    np.testing.assert_allclose(z[:4], z[4:], rtol=1e-3, atol=1e-4)
    assert np.abs(z[:4]).max() > 1e-3


def test_contrastive_fit_lowers_loss_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x = volumes(16)
    model = Contrastive(backbone(), projection_dim=8, temperature=0.2,
                        augment=kb.layers.RandomIntensity(scale=0.05, gamma=0.1, noise=0.05, bias=0.0, seed=2))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    loss = model.fit(x, batch_size=8, epochs=8, verbose=0).history["loss"]
    assert np.mean(loss[-2:]) < loss[0] - 0.05, loss
    path = tmp_path / "contrastive.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Contrastive) and loaded.temperature == 0.2
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    model.backbone.save(tmp_path / "backbone.keras")
    features = keras.saving.load_model(tmp_path / "backbone.keras").predict(x, verbose=0)
    np.testing.assert_allclose(features, model.backbone.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    tuned = kb.transfer.finetune(loaded.backbone, [kb.tasks.Binary("big")], strategy="frozen")
    assert tuned.predict(x, verbose=0)["big"].shape == (16, 1)


@pytest.mark.parametrize("vit", [False, True])
def test_masked_volume_fit_lowers_loss_and_round_trips(tmp_path, vit):
    x = volumes(8)
    if vit:
        net = kb.applications.ViT(include_top=False, pooling="avg", input_shape=SHAPE, patch_size=4,
                                  hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=32)
        model = MaskedVolume(net, mask_ratio=0.5, patch_size=4, decoder_dim=16, decoder_heads=2, seed=0)
    else:
        model = MaskedVolume(backbone(), mask_ratio=0.5, patch_size=4, seed=0)
    out = model(x)
    mask = keras.ops.convert_to_numpy(out["mask"])
    assert out["reconstruction"].shape == x.shape
    np.testing.assert_allclose(mask.reshape(8, -1).mean(1), 0.5)  # 32 of 64 patches per volume
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    loss = model.fit(x, batch_size=2, epochs=8, verbose=0).history["loss"]
    assert np.mean(loss[-2:]) < 0.7 * loss[0], loss
    model.save(tmp_path / "masked.keras")
    loaded = keras.saving.load_model(tmp_path / "masked.keras")
    assert isinstance(loaded, MaskedVolume) and loaded.mae == vit
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.backend_independent
def test_bad_pretraining_inputs():
    with pytest.raises(ValueError, match="pooled features"):
        Contrastive(backbone(pooling=None))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Contrastive(backbone(), temperature=0.0)
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="mask_ratio must be in"):
            MaskedVolume(backbone(), mask_ratio=ratio)
    with pytest.raises(ValueError, match="does not divide"):
        MaskedVolume(backbone(), patch_size=5)
    x = volumes(4)
    model = Contrastive(backbone(), kernel=("age", 5.0))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="kernel label 'age' is missing"):
        model.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"kernel label 'age' is not among the labels \['sex'\]"):
        model.fit(x, {"sex": np.zeros(4)}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        model.fit(x, {"age": np.ones(4)}, batch_size=1, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="at least 2 volumes"):
        model.fit(x[:1], {"age": np.ones(1)}, epochs=1, verbose=0)
