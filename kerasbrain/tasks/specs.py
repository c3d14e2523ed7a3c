"""Tasks from plain specs (``{"type": "regression", "name": "age", ...}``), as config files
and weight presets give them, and the UK Biobank phenotypes of multi-task pretraining."""

from kerasbrain.tasks.definitions import (
    Binary,
    Categorical,
    Ranking,
    Regression,
    SoftClassification,
)

#: task ``type`` names (config files, weight presets) -> task class
TASK_TYPES = {
    "regression": Regression,
    "binary": Binary,
    "categorical": Categorical,
    "soft_classification": SoftClassification,
    "ranking": Ranking,
}
#: kerasbrain's standardisation of the UK Biobank phenotypes for pretraining (mean, std)
UKB_STANDARDIZE = {"age": (64.0, 7.5), "bmi": (26.5, 4.4), "fluid_intelligence": (6.6, 2.1),
                   "neuroticism": (4.0, 3.2)}


def from_spec(spec, **overrides):
    """A task from ``{"type": ..., "name": ..., **arguments}`` (a config file's or a weight
    preset's task); ``overrides`` replace arguments.

    Raises:
        ValueError: unknown type (lists the known ones) or bad arguments.
    """
    spec = {**spec, **overrides}
    kind = spec.pop("type", None)
    if kind not in TASK_TYPES:
        raise ValueError(f"unknown task type {kind!r}; choose from {sorted(TASK_TYPES)}.")
    try:
        return TASK_TYPES[kind](**spec)
    except TypeError as error:
        raise ValueError(f"task {spec.get('name')!r}: {error}") from None


def ukb_tasks():
    """The six UK Biobank phenotypes of multi-task pretraining (Leonardsen et al. 2025), in
    the order of the ``multi-2025`` heads: age (years, Huber, standardised around
    64 +- 7.5), sex (1 = male), handedness (1 = left), BMI (kg/m^2), fluid intelligence
    (score 0-13) and neuroticism (score 0-12), the last four standardised regressions with
    round population statistics."""
    from kerasbrain.weights.presets import MULTITASK_TASKS

    tasks = []
    for spec in MULTITASK_TASKS:
        extra = {"standardize": UKB_STANDARDIZE[spec["name"]]} if spec["name"] in UKB_STANDARDIZE else {}
        if spec["name"] == "age":
            extra["loss"] = "huber"
        tasks.append(from_spec(spec, **extra))
    return tasks
