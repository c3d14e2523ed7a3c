"""Hyperparameter tuning for fine-tuning on small datasets, with KerasTuner.

- ``CVTuner``: a KerasTuner tuner that scores every trial by k-fold cross-validation
  (stratified by class, grouped by subject or site), reporting mean and spread.
- ``split_folds``: the folds it uses.
- ``objective``/``metric_direction``: objectives named after per-task metrics
  (``val_age_mae`` minimised, ``val_diagnosis_auc`` maximised).
"""

from kerasbrain.tuning.cv_tuner import CVTuner, is_distributed_worker, make_oracle
from kerasbrain.tuning.folds import split_folds
from kerasbrain.tuning.objectives import metric_direction, objective
from kerasbrain.tuning.results import results_table

__all__ = [
    "CVTuner",
    "is_distributed_worker",
    "make_oracle",
    "metric_direction",
    "objective",
    "results_table",
    "split_folds",
]
