"""Prediction tasks: head + loss + metrics + label encoding, with missing labels masked.

    import kerasbrain as kb
    tasks = [kb.tasks.Regression("age", standardize=True), kb.tasks.Binary("sex", positive="M")]
    y, w = kb.tasks.encode_labels(tasks, table)   # NaN/None -> sample weight 0
"""

from kerasbrain.tasks import losses, metrics
from kerasbrain.tasks.definitions import (
    Binary,
    Categorical,
    Ranking,
    Regression,
    SoftClassification,
    Task,
)
from kerasbrain.tasks.labels import check_tasks, deserialize, encode_labels, serialize
from kerasbrain.tasks.specs import TASK_TYPES, from_spec, ukb_tasks

__all__ = [
    "TASK_TYPES",
    "Binary",
    "Categorical",
    "Ranking",
    "Regression",
    "SoftClassification",
    "Task",
    "check_tasks",
    "deserialize",
    "encode_labels",
    "from_spec",
    "losses",
    "metrics",
    "serialize",
    "ukb_tasks",
]
