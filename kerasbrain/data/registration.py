"""Affine (12 degrees of freedom) registration of a brain to the MNI152 template.

    import kerasbrain as kb
    brain, mask, tiv = kb.data.extract_brain("sub-01_T1w.nii.gz")
    registered, transform = kb.data.register(brain, grid="ukb")   # 182x218x182, FSL MNI 1 mm
    transform.save("sub-01_to_mni.json")
    native = kb.data.to_native(saliency_on_mni, transform)           # back onto the scan's grid

Registration runs SimpleITK (``pip install "kerasbrain[prepare]"``): Mattes mutual
information between the skull-stripped brain and the skull-stripped template at 2 mm,
centre-of-mass initialisation, a rigid stage then an affine stage, three resolution
levels. The result is an `AffineTransform`: one 4x4 world-to-world matrix (mm, RAS+)
mapping a point of template (MNI) space to the same anatomical point of the native scan,
i.e. the pull direction of resampling native -> MNI. Its inverse maps back.
"""

import json
import os

import numpy as np

from kerasbrain.data.io import Volume, VolumeError, load_volume
from kerasbrain.data.template import MASK_THRESHOLD, get_grid, load_template

FORMAT = "kerasbrain-affine/1"
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # ITK's world axes (LPS) <-> nibabel's (RAS)


