"""The MNI152 template and the output grids of the published weight sets.

The template is the skull-stripped MNI152 2009 (ICBM 2009a symmetric, 1 mm,
197x233x189) that the ``nilearn`` wheel carries
(``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``); it is
read straight from the installed package (no network, nilearn is not imported). Its
brain mask is nilearn's: template / max > 0.2.

Grids are ``(shape, affine)`` pairs in world millimetres (RAS+, as nibabel):

- ``"mni152-fsl-1mm"``: FSL's MNI152 1 mm grid, 182x218x182, LAS, used by the ``ukb``
  and ``brain-age-2022`` weight sets (FSL FLIRT output);
- ``"mni152-fsl-2mm"``: the same at 2 mm, 91x109x91;
- ``"mni152-1mm-256"``: 256^3 1 mm LIA centred on the MNI origin, the shape of
  FreeSurfer's/FastSurfer's conformed images (``multi-2025``).
"""

import functools
import importlib.util
import os

import numpy as np

from kerasbrain.data.io import Volume

TEMPLATE_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MASK_THRESHOLD = 0.2

GRIDS = {
    "mni152-fsl-1mm": (
        (182, 218, 182),
        np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]]),
    ),
    "mni152-fsl-2mm": (
        (91, 109, 91),
        np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]]),
    ),
    "mni152-1mm-256": (
        (256, 256, 256),
        np.array([[-1.0, 0, 0, 128], [0, 0, 1, -128], [0, -1, 0, 128], [0, 0, 0, 1]]),
    ),
}

#: preset (weight-set preprocessing) name -> grid that `register` resamples into
PRESET_GRIDS = {
    "ukb": "mni152-fsl-1mm",
    "brain-age-2022": "mni152-fsl-1mm",
    "multi-2025": "mni152-1mm-256",
    "synthba": "mni152-fsl-1mm",
    "medicalnet": "mni152-fsl-1mm",
}


def get_grid(grid):
    """``(shape, affine)`` of a grid name, a preset or weight-set name, a `Volume`, or a pair."""
    if isinstance(grid, Volume):
        return tuple(grid.shape), np.asarray(grid.affine, dtype="float64")
    if isinstance(grid, str):
        if grid not in GRIDS:
            from kerasbrain.data.presets import get_preset

            try:
                grid = PRESET_GRIDS[get_preset(grid)["name"]]
            except ValueError:
                known = ", ".join([*GRIDS, *PRESET_GRIDS])
                raise ValueError(f"unknown grid {grid!r}; known: {known} (or a weight-set name)") from None
        shape, affine = GRIDS[grid]
        return tuple(shape), affine.copy()
    shape, affine = grid
    affine = np.asarray(affine, dtype="float64")
    if len(shape) != 3 or affine.shape != (4, 4):
        raise ValueError(f"a grid is (shape (3,), affine (4, 4)), got {shape!r}, {affine.shape}")
    return tuple(int(s) for s in shape), affine


def template_path():
    """Path of the MNI152 2009 1 mm brain inside the installed nilearn package."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the MNI152 template ships with nilearn: pip install \"kerasbrain[prepare]\"",
            name="nilearn",
        )
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", TEMPLATE_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: MNI152 template missing from the nilearn package")
    return path


@functools.lru_cache(maxsize=4)
def _template(spacing):
    from kerasbrain.data.io import load_volume
    from kerasbrain.data.preprocess import resample

    volume = load_volume(template_path())
    volume = Volume(volume.array / volume.array.max(), volume.affine, volume.path)
    return resample(volume, spacing) if spacing != 1 else volume


def load_template(spacing=1):
    """The MNI152 2009 brain (`Volume`, RAS+, intensities scaled to [0, 1]) at ``spacing`` mm."""
    volume = _template(float(spacing))
    return Volume(volume.array.copy(), volume.affine.copy(), volume.path)


def template_mask(template):
    """Brain mask (bool array) of a template `Volume`: voxels above 0.2 of its maximum."""
    return template.array > MASK_THRESHOLD * template.array.max()
