"""Preprocessing presets: what each published weight set was trained on.

Each preset's ``requires`` says what must be done *before* (e.g. with FSL FLIRT,
FreeSurfer, FastSurfer, SynthStrip); `kerasbrain.data.prepare` does it from a raw T1 head
(brain extraction and affine registration to MNI152).
Presets are keyed by name and by every weight-registry name that uses them.
"""

import copy

_MNI_1MM = (182, 218, 182)

PRESETS = {
    "ukb": {
        "orientation": "LAS",
        "crop": ((11, 171), (13, 205), (11, 171)),
        "intensity": "mean",
        "input_shape": _MNI_1MM,
        "requires": (
            "T1 linearly registered to MNI152 1 mm (182x218x182, FSL FLIRT), skull stripped "
            "as in the UK Biobank pipeline"
        ),
        "name": "ukb",
    },
    "brain-age-2022": {
        "orientation": "LAS",
        "crop": ((6, 173), (2, 214), (0, 160)),
        "intensity": 255.0,
        "input_shape": _MNI_1MM,
        "requires": (
            "FreeSurfer recon-all brainmask.mgz, reoriented to FSL standard (fslreorient2std) "
            "and rigidly registered to MNI152 1 mm (182x218x182, FSL FLIRT 6 dof)"
        ),
        "name": "brain-age-2022",
    },
    "multi-2025": {
        "orientation": "LIA",
        "spacing": 1.0,
        "shape": (224, 192, 224),
        "crop": "bbox",
        "pad_value": 0.0,
        "intensity": None,
        "requires": (
            "FastSurfer conformed orig.mgz (1 mm, 256^3, LIA) multiplied by its mask.mgz "
            "(pass mask= to the preprocessor, or mask beforehand)"
        ),
        "name": "multi-2025",
    },
    "synthba": {
        "orientation": "RAS",
        "spacing": 1.4,
        "shape": (130, 130, 130),
        "crop": "center",
        "pad_value": "min",
        "intensity": "minmax",
        "requires": "skull stripped (e.g. SynthStrip) and affinely aligned to MNI152",
        "name": "synthba",
    },
    "medicalnet": {
        "orientation": "RAS",
        "intensity": "zscore",
        "requires": (
            "the region of interest cropped (MedicalNet z-scores the non-zero voxels); for "
            "brains: skull stripped, at about 1 mm"
        ),
        "name": "medicalnet",
    },
}

#: other names (weight-registry names) -> preset
ALIASES = {
    "ukb-sex": "ukb",
    "dementia-2024": "brain-age-2022",
    "multi-2025-no-abcd": "multi-2025",
    "reg-2025": "multi-2025",
    "synthba-g": "synthba",
    "synthba-u": "synthba",
}


def get_preset(name):
    """Preprocessor keyword arguments for a preset or weight-registry name."""
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        known = ", ".join(sorted({*PRESETS, *ALIASES}))
        raise ValueError(f"unknown preprocessing preset {name!r}; known: {known}")
    return copy.deepcopy(PRESETS[key])


def list_presets():
    """Names accepted by `Preprocessor.for_weights`."""
    return sorted({*PRESETS, *ALIASES})