class AffineTransform:
    """Template world (mm, RAS+) -> native world (mm, RAS+), a 4x4 matrix.

    Args:
        matrix: (4, 4) homogeneous matrix, ``native_xyz1 = matrix @ template_xyz1``.
        native_shape, native_affine: the scan's voxel grid (shape (3,), affine (4, 4));
            `to_native` resamples onto it.
        template: name of the template space (``"MNI152"`` by default).
    """

    def __init__(self, matrix, native_shape=None, native_affine=None, template="MNI152"):
        self.matrix = np.asarray(matrix, dtype="float64")
        if self.matrix.shape != (4, 4) or not np.allclose(self.matrix[3], [0, 0, 0, 1]):
            raise ValueError(f"an affine transform is a 4x4 homogeneous matrix, got {self.matrix}")
        self.native_shape = None if native_shape is None else tuple(int(s) for s in native_shape)
        self.native_affine = None if native_affine is None else np.asarray(native_affine, "float64")
        self.template = template

    def inverse_matrix(self):
        """Native world -> template world (4, 4)."""
        return np.linalg.inv(self.matrix)

    def to_dict(self):
        native = None
        if self.native_shape is not None:
            native = {"shape": list(self.native_shape), "affine": self.native_affine.tolist()}
        return {"format": FORMAT, "template": self.template,
                "direction": "template world (mm, RAS+) -> native world (mm, RAS+)",
                "matrix": self.matrix.tolist(), "native": native}

    def save(self, path):
        """Write the JSON file (format ``kerasbrain-affine/1``, see docs/prepare.md)."""
        from kerasbrain.files import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; the error names the file and the key."""
        path = os.fspath(path)
        with open(path) as handle:
            data = json.load(handle)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} transform (key 'format')")
        try:
            native = data.get("native") or {}
            return cls(data["matrix"], native.get("shape"), native.get("affine"),
                       data.get("template", "MNI152"))
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: bad transform ({error})") from None

    def __repr__(self):
        return f"AffineTransform({self.template} -> native, matrix={self.matrix.round(4).tolist()})"


def resample_to_grid(volume, matrix, grid, order=1, cval=0.0):
    """Resample ``volume`` onto ``grid`` through a world-to-world ``matrix``.

    ``matrix`` (4, 4) maps a grid world point to the ``volume`` world point sampled
    there. ``grid``: see `kerasbrain.data.template.get_grid`. Returns a `Volume`.
    """
    from scipy import ndimage

    shape, affine = get_grid(grid)
    pull = np.linalg.inv(volume.affine) @ np.asarray(matrix, "float64") @ affine
    array = np.asarray(volume.array, dtype="float32")
    out = ndimage.affine_transform(array, pull[:3, :3], pull[:3, 3], output_shape=shape,
                                   order=order, mode="constant", cval=cval)
    return Volume(out, affine, volume.path)


def apply_transform(volume, transform, grid="ukb", order=1):
    """Resample a native `Volume` (or path) into template space on ``grid``."""
    volume = volume if isinstance(volume, Volume) else load_volume(volume, check=False)
    return resample_to_grid(volume, transform.matrix, grid, order=order)


def to_native(volume, transform, reference=None, order=1):
    """Resample a map on a template grid (`Volume` or path) back onto the native scan.

    ``reference``: the native grid (`Volume`, path or ``(shape, affine)``); default the
    one stored in ``transform``. ``order=0`` for labels and masks.
    """
    volume = volume if isinstance(volume, Volume) else load_volume(volume, check=False)
    if reference is None:
        if transform.native_shape is None:
            raise ValueError("the transform stores no native grid: pass reference=")
        reference = (transform.native_shape, transform.native_affine)
    elif not isinstance(reference, Volume | tuple):
        reference = load_volume(reference, check=False)
    return resample_to_grid(volume, transform.inverse_matrix(), reference, order=order)


def _to_sitk(volume):
    sitk = _simpleitk()

    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.T, dtype="float32"))
    lps = _LPS @ volume.affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return image


def _matrix(transform):
    """4x4 RAS+ matrix of a SimpleITK affine-like transform (fixed -> moving points)."""
    sitk = _simpleitk()

    transform = sitk.AffineTransform(transform) if not isinstance(
        transform, sitk.AffineTransform) else transform
    a = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = np.asarray(transform.GetTranslation()) + centre - a @ centre
    return _LPS @ lps @ _LPS


def _levels(shape):
    """Shrink factors (coarsest first, down to 16 voxels per axis) and sampling fractions
    (5%, at least 5000 voxels per level)."""
    shrinks = [f for f in (4, 2) if min(shape) / f >= 16] + [1]
    size = float(np.prod(shape))
    return shrinks, [min(1.0, max(0.05, 5000.0 * f**3 / size)) for f in shrinks]


def _register_sitk(fixed, moving, seed):
    """Template `Volume` (fixed), brain `Volume` (moving) -> 4x4 RAS+ matrix fixed -> moving."""
    sitk = _simpleitk()

    shrinks, fractions = _levels(fixed.shape)
    fixed, moving = _to_sitk(fixed), _to_sitk(moving)
    current = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
    for stage in (current, sitk.AffineTransform(3)):
        if stage is not current:  # affine stage starts from the rigid result
            stage.SetMatrix(current.GetMatrix())
            stage.SetTranslation(current.GetTranslation())
            stage.SetCenter(current.GetCenter())
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        method.SetMetricSamplingStrategy(method.RANDOM)
        # SimpleITK reads seed 0 as "seed from the wall clock": shift by one
        method.SetMetricSamplingPercentagePerLevel(fractions, seed + 1)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-3, numberOfIterations=100,
            gradientMagnitudeTolerance=1e-6, relaxationFactor=0.5)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetShrinkFactorsPerLevel(shrinks)
        method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0][-len(shrinks):])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        method.SetInitialTransform(stage, inPlace=True)
        method.Execute(fixed, moving)
        current = stage
    return _matrix(current)


def register(volume, template="mni152", grid="ukb", order=1, seed=0):
    """Affine registration of a skull-stripped brain to a template; resample onto ``grid``.

    Args:
        volume: the brain (`Volume` or path; skull stripped, zero outside), any
            orientation and voxel size.
        template: ``"mni152"`` (the MNI152 2009 brain, see `kerasbrain.data.template`)
            or a skull-stripped template `Volume` / path in the same world space as
            ``grid``.
        grid: output grid: a weight-set name (``"ukb"`` -> FSL MNI152 1 mm 182x218x182),
            a grid name, a `Volume` or ``(shape, affine)``.
        order: interpolation order of the output (1: trilinear).
        seed: seed of the metric's random sampling (same seed, same result).

    Returns:
        ``(registered, transform)``: a `Volume` on ``grid`` and the `AffineTransform`.

    Raises:
        VolumeError: an empty (all-zero) brain, or one with NaN voxels.
        ModuleNotFoundError: SimpleITK (or nilearn for ``"mni152"``) is not installed.
    """
    volume = volume if isinstance(volume, Volume) else load_volume(volume)
    where = volume.path or "volume"
    if not np.all(np.isfinite(volume.array)):
        raise VolumeError(f"{where}: NaN or Inf voxels; cannot register")
    if not np.any(volume.array > 0):
        raise VolumeError(f"{where}: no brain (no positive voxel) to register")
    if isinstance(template, str):
        if template.lower() != "mni152":
            template = load_volume(template)
        else:
            template = load_template(spacing=2)
    moving = Volume(np.clip(volume.array, 0, None).astype("float32"), volume.affine, where)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    matrix = _register_sitk(template, moving, int(seed))
    transform = AffineTransform(matrix, volume.shape, volume.affine)
    return apply_transform(volume, transform, grid, order=order), transform


_ON_GRID = {}


def template_on_grid(grid="ukb"):
    """The MNI152 1 mm template (max 1) resampled onto ``grid`` (cached per grid)."""
    shape, affine = get_grid(grid)
    key = (shape, affine.tobytes())
    if key not in _ON_GRID:
        if len(_ON_GRID) >= 4:
            _ON_GRID.clear()
        _ON_GRID[key] = resample_to_grid(load_template(spacing=1), np.eye(4), (shape, affine))
    volume = _ON_GRID[key]
    return Volume(volume.array.copy(), volume.affine.copy(), volume.path)


def registration_overlap(registered_mask, grid="ukb", template="mni152"):
    """Dice of a brain mask on a template grid with the template's brain mask (0..1)."""
    if isinstance(template, str) and template.lower() == "mni152":
        expected = template_on_grid(grid).array > MASK_THRESHOLD
    else:
        template = template if isinstance(template, Volume) else load_volume(template)
        reference = resample_to_grid(template, np.eye(4), grid, order=1)
        expected = reference.array > MASK_THRESHOLD * template.array.max()
    found = np.asarray(registered_mask.array if isinstance(registered_mask, Volume)
                       else registered_mask) > 0.5
    total = expected.sum() + found.sum()
    return float(2.0 * np.logical_and(expected, found).sum() / total) if total else 0.0


def _simpleitk():
    """The SimpleITK module, or an error that says how to install it."""
    try:
        import SimpleITK
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            'registration needs SimpleITK: pip install "kerasbrain[prepare]"', name="SimpleITK"
        ) from error
    return SimpleITK

