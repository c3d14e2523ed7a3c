"""The synthetic cohort: its effects are real, it is deterministic, it writes NIfTI."""

import numpy as np
import pytest

from kerasbrain.datasets.synthetic import make_cohort

pytestmark = pytest.mark.backend_independent
SHAPE = (32, 32, 32)


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(48, shape=SHAPE, sites=2, seed=1)


def test_shapes_and_table(cohort):
    volumes, table = cohort
    assert volumes.shape == (48, *SHAPE) and volumes.dtype == np.float32
    assert np.isfinite(volumes).all()
    assert list(table.columns[:5]) == ["participant_id", "age", "sex", "site", "disease"]
    assert table["participant_id"].is_unique
    assert set(table["sex"]) == {"F", "M"} and set(table["site"]) == {0, 1}
    assert table["age"].between(20, 90).all()


def test_age_grows_ventricles_and_shrinks_brain(cohort):
    _, table = cohort
    assert np.corrcoef(table["age"], table["ventricle_volume_ml"])[0, 1] > 0.6
    assert np.corrcoef(table["age"], table["brain_volume_ml"])[0, 1] < -0.3


def test_ventricles_darker_in_old_images():
    """The image itself shows the effect: central CSF (dark) grows with age."""
    volumes, table = make_cohort(20, shape=SHAPE, sites=[0], seed=2, disease_prevalence=0.0)
    centre = volumes[:, 12:20, 12:20, 14:22].mean(axis=(1, 2, 3))
    brain = volumes[:, 8:24, 8:24, 8:24].mean(axis=(1, 2, 3))
    assert np.corrcoef(table["age"], centre / brain)[0, 1] < -0.6


def test_sex_changes_head_size(cohort):
    volumes, table = cohort
    male = table["sex"] == "M"
    assert table.loc[male, "brain_volume_ml"].mean() > 1.1 * table.loc[~male, "brain_volume_ml"].mean()
    head_voxels = (volumes > 0.3 * volumes.reshape(len(volumes), -1).max(axis=1)[:, None, None, None])
    head_voxels = head_voxels.sum(axis=(1, 2, 3))
    assert head_voxels[male.to_numpy()].mean() > head_voxels[~male.to_numpy()].mean()


def test_disease_shrinks_hippocampus(cohort):
    _, table = cohort
    sick = table["disease"] == 1
    assert sick.sum() > 5
    assert table.loc[sick, "hippocampus_volume_ml"].mean() < 0.8 * table.loc[~sick, "hippocampus_volume_ml"].mean()


def test_deterministic_with_seed():
    a, ta = make_cohort(4, shape=SHAPE, sites=[3], seed=7)
    b, tb = make_cohort(4, shape=SHAPE, sites=[3], seed=7)
    c, _ = make_cohort(4, shape=SHAPE, sites=[3], seed=8)
    np.testing.assert_array_equal(a, b)
    assert ta.equals(tb)
    assert not np.allclose(a, c)


def test_sites_differ_in_intensity():
    a, _ = make_cohort(4, shape=SHAPE, sites=[0], seed=3)
    b, _ = make_cohort(4, shape=SHAPE, sites=[1], seed=3)
    assert abs(np.log(a.mean() / b.mean())) > 1.0


def test_writes_nifti_in_requested_orientation(tmp_path):
    nib = pytest.importorskip("nibabel")
    volumes, _ = make_cohort(2, shape=(32, 36, 34), sites=[1], seed=5)
    table = make_cohort(2, shape=(32, 36, 34), sites=[1], seed=5, out_dir=tmp_path, orientation="PSR")
    assert (tmp_path / "participants.tsv").exists()
    assert not list(tmp_path.glob("*.part*"))
    image = nib.load(tmp_path / table["path"][1])
    assert nib.aff2axcodes(image.affine) == ("P", "S", "R")
    assert image.shape == (36, 34, 32)
    canonical = nib.as_closest_canonical(image)
    np.testing.assert_allclose(canonical.get_fdata(), volumes[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.abs(np.diag(canonical.affine)[:3]), [6.0, 192 / 36, 192 / 34])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        make_cohort(0)
    with pytest.raises(ValueError, match="shape"):
        make_cohort(2, shape=(32, 32))
