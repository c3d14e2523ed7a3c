"""A fitted `kerasbrain.brainage.BiasCorrection` as a JSON file (``--bias-correction``)."""

import json
import os

import numpy as np

from kerasbrain.files import write_json

_CORRECTION_STATE = ("slope_", "intercept_", "coef_", "age_mean_")


def save_bias_correction(correction, path):
    """Write a fitted ``kerasbrain.brainage.BiasCorrection`` as JSON (for ``--bias-correction``)."""
    state = {"method": correction.method, "degree": correction.degree}
    for name in _CORRECTION_STATE:
        if hasattr(correction, name):
            state[name] = np.asarray(getattr(correction, name)).tolist()
    write_json(os.fspath(path), state)


def load_bias_correction(source):
    """A fitted ``kerasbrain.brainage.BiasCorrection`` from itself or its JSON file."""
    from kerasbrain import brainage

    if not isinstance(source, str | os.PathLike):
        return source
    with open(source) as f:
        state = json.load(f)
    try:
        correction = brainage.BiasCorrection(method=state["method"], degree=state.get("degree", 1))
    except KeyError:
        raise ValueError(f"{source}: not a bias-correction file (no 'method')") from None
    fitted = [name for name in _CORRECTION_STATE if name in state]
    if not fitted:
        raise ValueError(f"{source}: the bias correction is not fitted")
    for name in fitted:
        value = state[name]
        setattr(correction, name, np.asarray(value) if isinstance(value, list) else float(value))
    return correction
