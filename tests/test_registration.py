"""Affine registration: a known affine recovered, the transform file, resampling both ways."""

import json

import numpy as np
import pytest

from kerasbrain.data import registration as reg
from kerasbrain.data.io import Volume, VolumeError
from kerasbrain.data.template import GRIDS, get_grid

pytest.importorskip("SimpleITK")
pytestmark = pytest.mark.backend_independent


def rotation(degrees):
    """4x4 rotation about x, then y, then z (degrees)."""
    out = np.eye(4)
    for axis, angle in enumerate(np.radians(degrees)):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(4)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


@pytest.fixture(scope="module")
def template():
    """A synthetic head (48^3 at 4 mm, world origin at the centre) standing in for MNI152."""
    from kerasbrain.datasets.synthetic import make_cohort

    volumes, _ = make_cohort(1, shape=(48, 48, 48), sites=[0], seed=3)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -4.0 * 23.5
    return Volume(volumes[0] / volumes[0].max(), affine)


def native_scan(template, matrix, orientation="PSR"):
    """The template seen through ``matrix`` (template world -> native world) on a PSR grid."""
    grid = np.array([[0, 0, -5.0, 100], [-5.0, 0, 0, 110], [0, 5.0, 0, -90], [0, 0, 0, 1]])
    return reg.resample_to_grid(template, np.linalg.inv(matrix), ((40, 36, 44), grid))


def test_register_recovers_known_affine(template):
    known = rotation([4, -3, 6])
    known[:3, :3] = known[:3, :3] @ np.diag([1.06, 0.96, 1.03])
    known[:3, 3] = [6.0, -9.0, 4.0]
    native = native_scan(template, known)
    registered, transform = reg.register(native, template=template, grid=template)
    inside = np.argwhere(template.array > 0.2)
    points = template.affine @ np.c_[inside, np.ones(len(inside))].T
    error = np.linalg.norm((transform.matrix - known) @ points, axis=0)
    assert error.max() < 4.0, error.max()  # mm, voxels are 4-5 mm
    assert np.median(error) < 2.0
    assert registered.shape == template.shape
    np.testing.assert_allclose(registered.affine, template.affine)
    assert transform.native_shape == native.shape
    r = np.corrcoef(registered.array.ravel(), template.array.ravel())[0, 1]
    assert r > 0.95
    _, again = reg.register(native, template=template, grid=template)  # same seed, same result
    np.testing.assert_allclose(again.matrix, transform.matrix, rtol=0, atol=1e-4)  # threads: ~1e-6
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        reg.register(native, template=template, grid=template, seed=-1)


def test_transform_file_round_trip(tmp_path):
    matrix = rotation([3, 2, 1])
    matrix[:3, 3] = [1, 2, 3]
    native = np.diag([2.0, 2.0, 2.0, 1.0])
    transform = reg.AffineTransform(matrix, (10, 11, 12), native)
    transform.save(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["format"] == "kerasbrain-affine/1"
    assert data["matrix"] == matrix.tolist()
    loaded = reg.AffineTransform.load(tmp_path / "t.json")
    np.testing.assert_array_equal(loaded.matrix, matrix)
    np.testing.assert_array_equal(loaded.native_affine, native)
    assert loaded.native_shape == (10, 11, 12)
    np.testing.assert_allclose(loaded.inverse_matrix() @ matrix, np.eye(4), atol=1e-12)
    (tmp_path / "bad.json").write_text(json.dumps({"matrix": matrix.tolist()}))
    with pytest.raises(ValueError, match="bad.json.*format"):
        reg.AffineTransform.load(tmp_path / "bad.json")


def test_to_native_undoes_apply_transform():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    array = ndimage.gaussian_filter(rng.normal(size=(30, 34, 28)), 3).astype("float32")
    affine = np.array([[0, 0, -3.0, 40], [-3.0, 0, 0, 50], [0, 3.0, 0, -40], [0, 0, 0, 1]])
    native = Volume(array, affine)
    matrix = rotation([10, 0, -7])
    matrix[:3, 3] = [3, -2, 5]
    transform = reg.AffineTransform(matrix, native.shape, native.affine)
    fine = ((100, 110, 100), np.diag([1.0, 1.0, 1.0, 1.0]) @ np.array(
        [[1, 0, 0, -50], [0, 1, 0, -55], [0, 0, 1, -50], [0, 0, 0, 1]]))
    moved = reg.apply_transform(native, transform, grid=fine)
    back = reg.to_native(moved, transform)
    assert back.shape == native.shape
    np.testing.assert_allclose(back.affine, native.affine)
    interior = (slice(6, -6),) * 3
    r = np.corrcoef(back.array[interior].ravel(), array[interior].ravel())[0, 1]
    assert r > 0.99, r
    # a voxel's world position: native voxel -> template world -> fine grid voxel
    voxel = np.array([15, 17, 14, 1.0])
    world = np.linalg.inv(matrix) @ affine @ voxel
    index = np.round(np.linalg.inv(fine[1]) @ world).astype(int)[:3]
    assert abs(moved.array[tuple(index)] - array[15, 17, 14]) < 0.1 * np.ptp(array)


def test_identity_resampling_is_exact():
    array = np.arange(4 * 5 * 6, dtype="float32").reshape(4, 5, 6)
    volume = Volume(array, np.diag([2.0, 3.0, 4.0, 1.0]))
    same = reg.resample_to_grid(volume, np.eye(4), volume)
    np.testing.assert_allclose(same.array, array, atol=1e-4)


def test_grids():
    shape, affine = get_grid("ukb")
    assert shape == (182, 218, 182)
    np.testing.assert_array_equal(affine, [[-1, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72],
                                           [0, 0, 0, 1]])
    np.testing.assert_array_equal(get_grid("ukb-sex")[1], GRIDS["mni152-fsl-1mm"][1])
    shape, affine = get_grid("multi-2025")
    assert shape == (256, 256, 256)
    assert "".join(__import__("nibabel").aff2axcodes(affine)) == "LIA"
    np.testing.assert_allclose(affine @ [128, 128, 128, 1], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        get_grid("nope")


def test_register_rejects_empty_and_nan(template):
    with pytest.raises(VolumeError, match="empty.nii.*no brain"):
        reg.register(Volume(np.zeros((8, 8, 8), "float32"), np.eye(4), "empty.nii"),
                     template=template)
    bad = np.ones((8, 8, 8), "float32")
    bad[0, 0, 0] = np.nan
    with pytest.raises(VolumeError, match="nan.nii.*NaN"):
        reg.register(Volume(bad, np.eye(4), "nan.nii"), template=template)


def test_without_simpleitk_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "SimpleITK", None)
    volume = Volume(np.ones((8, 8, 8), "float32"), np.eye(4))
    with pytest.raises(ModuleNotFoundError, match=r'pip install "kerasbrain\[prepare\]"'):
        reg.register(volume, template=volume)
