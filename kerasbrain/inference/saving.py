"""A model saved with its preprocessing: ``model.keras`` plus the sidecar ``model.json``.

The sidecar holds the `Preprocessor` config, the output ranges, and what the training
inputs looked like (field of view, intensity percentiles, a 16^3 mean template and how
closely training scans match it), which `Predictor` checks new scans against.
"""

import json
import os

from kerasbrain.files import atomic_write, write_json
from kerasbrain.inference.checks import describe_training_inputs

SIDECAR_FORMAT = "kerasbrain-model/1"


def sidecar_path(model_path):
    """``model.keras`` -> ``model.json``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".json"


def save_model(model, path, preprocessor, volumes=None, output_ranges=None, brain_age_task=None,
               description=None):
    """Save ``model`` as ``.keras`` plus the sidecar JSON that `Predictor` reads.

    Args:
        model: a Keras model.
        path: ``.keras`` file to write (atomically, with the sidecar).
        preprocessor: the `kerasbrain.data.Preprocessor` that produced the training inputs.
        volumes: optional sample of preprocessed training volumes ``(n, x, y, z[, 1])``;
            stores their intensity percentiles and a 16^3 mean template for input checks.
        output_ranges: ``{task: (low, high)}`` of plausible outputs (e.g. the training
            age range), for the edge-of-range warning.
        brain_age_task: the task whose output is an age in years (for the brain-age gap).
        description: free text (what the model was trained on).
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: the model file must end in .keras")
    info = {
        "format": SIDECAR_FORMAT,
        "preprocessing": preprocessor.get_config(),
        "output_ranges": {k: [float(v) for v in r] for k, r in (output_ranges or {}).items()},
        "brain_age_task": brain_age_task,
        "description": description,
    }
    if preprocessor.spacing is not None and preprocessor.shape is not None:
        info["field_of_view_mm"] = [s * n for s, n in zip(preprocessor.spacing, preprocessor.shape, strict=True)]
    if volumes is not None:
        info.update(describe_training_inputs(volumes))
    with atomic_write(path) as tmp:
        model.save(tmp)
        write_json(sidecar_path(path), info)


def load_sidecar(model_path):
    """The sidecar of ``model_path`` as a dict, or ``None`` when there is none."""
    if not os.path.exists(sidecar_path(model_path)):
        return None
    with open(sidecar_path(model_path)) as handle:
        return json.load(handle)
