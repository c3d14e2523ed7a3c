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
    ukb_tasks,
)
from kerasbrain.tasks.labels import check_tasks, deserialize, encode_labels, serialize

__all__ = [
    "Binary",
    "Categorical",
    "Ranking",
    "Regression",
    "SoftClassification",
    "Task",
    "check_tasks",
    "deserialize",
    "encode_labels",
    "losses",
    "metrics",
    "serialize",
    "ukb_tasks",
]
