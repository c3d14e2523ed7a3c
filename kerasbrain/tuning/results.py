"""Recording a cross-validated search: per-trial metrics, the results table, atomic files."""


import numpy as np
import pandas as pd

from kerasbrain.files import write_text


def trial_metrics(objective, scores, best_epochs):
    """The metrics one trial reports to the oracle.

    ``objective`` (the mean over folds, what the oracle ranks by), ``<objective>_std``
    (population standard deviation over folds), ``<objective>_fold<k>`` and
    ``best_epoch_fold<k>`` (1-based epoch of fold ``k``'s best value).
    """
    scores = np.asarray(scores, dtype="float64")
    metrics = {objective: float(np.mean(scores)), f"{objective}_std": float(np.std(scores))}
    for k, (score, epoch) in enumerate(zip(scores, best_epochs, strict=True)):
        metrics[f"{objective}_fold{k}"] = float(score)
        metrics[f"best_epoch_fold{k}"] = float(epoch)
    return metrics


def fold_values(trial, prefix, n_folds):
    """``[trial's metric '<prefix>_fold<k>' for k in range(n_folds)]`` (NaN when absent)."""
    values = []
    for k in range(n_folds):
        name = f"{prefix}_fold{k}"
        exists = trial.metrics.exists(name)
        values.append(trial.metrics.get_last_value(name) if exists else float("nan"))
    return values


def _all_trials(oracle):
    if hasattr(oracle, "trials"):
        return list(oracle.trials.values())
    return oracle.get_best_trials(10**9)  # a worker's view through the chief


def results_table(oracle, n_folds):
    """One row per trial, best first: ``trial, status, <hyperparameters...>,
    fold0..fold<k-1>, mean, std, objective``."""
    objective = oracle.objective
    rows = []
    for trial in _all_trials(oracle):
        row = {"trial": trial.trial_id, "status": trial.status}
        row.update(trial.hyperparameters.values)
        folds = fold_values(trial, objective.name, n_folds)
        row.update({f"fold{k}": value for k, value in enumerate(folds)})
        has_mean = trial.metrics.exists(objective.name)
        row["mean"] = trial.metrics.get_last_value(objective.name) if has_mean else np.nan
        std_name = f"{objective.name}_std"
        row["std"] = trial.metrics.get_last_value(std_name) if trial.metrics.exists(std_name) else np.nan
        row["objective"] = objective.name
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    hp_columns = [c for c in table.columns if c not in _FIXED and not c.startswith("fold")]
    fold_columns = [f"fold{k}" for k in range(n_folds)]
    table = table[["trial", "status", *hp_columns, *fold_columns, "mean", "std", "objective"]]
    ascending = objective.direction == "min"
    return table.sort_values("mean", ascending=ascending, na_position="last", kind="stable")


_FIXED = ("trial", "status", "mean", "std", "objective")


def save_table(table, path):
    """Write a DataFrame as CSV through a temporary file renamed when complete."""
    return write_text(path, table.to_csv(index=False))


