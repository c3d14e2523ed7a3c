"""kerasbrain.data: reading volumes, orientation, resampling, cropping, intensity, presets."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from kerasbrain.data import Preprocessor, VolumeError, load_volume
from kerasbrain.data.preprocess import reorient, resample
from kerasbrain.data.presets import get_preset, list_presets

pytestmark = pytest.mark.backend_independent

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IXI = next(
    (p for p in (os.path.join(_ROOT, "..", "shared", "data", "ixi50"),
                 os.path.join(_ROOT, "..", "..", "shared", "data", "ixi50")) if os.path.isdir(p)),
    "",
)


def save(path, array, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return str(path)


def psr_affine(spacing=2.0):
    """Voxel axes: i -> posterior, j -> superior, k -> right (like the IXI files)."""
    affine = np.zeros((4, 4))
    affine[0, 2] = spacing  # k increases toward R (+x)
    affine[1, 0] = -spacing  # i increases toward P (-y)
    affine[2, 1] = spacing  # j increases toward S (+z)
    affine[:3, 3] = (-10.0, 20.0, -30.0)
    affine[3, 3] = 1
    return affine


def test_psr_volume_comes_out_ras_with_voxels_in_place(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.random((6, 7, 8)).astype("float32") + 1  # (P, S, R) axes
    affine = psr_affine()
    path = save(tmp_path / "psr.nii.gz", stored, affine)
    volume = load_volume(path)
    assert volume.orientation == "PSR"
    assert volume.spacing == (2.0, 2.0, 2.0)
    ras = Preprocessor().transform(path)
    assert ras.orientation == "RAS"
    assert ras.shape == (8, 6, 7)
    # Every output voxel holds the stored value of the voxel at the same world position.
    for index in [(0, 0, 0), (7, 5, 6), (3, 1, 4), (2, 4, 0)]:
        world = ras.affine @ (*index, 1)
        source = np.linalg.solve(affine, world)[:3].round().astype(int)
        assert ras.array[index] == stored[tuple(source)]
    # Explicitly: R index = k, A index = (5 - i) (posterior flipped), S index = j.
    np.testing.assert_array_equal(ras.array, np.transpose(stored, (2, 0, 1))[:, ::-1, :])
    # and back to the stored orientation
    back = reorient(ras, "PSR")
    np.testing.assert_array_equal(back.array, stored)
    np.testing.assert_allclose(back.affine, affine)


def test_orientation_codes_are_configurable(tmp_path):
    path = save(tmp_path / "a.nii", np.arange(24, dtype="float32").reshape(2, 3, 4) + 1)
    las = Preprocessor(orientation="LAS").transform(path)
    assert las.orientation == "LAS"
    np.testing.assert_array_equal(las.array, load_volume(path).array[::-1])
    assert Preprocessor(orientation="lia").transform(path).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="orientation"):
        Preprocessor(orientation="RRS")


def test_resample_keeps_field_of_view_and_world_positions(tmp_path):
    x, y, z = np.meshgrid(np.arange(20), np.arange(16), np.arange(12), indexing="ij")
    ramp = (1 + 2 * x + 3 * y + 0.5 * z).astype("float32")  # linear: trilinear is exact
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    volume = resample(load_volume(save(tmp_path / "r.nii", ramp, affine)), 1.0)
    assert volume.shape == (40, 32, 24)
    assert volume.spacing == (1.0, 1.0, 1.0)
    # value at each interior output voxel = the linear function at its world position
    inner = volume.array[2:-2, 2:-2, 2:-2]
    i, j, k = np.meshgrid(*[np.arange(2, n - 2) for n in volume.shape], indexing="ij")
    world = np.einsum("ab,bijk->aijk", volume.affine[:3, :3], np.stack([i, j, k])) + volume.affine[:3, 3, None, None, None]
    expected = 1 + 2 * world[0] / 2 + 3 * world[1] / 2 + 0.5 * world[2] / 2
    np.testing.assert_allclose(inner, expected, atol=1e-4)
    assert Preprocessor(spacing=4.0).transform(volume).shape == (10, 8, 6)


def test_center_bbox_and_explicit_crops(tmp_path):
    array = np.zeros((20, 20, 20), dtype="float32")
    array[2:8, 3:9, 10:14] = 1.0  # brain box 6x6x4, centre (5, 6, 12)
    path = save(tmp_path / "b.nii", array)
    centre = Preprocessor(shape=(10, 30, 20)).transform(path)
    assert centre.shape == (10, 30, 20)
    np.testing.assert_array_equal(centre.array[:, 5:25], array[5:15])  # cropped x, padded y
    assert centre.array[:, :5].sum() == 0
    box = Preprocessor(shape=(8, 8, 8), crop="bbox").transform(path)
    assert box.array.sum() == array.sum()  # the whole brain is inside
    np.testing.assert_array_equal(box.array[1:7, 1:7, 2:6], 1.0)
    explicit = Preprocessor(crop=((2, 8), (3, 9), (10, 14))).transform(path)
    np.testing.assert_array_equal(explicit.array, 1.0)
    padded = Preprocessor(shape=(24, 20, 20), pad_value="min").transform(path)
    assert padded.array[0].sum() == 0
    with pytest.raises(VolumeError, match=r"b.nii: brain bounding box \(6, 6, 4\) is larger than the target shape \(5, 8, 8\)"):
        Preprocessor(shape=(5, 8, 8), crop="bbox").transform(path)


def test_intensity_modes(tmp_path):
    rng = np.random.default_rng(1)
    array = np.zeros((10, 10, 10), dtype="float32")
    array[2:8, 2:8, 2:8] = rng.random((6, 6, 6)) * 100 + 10
    path = save(tmp_path / "i.nii", array)
    np.testing.assert_allclose(Preprocessor(intensity="mean")(path).mean(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(Preprocessor(intensity=255)(path), array / 255, rtol=1e-6)
    minmax = Preprocessor(intensity="minmax")(path)
    assert minmax.min() == 0 and minmax.max() == pytest.approx(1.0)
    z = Preprocessor(intensity="zscore")(path)
    brain = z[array != 0]
    assert abs(brain.mean()) < 1e-4 and brain.std() == pytest.approx(1.0, rel=1e-4)
    assert np.all(z[array == 0] == 0)
    clipped = Preprocessor(clip_percentiles=(5, 95))(path)
    low, high = np.percentile(array[array != 0], (5, 95))
    assert clipped.max() == pytest.approx(high) and clipped[array != 0].min() == pytest.approx(low)
    assert Preprocessor(dtype="float16")(path).dtype == np.float16


def test_ukb_preset_matches_published_recipe(tmp_path):
    rng = np.random.default_rng(2)
    mni = (rng.random((182, 218, 182)) * 50 + 1).astype("float32")
    las = np.diag([-1.0, 1.0, 1.0, 1.0])
    las[:3, 3] = (90, -126, -72)  # FSL MNI152 1 mm
    path = save(tmp_path / "ukb.nii", mni, las)
    out = Preprocessor.for_weights("ukb")(path)
    assert out.shape == (160, 192, 160)
    np.testing.assert_allclose(out, (mni / mni.mean())[11:171, 13:205, 11:171], rtol=1e-5)
    assert Preprocessor.for_weights("ukb-sex").get_config() == Preprocessor.for_weights("ukb").get_config()
    pyment = Preprocessor.for_weights("dementia-2024")(path)
    np.testing.assert_allclose(pyment, (mni / 255)[6:173, 2:214, 0:160], rtol=1e-6)
    with pytest.raises(VolumeError, match=r"expected shape \(182, 218, 182\).*MNI152"):
        Preprocessor.for_weights("ukb")(save(tmp_path / "small.nii", mni[:100], las))


def test_presets_are_listed_and_documented():
    names = list_presets()
    for name in ("ukb", "ukb-sex", "brain-age-2022", "dementia-2024", "multi-2025",
                 "multi-2025-no-abcd", "reg-2025", "synthba"):
        assert name in names
        assert get_preset(name)["requires"]
    multi = Preprocessor.for_weights("reg-2025")
    assert (multi.orientation, multi.shape, multi.crop) == ("LIA", (224, 192, 224), "bbox")
    with pytest.raises(ValueError, match="unknown preprocessing preset 'nope'"):
        Preprocessor.for_weights("nope")


def test_multi_2025_mask_and_synthba(tmp_path):
    rng = np.random.default_rng(3)
    orig = (rng.random((40, 40, 40)) * 100 + 1).astype("float32")
    mask = np.zeros((40, 40, 40), dtype="uint8")
    mask[5:30, 8:20, 10:35] = 1
    lia = np.array([[-1.0, 0, 0, 20], [0, 0, 1, -20], [0, -1, 0, 20], [0, 0, 0, 1]])
    image = Preprocessor(**{**get_preset("multi-2025"), "shape": (32, 16, 32)}).transform(
        save(tmp_path / "orig.mgz", orig, lia), mask=save(tmp_path / "mask.nii", mask, lia)
    )
    assert image.orientation == "LIA" and image.shape == (32, 16, 32)
    assert image.array.sum() == pytest.approx(float((orig * mask).sum()), rel=1e-5)
    synth = Preprocessor(**{**get_preset("synthba"), "shape": (32, 32, 32)})(save(tmp_path / "s.nii", orig, np.eye(4)))
    assert synth.shape == (32, 32, 32) and synth.min() == 0 and synth.max() == pytest.approx(1)
    assert np.all(synth[0] == 0)  # 40 mm at 1.4 mm = 29 voxels, padded with the minimum


def test_bad_images_raise_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_volume(tmp_path / "missing.nii.gz")
    good = save(tmp_path / "good.nii.gz", np.ones((8, 8, 8), dtype="float32"))
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeError, match="truncated.nii.gz: cannot read image"):
        load_volume(truncated)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti file" * 30))
    with pytest.raises(VolumeError, match="garbage.nii.gz: cannot read image"):
        load_volume(garbage)
    with pytest.raises(VolumeError, match=r"flat.nii: expected a 3D image .* got shape \(8, 8\)"):
        load_volume(save(tmp_path / "flat.nii", np.ones((8, 8), dtype="float32")))
    with pytest.raises(VolumeError, match=r"series.nii: expected a 3D image .*\(8, 8, 8, 2\)"):
        load_volume(save(tmp_path / "series.nii", np.ones((8, 8, 8, 2), dtype="float32")))
    assert load_volume(save(tmp_path / "one.nii", np.ones((8, 8, 8, 1), dtype="float32"))).shape == (8, 8, 8)
    nan = np.ones((8, 8, 8), dtype="float32")
    nan[1, 2, 3] = np.nan
    nan[0, 0, 0] = np.inf
    with pytest.raises(VolumeError, match="nan.nii: 2 voxels are NaN or Inf"):
        load_volume(save(tmp_path / "nan.nii", nan))
    with pytest.raises(VolumeError, match="zeros.nii: all voxels are zero"):
        load_volume(save(tmp_path / "zeros.nii", np.zeros((8, 8, 8), dtype="float32")))


@pytest.mark.skipif(not IXI, reason="../shared/data/ixi50 not available")
def test_ixi_head_is_reoriented_to_ras():
    path = os.path.join(IXI, "t1", sorted(os.listdir(os.path.join(IXI, "t1")))[0])
    volume = load_volume(path)
    assert volume.orientation == "PSR" and volume.shape == (120, 120, 90)
    ras = Preprocessor(spacing=1.0, shape=(160, 192, 160), intensity="mean").transform(path)
    assert ras.orientation == "RAS" and ras.shape == (160, 192, 160) and ras.spacing == (1.0, 1.0, 1.0)
    # superior half holds the brain; the lowest slices (neck) are darker on average
    profile = ras.array.mean(axis=(0, 1))
    assert profile[100:140].mean() > profile[:20].mean()
