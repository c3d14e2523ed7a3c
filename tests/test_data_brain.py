"""extract_brain's pipeline on a synthetic head: orientation, localiser box, crop and resize
round trip, largest component, filled holes, TIV, and bad input."""

import warnings

import keras
import nibabel as nib
import numpy as np
import pytest

from kerasbrain.data import brain as brain_lib
from kerasbrain.data import extract_brain
from kerasbrain.data.io import Volume, VolumeError

pytestmark = pytest.mark.backend_independent

SHAPE = (60, 72, 50)  # stored axes P, S, R (as the IXI files), voxels 2.2 x 2.0 x 2.4 mm
SPACING = (2.2, 2.0, 2.4)
BRAIN, SCALP, SKULL, VENTRICLE = 1.0, 0.6, 0.3, 0.2


def synthetic_head():
    """``(Volume, expected_mask)``: brain ellipsoid (with a dark ventricle inside) in a
    skull and scalp, plus two bright 'eyes' outside the skull that are not brain."""
    index = np.indices(SHAPE).astype("float64")
    centre = (np.asarray(SHAPE) - 1) / 2 + np.asarray([3.0, -2.0, 1.0])
    mm = [(index[a] - centre[a]) * SPACING[a] for a in range(3)]

    def ellipsoid(radii, shift=(0, 0, 0)):
        return sum(((m - s) / r) ** 2 for m, r, s in zip(mm, radii, shift, strict=True)) <= 1

    head = np.zeros(SHAPE, dtype="float32")
    head[ellipsoid((58, 50, 48))] = SCALP
    head[ellipsoid((52, 44, 42))] = SKULL
    brain = ellipsoid((46, 38, 36))
    head[brain] = BRAIN
    head[ellipsoid((10, 6, 8), (4, 6, 0))] = VENTRICLE
    eyes = ellipsoid((4, 4, 4), (-50, -20, 20)) | ellipsoid((4, 4, 4), (-50, -20, -20))
    head[eyes] = BRAIN
    affine = np.zeros((4, 4))
    affine[1, 0] = -SPACING[0]  # array axis 0 runs posterior (P)
    affine[2, 1] = SPACING[1]  # axis 1 superior (S)
    affine[0, 2] = SPACING[2]  # axis 2 right (R)
    affine[:3, 3] = (-60, 70, -50)
    affine[3, 3] = 1
    return Volume(head, affine, "synthetic_head.nii.gz"), brain


class _Threshold(keras.layers.Layer):
    """Stand-in network: brain probability = sigmoid(200 (x - t)), ``t`` 70% of the way
    from the volume's minimum to its maximum (the synthetic brain is the brightest)."""

    def __init__(self, marks_nothing=False, unsure=False, **kwargs):
        super().__init__(**kwargs)
        self.marks_nothing, self.unsure = marks_nothing, unsure

    def call(self, x):
        low = keras.ops.min(x, axis=(1, 2, 3, 4), keepdims=True)
        high = keras.ops.max(x, axis=(1, 2, 3, 4), keepdims=True)
        p = keras.ops.sigmoid(200.0 * (x - (0.3 * low + 0.7 * high)) / (high - low))
        if self.marks_nothing:
            p = p * 0.0
        if self.unsure:  # 0.6 on the brightest voxels, 0.3 elsewhere
            p = 0.3 + 0.3 * p
        return keras.ops.concatenate([1.0 - p, p], axis=-1)


def oracle(size, marks_nothing=False, unsure=False):
    inputs = keras.Input((size, size, size, 1))
    return keras.Model(inputs, _Threshold(marks_nothing, unsure)(inputs))


@pytest.fixture(scope="module")
def models():
    return oracle(128), oracle(256)


def test_synthetic_head_gives_the_brain_on_its_own_grid(models):
    head, expected = synthetic_head()
    assert head.orientation == "PSR"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        brain, mask, tiv = extract_brain(head, models=models)
    assert mask.array.dtype == np.uint8 and mask.shape == SHAPE
    np.testing.assert_array_equal(mask.affine, head.affine)
    # eyes dropped (largest component), ventricle filled, nothing of skull or scalp
    np.testing.assert_array_equal(mask.array.astype(bool), expected)
    np.testing.assert_array_equal(brain.array, np.where(expected, head.array, 0))
    assert tiv == pytest.approx(expected.sum() * np.prod(SPACING) / 1000, rel=1e-9)


