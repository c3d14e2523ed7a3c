"""Hyperparameter tuning for fine-tuning on small datasets, with KerasTuner.

- ``FineTuningHyperModel``: the search space of fine-tuning a pretrained backbone
  (strategy, learning rates, dropout, weight decay, head width, augmentation strength,
  multi-task loss weights), overridable with KerasTuner's ``HyperParameters``.
- ``CVTuner``: a KerasTuner tuner that scores every trial by k-fold cross-validation
  (stratified by class, grouped by subject or site), reporting mean and spread; works
  with random search, Bayesian optimisation, Hyperband and grid search, in one process
  or distributed through KerasTuner's chief/worker protocol.
- ``split_folds``: the folds it uses; ``objective``/``metric_direction``: objectives
  named after per-task metrics (``val_age_mae`` minimised, ``val_diagnosis_auc``
  maximised); ``load_arrays``: a TFRecord folder read into memory.
"""

from kerasbrain.tuning.config import (
    finetune_config,
    fixed_hyperparameters,
    hypermodel_from_config,
    read_config,
    search_space,
    write_config,
)
from kerasbrain.tuning.cv_tuner import CVTuner, is_distributed_worker, make_oracle
from kerasbrain.tuning.data import load_arrays
from kerasbrain.tuning.folds import split_folds
from kerasbrain.tuning.hypermodel import STRATEGIES, FineTuningHyperModel
from kerasbrain.tuning.objectives import metric_direction, objective
from kerasbrain.tuning.results import results_table

__all__ = [
    "STRATEGIES",
    "CVTuner",
    "FineTuningHyperModel",
    "finetune_config",
    "fixed_hyperparameters",
    "hypermodel_from_config",
    "is_distributed_worker",
    "load_arrays",
    "make_oracle",
    "metric_direction",
    "objective",
    "read_config",
    "results_table",
    "search_space",
    "split_folds",
    "write_config",
]
