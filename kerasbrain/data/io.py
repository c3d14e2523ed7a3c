"""Reading brain volumes: NIfTI-1/2 (``.nii``, ``.nii.gz``) and MGH/MGZ through nibabel."""

import dataclasses
import os

import nibabel as nib
import numpy as np

SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")


class VolumeError(ValueError):
    """A volume that cannot be used; the message names the file (and the table row)."""


@dataclasses.dataclass
class Volume:
    """A 3D image: ``array`` (x, y, z) and its voxel-to-world ``affine`` (4, 4), in mm."""

    array: np.ndarray
    affine: np.ndarray
    path: str | None = None

    @property
    def spacing(self):
        """Voxel size along each array axis (mm)."""
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def orientation(self):
        """Axis codes of the array, e.g. ``"RAS"``, ``"LIA"``."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def shape(self):
        return self.array.shape


def load_volume(path, dtype="float32", check=True):
    """Read a 3D brain image.

    Args:
        path: ``.nii``, ``.nii.gz``, ``.mgz`` or ``.mgh`` file.
        dtype: dtype of the returned array.
        check: reject images whose voxels are NaN/Inf or all zero.

    Returns:
        A `Volume` with ``array`` (x, y, z), ``affine`` (4, 4), ``spacing`` (mm).
        A 4D image with a single volume is accepted and squeezed to 3D.

    Raises:
        FileNotFoundError: the file does not exist.
        VolumeError: unreadable (corrupt, truncated), not 3D, non-finite or all-zero.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        image = nib.load(path)
        array = np.asarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for corrupt files
        raise VolumeError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeError(
            f"{path}: expected a 3D image (or 4D with one volume), got shape {array.shape}"
        )
    array = array.astype(dtype, copy=False)
    if check:
        check_array(array, path)
    return Volume(array=array, affine=np.asarray(image.affine, dtype="float64"), path=path)


def check_array(array, path=None):
    """Raise `VolumeError` when ``array`` has NaN/Inf voxels or is all zero."""
    where = f"{path}: " if path else ""
    finite = np.isfinite(array)
    if not finite.all():
        raise VolumeError(f"{where}{int(array.size - finite.sum())} voxels are NaN or Inf")
    if not np.any(array):
        raise VolumeError(f"{where}all voxels are zero")
