"""kerasbrain.pretraining.losses: NT-Xent, y-aware and masked MSE against NumPy references."""

import keras
import numpy as np
import pytest

from kerasbrain.pretraining import contrastive_loss, masked_mse, nt_xent, y_aware_nt_xent


def reference(z1, z2, temperature, labels=None, sigma=None):
    """Per-anchor loops, straight from the formulas (Chen 2020; Dufumier 2021)."""
    z = np.concatenate([z1, z2]).astype("float64")
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    y = None if labels is None else np.concatenate([labels, labels]).astype("float64")
    total = 0.0
    for i in range(n2):
        others = [k for k in range(n2) if k != i]
        logits = np.array([z[i] @ z[k] / temperature for k in others])
        log_prob = logits - np.log(np.sum(np.exp(logits)))
        positive = (i + n) % n2
        weights = np.array([1.0 if k == positive else 0.0 for k in others])
        if y is not None and not np.isnan(y[i]):
            weights = np.array([np.exp(-(y[i] - y[k]) ** 2 / (2 * sigma**2)) if not np.isnan(y[k])
                                else float(k == positive) for k in others])
        weights /= weights.sum()
        total += -np.sum(weights * log_prob)
    return total / n2


def embeddings(n=5, d=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.normal(size=(n, d)).astype("float32")


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_numpy(temperature):
    z1, z2 = embeddings()
    value = keras.ops.convert_to_numpy(nt_xent(z1, z2, temperature))
    np.testing.assert_allclose(value, reference(z1, z2, temperature), rtol=1e-5)


def test_y_aware_matches_numpy_with_missing_labels():
    z1, z2 = embeddings(6)
    ages = np.array([30.0, 32.0, np.nan, 60.0, 61.5, 45.0], "float32")
    value = keras.ops.convert_to_numpy(y_aware_nt_xent(z1, z2, ages, sigma=5.0, temperature=0.2))
    np.testing.assert_allclose(value, reference(z1, z2, 0.2, ages, 5.0), rtol=1e-5)
    # no label at all, or a vanishing kernel: NT-Xent
    missing = np.full(6, np.nan, "float32")
    simclr = reference(z1, z2, 0.2)
    for labels, sigma in ((missing, 5.0), (ages, 1e-4)):
        value = keras.ops.convert_to_numpy(y_aware_nt_xent(z1, z2, labels, sigma=sigma, temperature=0.2))
        np.testing.assert_allclose(value, simclr, rtol=1e-5)
    assert abs(reference(z1, z2, 0.2, ages, 5.0) - simclr) > 1e-3


def test_masked_mse_counts_masked_voxels_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 4, 2)).astype("float32")
    mask = (rng.random((2, 4, 4, 4, 1)) < 0.4).astype("float32")
    good = x + 0.5 * mask  # error 0.25 on every masked voxel
    garbage = good + 100.0 * (1.0 - mask)  # anything on unmasked voxels
    for reconstruction in (good, garbage):
        value = keras.ops.convert_to_numpy(masked_mse(x, reconstruction, mask))
        np.testing.assert_allclose(value, 0.25, rtol=1e-6)


@pytest.mark.backend_independent
def test_bad_loss_inputs():
    z1, z2 = embeddings(1)
    with pytest.raises(ValueError, match="at least 2 volumes"):
        nt_xent(z1, z2)
    z1, z2 = embeddings(3)
    for temperature in (0.0, -0.1):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            nt_xent(z1, z2, temperature)
    with pytest.raises(ValueError, match="sigma > 0"):
        contrastive_loss(z1, z2, labels=np.ones(3), sigma=0.0)
    with pytest.raises(ValueError, match="both be"):
        nt_xent(z1, z2[:2])