def test_file_input_stripped_brain_and_nans(tmp_path, models):
    head, expected = synthetic_head()
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(head.array, head.affine), path)
    _, mask, tiv = extract_brain(str(path), models=models)
    np.testing.assert_array_equal(mask.array.astype(bool), expected)
    stripped = Volume(np.where(expected, head.array, 0).astype("float32"), head.affine, "s.nii")
    with pytest.warns(UserWarning, match=r"s.nii: looks already skull-stripped"):
        _, mask_s, tiv_s = extract_brain(stripped, models=models)
    np.testing.assert_array_equal(mask_s.array, mask.array)
    nans = head.array.copy()
    nans[:3] = np.nan
    with pytest.warns(UserWarning, match=rf"{3 * SHAPE[1] * SHAPE[2]} voxels are NaN or Inf"):
        brain_n, mask_n, _ = extract_brain(Volume(nans, head.affine, "n.nii"), models=models)
    np.testing.assert_array_equal(mask_n.array, mask.array)
    assert np.isfinite(brain_n.array).all()


def test_bad_input_is_a_clear_error(tmp_path, models):
    head, _ = synthetic_head()
    with pytest.raises(VolumeError, match=r"flat.nii: the image is \(nearly\) constant"):
        extract_brain(Volume(np.full(SHAPE, 7.0, "float32"), head.affine, "flat.nii"),
                      models=models)
    with pytest.raises(VolumeError, match="h.nii: no head found: the localiser marks no brain"):
        extract_brain(Volume(head.array, head.affine, "h.nii"),
                      models=(oracle(128, marks_nothing=True), models[1]))
    with pytest.raises(VolumeError, match=r"h.nii: no head found: the localiser is unsure"):
        extract_brain(Volume(head.array, head.affine, "h.nii"),
                      models=(oracle(128, unsure=True), models[1]))
    for name, shape in (("4d.nii.gz", (*SHAPE, 2)), ("2d.nii.gz", SHAPE[:2])):
        path = tmp_path / name
        nib.save(nib.Nifti1Image(np.ones(shape, "float32"), np.eye(4)), path)
        with pytest.raises(VolumeError, match=rf"{name}: expected a 3D image"):
            extract_brain(path, models=models)


def test_nearest_exact_and_box_arithmetic():
    np.testing.assert_array_equal(brain_lib.nearest_exact_indices(6, 4), [0, 2, 3, 5])
    np.testing.assert_array_equal(brain_lib.nearest_exact_indices(3, 8), [0, 0, 0, 1, 1, 2, 2, 2])
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 1:3, 3:8] = True  # planes 2..5, 1..2, 3..7 of an 8^3 grid
    box = brain_lib.bounding_box(mask, (80, 40, 16), margin=0.1)
    # centres 4, 2, 5.5 and sizes 4, 2, 5 scaled by 10, 5, 2 and grown by 20%:
    # x: 40 +- 24, y: 10 +- 6, z: 11 +- 6 (round(12) = 12), clipped to the grid
    assert box == (slice(16, 64), slice(4, 16), slice(5, 16))


@pytest.mark.torch
def test_resize_and_box_match_deepbets_torch_code():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(0)
    for size_in, size_out in ((90, 128), (120, 128), (256, 91), (256, 255), (173, 256), (7, 3)):
        x = torch.arange(size_in, dtype=torch.float32)[None, None, :, None, None]
        ref = functional.interpolate(x, (size_out, 1, 1), mode="nearest-exact")[0, 0, :, 0, 0]
        np.testing.assert_array_equal(brain_lib.nearest_exact_indices(size_in, size_out),
                                      ref.numpy().astype(int), err_msg=f"{size_in}->{size_out}")
    for _ in range(20):
        small = np.zeros((128, 128, 128), bool)
        lo = rng.integers(0, 60, 3)
        hi = lo + rng.integers(30, 68, 3)
        small[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        shape = tuple(int(n) for n in rng.integers(60, 300, 3))
        ours, theirs = brain_lib.bounding_box(small, shape), _deepbet_box(torch, small, shape)
        assert [(b.start, b.stop) for b in ours] == [(b.start, b.stop) for b in theirs]


def _deepbet_box(torch, small, shape, margin=0.1):
    """deepbet 1.0.2's ``get_bbox_with_margin`` (MIT), as published."""
    x = torch.from_numpy(small.astype("float32"))
    rs = [torch.where(x.mean(dims) > 0.02)[0] for dims in [(1, 2), (0, 2), (0, 1)]]
    center = torch.tensor([(r.max() + 1 + r.min()) / 2 for r in rs])
    size = torch.tensor([(r.max() + 1) - r.min() for r in rs])
    margin = margin * torch.ones(3)
    scale_factor = torch.tensor(shape) / torch.tensor(x.shape)
    center, size = scale_factor * center, scale_factor * size
    size = (1 + 2 * margin) * size
    center, size = center.round(), size.round()
    bbox = [[int(c - s / 2), int(c + s / 2)] for c, s in zip(center, size, strict=True)]
    return tuple(slice(max(0, b[0]), min(s, b[1]), 1) for b, s in zip(bbox, shape, strict=True))
