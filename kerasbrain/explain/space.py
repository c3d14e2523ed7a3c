"""Attribution maps as images in the space of the scan.

A map comes back on the model's input grid; the `Preprocessor` that made that grid
records where it lies in the world (its affine after reorientation, resampling and
cropping), so the map can be written with that affine (`model_space`), or resampled onto
the grid of the file that was preprocessed (`to_scan`), or, where the scan was registered
to a template first, onto the native scan through the saved registration (`to_native`).

Saved registration (the hook for registered scans): ``<scan>_transform.json`` beside the
registered scan (``sub-01_T1w.nii.gz`` -> ``sub-01_T1w_transform.json``) holding
``{"native": "<path of the native scan, relative to the JSON>", "matrix": <4x4>}`` where
``matrix`` maps native world coordinates (mm) to the registered scan's world coordinates.
"""

import json
import os

import nibabel as nib
import numpy as np

from kerasbrain.data.io import SUFFIXES, Volume, load_volume

TRANSFORM_SUFFIX = "_transform.json"


def _stem(path):
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return os.path.splitext(path)[0]


def transform_path(scan):
    """Where the saved registration of ``scan`` lives."""
    return _stem(os.fspath(scan)) + TRANSFORM_SUFFIX


def load_transform(scan):
    """``(native scan path, 4x4 matrix native world -> registered world)`` saved for ``scan``.

    Raises:
        FileNotFoundError: no saved transform (the message names the file looked for).
        ValueError: the file is not a transform.
    """
    path = transform_path(scan)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{scan}: no saved transform ({path} does not exist); a map goes back to the native "
            "scan only for scans registered by kerasbrain; use space='scan' for the grid of this file")
    with open(path) as f:
        data = json.load(f)
    matrix = np.asarray(data.get("matrix"), dtype="float64")
    if matrix.shape != (4, 4) or "native" not in data:
        raise ValueError(f"{path}: a transform needs 'native' (a path) and 'matrix' (4x4)")
    native = os.path.join(os.path.dirname(os.path.abspath(path)), data["native"])
    return native, matrix


def model_space(map_, volume):
    """The map on the model grid as a NIfTI image with the preprocessed `Volume`'s affine."""
    return _image(map_, volume.affine)


def resample_map(map_, map_affine, shape, affine, world=None):
    """Trilinear resampling of ``map_`` (with ``map_affine``) onto a grid ``shape``/``affine``.

    ``world`` (4x4) maps the target's world coordinates to the map's (default identity).
    Voxels outside the map get 0.
    """
    from scipy import ndimage

    world = np.eye(4) if world is None else np.asarray(world, dtype="float64")
    matrix = np.linalg.inv(map_affine) @ world @ affine
    return ndimage.affine_transform(np.asarray(map_, dtype="float32"), matrix, output_shape=tuple(shape),
                                    order=1, mode="constant", cval=0.0)


def to_scan(map_, scan, preprocessor):
    """The map on the grid of ``scan`` (path or `Volume`), undoing ``preprocessor``.

    Returns:
        ``nibabel.Nifti1Image`` with the scan's shape and affine.
    """
    volume = scan if isinstance(scan, Volume) else load_volume(scan)
    grid = preprocessor.transform(volume)
    _check_shape(map_, grid)
    data = resample_map(map_, grid.affine, volume.shape, volume.affine)
    return _image(data, volume.affine)


def to_native(map_, scan, preprocessor, transform=None):
    """The map on the native (unregistered) scan of a registered ``scan``.

    Args:
        map_: ``(x, y, z)`` on the model grid.
        scan: the registered scan the model saw (path), or a `Volume`.
        preprocessor: the model's `Preprocessor`.
        transform: ``(native path, 4x4 matrix)``; default: `load_transform(scan)`.

    Raises:
        FileNotFoundError: no saved transform for the scan.
    """
    if transform is None:
        if isinstance(scan, Volume) and scan.path is None:
            raise FileNotFoundError("scan has no path: no saved transform to find; pass transform=")
        transform = load_transform(scan.path if isinstance(scan, Volume) else scan)
    native_path, matrix = transform
    native = load_volume(native_path)
    grid = preprocessor.transform(scan)
    _check_shape(map_, grid)
    data = resample_map(map_, grid.affine, native.shape, native.affine, world=matrix)
    return _image(data, native.affine)


def _check_shape(map_, grid):
    if np.shape(map_) != grid.shape:
        raise ValueError(f"map shape {np.shape(map_)} is not the model grid {grid.shape} of "
                         f"{grid.path or 'the scan'}")


def _image(data, affine):
    image = nib.Nifti1Image(np.asarray(data, dtype="float32"), np.asarray(affine, dtype="float64"))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return image


def save_image(image, path):
    """Write a NIfTI image atomically (temporary name, then rename)."""
    from kerasbrain.files import atomic_write

    with atomic_write(path) as tmp:
        nib.save(image, tmp)
    return os.fspath(path)
