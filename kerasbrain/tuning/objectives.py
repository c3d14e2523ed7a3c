"""Tuning objectives named after Keras metrics, with the direction read from the name.

Keras names the metrics of a multi-output model ``<output>_<metric>`` and their
validation values ``val_<output>_<metric>``: ``val_age_mae``, ``val_diagnosis_auc``.
KerasTuner cannot infer a direction for such names, so ``objective(name)`` does it
from the metric suffix: errors and losses are minimised, scores are maximised.
"""

import keras_tuner as kt

#: metric-name suffixes that are minimised
MINIMISE = (
    "loss", "mae", "mse", "rmse", "msle", "mape", "error", "huber", "kl", "kld",
    "kl_divergence", "crossentropy", "hinge", "logcosh", "brier",
)  # fmt: skip
#: metric-name suffixes that are maximised
MAXIMISE = (
    "auc", "accuracy", "acc", "r", "r2", "pearson", "pearson_r", "spearman", "correlation",
    "precision", "recall", "f1", "f1_score", "iou", "dice", "prc", "concordance",
)  # fmt: skip


def metric_direction(name):
    """``"min"`` or ``"max"`` for a metric name such as ``val_age_mae`` or ``val_sex_auc``.

    The longest known suffix decides (``balanced_accuracy`` ends in ``accuracy``: max;
    ``val_age_r`` ends in ``r``: max). Returns ``None`` for an unknown metric.
    """
    base = name[4:] if name.startswith("val_") else name
    best = None
    for direction, suffixes in (("min", MINIMISE), ("max", MAXIMISE)):
        for suffix in suffixes:
            if base == suffix or base.endswith("_" + suffix):
                if best is None or len(suffix) > len(best[1]):
                    best = (direction, suffix)
    return best[0] if best else None


def objective(name, direction=None):
    """A ``keras_tuner.Objective`` for ``name`` with the direction inferred from the name.

    Args:
        name: metric name as it appears in the History, e.g. ``"val_age_mae"``; or an
            existing ``keras_tuner.Objective``, returned as is.
        direction: ``"min"`` or ``"max"`` to override the inference.

    Raises:
        ValueError: the direction cannot be inferred and is not given.
    """
    if isinstance(name, kt.Objective):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"objective must be a metric name or a keras_tuner.Objective, got {name!r}."
        )
    direction = direction or metric_direction(name)
    if direction not in ("min", "max"):
        raise ValueError(
            f"Cannot tell whether objective {name!r} is to be minimised or maximised; pass "
            f"keras_tuner.Objective({name!r}, direction='min' or 'max')."
        )
    return kt.Objective(name, direction)


def check_objective(name, available, where="the model"):
    """Raise a ValueError naming the available metrics when ``name`` is not among them."""
    available = sorted(available)
    if name not in available:
        shown = [a for a in available if a.startswith("val_")] or available
        raise kt.errors.FatalValueError(
            f"Objective {name!r} is not produced by {where}. Available objectives: "
            f"{', '.join(shown) or '(none)'}."
        )
