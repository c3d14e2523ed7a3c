"""Brain age: the brain-age gap and its age-bias correction (scikit-learn style).

Predicted brain age regresses towards the cohort mean: old subjects are under-, young
subjects over-estimated, so the raw gap correlates with age. Fit the bias on validation
data, then correct new predictions:

- ``"cole"`` (Cole 2018; de Lange & Cole 2020): fit ``predicted = a * age + b``;
  corrected = ``(predicted - b) / a``.
- ``"beheshti"`` (Beheshti 2019): corrected = ``predicted - (a * age + b - age)``
  (the same fit, subtracting the expected offset at the subject's age).
- ``"smith"`` (Smith 2019): regress the gap ``predicted - age`` on demeaned age (and
  its powers up to ``degree``); corrected = ``age + residual gap``.

Correction uses chronological age, so it inflates R^2 and r: always report the
uncorrected MAE too (``metrics`` does).
"""

import warnings

import numpy as np

METHODS = ("cole", "beheshti", "smith")
MIN_SLOPE = 0.1  # below it a correction is warned about: the model does not track age


def _pair(predicted, age):
    predicted = np.asarray(predicted, dtype="float64").reshape(-1)
    age = np.asarray(age, dtype="float64").reshape(-1)
    if predicted.shape != age.shape:
        raise ValueError(f"predicted ({predicted.size}) and age ({age.size}) differ in length.")
    if not np.all(np.isfinite(predicted)) or not np.all(np.isfinite(age)):
        raise ValueError("predicted and age must be finite (no NaN).")
    return predicted, age


def gap(predicted, age):
    """Brain-age gap (brain-PAD) ``predicted - age`` in years, ``(n,)``."""
    predicted, age = _pair(predicted, age)
    return predicted - age


class BiasCorrection:
    """Age-bias correction of predicted brain age.

    Args:
        method: ``"cole"``, ``"beheshti"`` or ``"smith"`` (module docstring).
        degree: polynomial degree of demeaned age for ``"smith"``.

    Attributes (after ``fit``): ``slope_``, ``intercept_`` (cole/beheshti: predicted on
    age), ``coef_`` and ``age_mean_`` (smith: gap on powers of demeaned age, constant first).
    """

    def __init__(self, method="cole", degree=1):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        self.method = method
        self.degree = int(degree)

    def fit(self, predicted, age):
        """Fit the bias on (validation) predictions ``(n,)`` and ages ``(n,)`` in years."""
        predicted, age = _pair(predicted, age)
        if predicted.size < 2 or np.ptp(age) == 0:
            raise ValueError("fitting the bias needs at least 2 subjects with different ages.")
        if self.method == "smith":
            self.age_mean_ = float(age.mean())
            design = self._design(age)
            self.coef_, *_ = np.linalg.lstsq(design, predicted - age, rcond=None)
        else:
            self.slope_, self.intercept_ = (float(v) for v in np.polyfit(age, predicted, 1))
            if self.slope_ == 0:
                raise ValueError("the fitted slope of predicted on age is 0; cannot correct.")
            if abs(self.slope_) < MIN_SLOPE:
                warnings.warn(
                    f"the fitted slope of predicted on age is {self.slope_:.3g} (< {MIN_SLOPE}): the "
                    "predictions barely follow age on this data, so the corrected ages are "
                    + ("amplified noise" if self.method == "cole" else "mostly chronological age")
                    + ". Check the model and preprocessing on these scans before correcting.",
                    stacklevel=2,
                )
        return self

    def _design(self, age):
        centred = age - self.age_mean_
        return np.stack([centred**k for k in range(self.degree + 1)], axis=1)

    def transform(self, predicted, age):
        """Corrected predicted age ``(n,)`` in years."""
        predicted, age = _pair(predicted, age)
        if not hasattr(self, "slope_") and not hasattr(self, "coef_"):
            raise ValueError("BiasCorrection is not fitted; call fit(predicted, age) first.")
        if self.method == "cole":
            return (predicted - self.intercept_) / self.slope_
        if self.method == "beheshti":
            return predicted - (self.slope_ * age + self.intercept_ - age)
        return age + (predicted - age) - self._design(age) @ self.coef_

    def fit_transform(self, predicted, age):
        return self.fit(predicted, age).transform(predicted, age)

    def __repr__(self):
        return f"BiasCorrection(method={self.method!r}, degree={self.degree})"


def metrics(predicted, age, corrected=None):
    """MAE (years), Pearson r and R^2 of predictions against age.

    Args:
        predicted: raw predicted ages ``(n,)``.
        age: chronological ages ``(n,)``.
        corrected: optional bias-corrected predictions ``(n,)``.

    Returns:
        dict with ``mae``, ``r``, ``r2`` of the raw predictions, ``mean_gap``, the
        correlation ``gap_age_r`` of gap with age, and, with ``corrected``,
        ``corrected_mae``, ``corrected_r``, ``corrected_r2`` and ``corrected_gap_age_r``.
        The uncorrected MAE is always included.
    """
    predicted, age = _pair(predicted, age)

    def scores(values):
        residual = values - age
        total = np.sum((age - age.mean()) ** 2)
        return {
            "mae": float(np.mean(np.abs(residual))),
            "r": float(np.corrcoef(values, age)[0, 1]),
            "r2": float(1 - np.sum(residual**2) / total) if total > 0 else float("nan"),
            "gap_age_r": float(np.corrcoef(residual, age)[0, 1]),
        }

    out = scores(predicted)
    out["mean_gap"] = float(np.mean(predicted - age))
    if corrected is not None:
        corrected, _ = _pair(corrected, age)
        out.update({f"corrected_{k}": v for k, v in scores(corrected).items()})
    return out
