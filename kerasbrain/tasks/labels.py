"""Labels tables -> Keras targets and sample weights for a list of tasks."""

import keras
import numpy as np

from kerasbrain.tasks.definitions import Regression, Task


def check_tasks(tasks):
    """A list of ``Task`` objects with unique names (a single task is accepted too)."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    tasks = list(tasks or [])
    if not tasks:
        raise ValueError("at least one task is needed.")
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"tasks must be kerasbrain.tasks.Task objects, got {task!r}.")
    names = [task.name for task in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"task names must be unique; repeated: {duplicates}.")
    return tasks


def _column(table, name):
    if hasattr(table, "columns"):  # pandas DataFrame
        columns = list(table.columns)
        if name not in columns:
            raise KeyError(f"task {name!r} has no labels: the table's columns are {columns}.")
        return table[name].to_numpy(dtype=object)
    if name not in table:
        raise KeyError(f"task {name!r} has no labels: the labels have keys {sorted(table)}.")
    return np.asarray(table[name], dtype=object)


def encode_labels(tasks, table, adapt=True):
    """Encode a labels table for ``model.fit(x, y, sample_weight=w)``.

    Args:
        tasks: list of tasks.
        table: pandas DataFrame or dict ``{task name: labels}``; missing labels are
            NaN/None.
        adapt: set the standardisation of ``Regression(standardize=True)`` tasks that
            have none yet from these labels.

    Returns:
        ``(y, sample_weight)``: dicts ``{task: float32 (n,)}``; weight 0 marks a missing label.

    Raises:
        KeyError: a task has no column. ValueError/TypeError: labels of the wrong kind,
        or every label of a task missing.
    """
    tasks = check_tasks(tasks)
    y, weights = {}, {}
    for task in tasks:
        labels = _column(table, task.name)
        targets, weight = task.encode(labels)
        if not weight.any():
            raise ValueError(f"task {task.name!r}: all {len(weight)} labels are missing "
                             f"(column {task.name!r} has no values).")
        if task.kind in ("binary", "categorical"):
            classes = np.unique(targets[weight > 0])
            if len(classes) < 2:
                raise ValueError(f"task {task.name!r}: column {task.name!r} holds one class only "
                                 f"({_class_name(task, classes[0])!r} in all {int(weight.sum())} "
                                 "labelled rows); a classifier needs two.")
        if adapt and isinstance(task, Regression) and task.standardize and task.mean is None:
            task.adapt(labels)
        y[task.name], weights[task.name] = targets, weight
    return y, weights


def _class_name(task, index):
    labels = getattr(task, "labels", None)
    if labels is not None:
        return labels[int(index)]
    if task.kind == "binary" and task.positive is not None:
        return task.positive if index == 1 else f"not {task.positive}"
    return float(index)


def serialize(tasks):
    return [keras.saving.serialize_keras_object(task) for task in tasks]


def deserialize(configs):
    return [keras.saving.deserialize_keras_object(config) for config in configs]
