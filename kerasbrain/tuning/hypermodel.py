"""``FineTuningHyperModel``: the search space of fine-tuning a pretrained backbone.

Hyperparameters (KerasTuner names; each is also a key of the exported config):

======================  ================================================  ==================
name                    values                                            when
======================  ================================================  ==================
``backbone``            the given backbone names                          several backbones
``strategy``            ``frozen``, ``partial``, ``full``, ``two_phase``  always
``trainable_blocks``    1 ... ``max_trainable_blocks``                    ``partial``
``learning_rate``       1e-5 ... 1e-2, log scale (steps of sqrt(10))      always
``head_learning_rate``  1e-4 ... 1e-1, log scale                          ``two_phase``
``dropout``             0.0 ... 0.5, step 0.1                             always
``weight_decay``        0, 1e-5, 1e-4, 1e-3                               always
``head_units``          0 (linear head), 32, 128                          always
``augmentation``        0.0 ... 1.0, step 0.25 (0: flips only)            augmentation on
``loss_weight_<task>``  0.1 ... 1.0, step 0.1 (first task fixed at 1)     several tasks
======================  ================================================  ==================

``two_phase`` is the ``full`` strategy with the heads trained first at
``head_learning_rate``. Override any of them with KerasTuner's own
``HyperParameters`` passed to the tuner (``hp.Fixed("strategy", "full")``, a narrower
``hp.Float("learning_rate", 1e-4, 1e-3, sampling="log")``); every range has a step,
so grid search works too.
"""

import copy

import keras
import keras_tuner as kt
import numpy as np

STRATEGIES = ("frozen", "partial", "full", "two_phase")
CLASSIFICATION_KINDS = ("binary", "categorical")


class FineTuningHyperModel(kt.HyperModel):
    """Build fine-tuned multi-task models from a pretrained backbone, one per trial.

    Args:
        backbone: the pretrained feature extractor: a ``keras.Model`` (copied, weights
            included, for every model built, so folds and trials never share weights), a
            name of a ``kerasbrain.applications`` constructor (``"SFCN"``, called with
            ``weights``, ``input_shape``, ``include_top=False``, ``pooling="avg"`` and
            ``backbone_kwargs``), a function returning a fresh backbone, or a dict
            ``{name: any of these}`` to search over as the ``backbone`` hyperparameter.
        tasks: list of ``kerasbrain.tasks`` (``Regression("age")``, ``Binary("dx")``).
        weights: weights of a named backbone (registry name or file), e.g. ``"ukb"``.
        input_shape: volume shape ``(x, y, z, channels)`` of a named backbone.
        backbone_kwargs: more arguments of a named backbone (``filters=...``).
        strategies: the strategies to search over.
        max_trainable_blocks: upper bound of ``trainable_blocks`` for ``partial``.
        augmentation: tune the strength of ``kerasbrain.layers.augmentation`` applied to
            the training volumes (needs ``kerasbrain.layers``; silently off without it).
        seed: seed of the augmentation and the training shuffle.
        name, tunable: as ``keras_tuner.HyperModel``.

    The data passed to ``fit`` (and to ``CVTuner.search``) is ``x`` volumes
    ``(n, x, y, z, channels)`` and ``y`` a dict ``{task name: (n,) labels}`` as
    ``model.fit`` of the fine-tuned model takes them (NaN: missing).
    """

    def __init__(
        self,
        backbone,
        tasks,
        *,
        weights=None,
        input_shape=None,
        backbone_kwargs=None,
        strategies=STRATEGIES,
        max_trainable_blocks=3,
        augmentation=True,
        seed=0,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        from kerasbrain import tasks as tasks_lib

        self.tasks = tasks_lib.check_tasks(tasks)
        unknown = sorted(set(strategies) - set(STRATEGIES))
        if unknown or not strategies:
            raise ValueError(f"Unknown strategies {unknown or strategies}; choose from {STRATEGIES}.")
        self.strategies = list(strategies)
        self.max_trainable_blocks = int(max_trainable_blocks)
        self.weights = weights
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.seed = seed
        choices = backbone if isinstance(backbone, dict) else {_label(backbone): backbone}
        self.backbones = {name: _resolve(spec) for name, spec in choices.items()}
        self.augment = augmentation and _augmentation_factory() is not None

    # ------------------------------------------------------------------------------

    @property
    def task_names(self):
        return [task.name for task in self.tasks]

    @property
    def stratify_task(self):
        """The first classification task: ``CVTuner`` stratifies its folds by it."""
        for task in self.tasks:
            if getattr(task, "kind", None) in CLASSIFICATION_KINDS:
                return task.name
        return None

    def objectives(self):
        """Every metric a model of this space reports, validation ones included:
        ``<task>_loss``, ``<task>_<metric>`` and ``loss`` (with one task, also the
        unprefixed names Keras gives a single output)."""
        names = ["loss"]
        for task in self.tasks:
            names.append(f"{task.name}_loss")
            names.extend(f"{task.name}_{metric.name}" for metric in task.metrics())
        if len(self.tasks) == 1:
            names.extend(metric.name for metric in self.tasks[0].metrics())
        return sorted(set(names) | {f"val_{name}" for name in names})

    # ------------------------------------------------------------------------------

    def declare_hyperparameters(self, hp):
        self._choose(hp)

    def _choose(self, hp):
        """Declare the space in ``hp`` and return the chosen values as a dict."""
        values = {}
        if len(self.backbones) > 1:
            values["backbone"] = hp.Choice("backbone", list(self.backbones))
        else:
            values["backbone"] = next(iter(self.backbones))
        strategy = hp.Choice("strategy", self.strategies)
        values["strategy"] = strategy
        if "partial" in self.strategies:
            with hp.conditional_scope("strategy", ["partial"]):
                if strategy == "partial":
                    values["trainable_blocks"] = hp.Int(
                        "trainable_blocks", 1, max(1, self.max_trainable_blocks)
                    )
        values["learning_rate"] = hp.Float(
            "learning_rate", 1e-5, 1e-2, step=10**0.5, sampling="log", default=1e-3
        )
        if "two_phase" in self.strategies:
            with hp.conditional_scope("strategy", ["two_phase"]):
                if strategy == "two_phase":
                    values["head_learning_rate"] = hp.Float(
                        "head_learning_rate", 1e-4, 1e-1, step=10**0.5, sampling="log", default=1e-2
                    )
        values["dropout"] = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2)
        values["weight_decay"] = hp.Choice("weight_decay", [0.0, 1e-5, 1e-4, 1e-3])
        values["head_units"] = hp.Choice("head_units", [0, 32, 128])
        if self.augment:
            values["augmentation"] = hp.Float("augmentation", 0.0, 1.0, step=0.25, default=0.5)
        if len(self.tasks) > 1:
            weights = {self.tasks[0].name: 1.0}
            for task in self.tasks[1:]:
                weights[task.name] = hp.Float(
                    f"loss_weight_{task.name}", 0.1, 1.0, step=0.1, default=1.0
                )
            values["loss_weights"] = weights
        return {key: _plain(value) for key, value in values.items()}

    def settings(self, hp):
        """The fine-tuning settings ``hp`` stands for: keyword arguments of
        ``kerasbrain.transfer.finetune`` plus ``backbone`` and ``augmentation``."""
        return self._choose(copy.deepcopy(hp))

    def build(self, hp):
        from kerasbrain import transfer

        values = self._choose(hp)
        backbone = self.backbones[values["backbone"]](self)
        strategy = values["strategy"]
        kwargs = dict(
            strategy="full" if strategy == "two_phase" else strategy,
            learning_rate=values["learning_rate"],
            weight_decay=values["weight_decay"],
            dropout=values["dropout"],
            head_units=values["head_units"] or None,
        )
        if strategy == "partial":
            kwargs["trainable_blocks"] = values["trainable_blocks"]
        if strategy == "two_phase":
            kwargs["two_phase"] = True
            kwargs["head_learning_rate"] = values["head_learning_rate"]
        if "loss_weights" in values:
            kwargs["loss_weights"] = values["loss_weights"]
        return transfer.finetune(backbone, copy.deepcopy(self.tasks), **kwargs)

    def fit(self, hp, model, x, y=None, *, batch_size=None, augment=True, **kwargs):
        """``model.fit``, with the training volumes augmented at the trial's strength.

        The History names metrics ``<task>_<metric>`` even for a single task (where
        Keras leaves out the output name), so objectives read the same either way.
        """
        strength = hp.values.get("augmentation") if self.augment and augment else None
        if strength is None or y is None:
            history = model.fit(x, y, batch_size=batch_size, **kwargs)
        else:
            dataset = _augmented_dataset(
                x, y, kwargs.pop("sample_weight", None), strength, batch_size or 32, self.seed
            )
            kwargs["shuffle"] = False  # the dataset shuffles
            history = model.fit(dataset, **kwargs)
        if len(self.tasks) == 1:
            _prefix_history(history, self.tasks[0].name)
        return history


def _prefix_history(history, task):
    """Add ``<task>_<metric>`` aliases of a single-output model's unprefixed metrics."""
    for key in list(history.history):
        prefix, base = ("val_", key[4:]) if key.startswith("val_") else ("", key)
        alias = f"{prefix}{task}_{base}"
        if not base.startswith(f"{task}_") and alias not in history.history:
            history.history[alias] = history.history[key]


# ----------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _label(spec):
    if isinstance(spec, str):
        return spec
    return getattr(spec, "name", None) or getattr(spec, "__name__", None) or "backbone"


def _resolve(spec):
    """A function ``hypermodel -> fresh backbone`` for any accepted backbone spec."""
    if isinstance(spec, str):
        constructor = application(spec)

        def make(hypermodel):
            return constructor(
                weights=hypermodel.weights,
                include_top=False,
                input_shape=hypermodel.input_shape,
                pooling="avg",
                **hypermodel.backbone_kwargs,
            )

        return make
    if isinstance(spec, keras.Model):
        return lambda hypermodel: spec  # kerasbrain.transfer.finetune copies it
    if callable(spec):
        return lambda hypermodel: spec()
    raise TypeError(
        "backbone must be a keras.Model, a kerasbrain.applications name, a function "
        f"returning a model, or a dict of these; got {type(spec).__name__}."
    )


def application(name):
    """The ``kerasbrain.applications`` constructor called ``name`` (case-insensitive)."""
    from kerasbrain import applications

    try:
        return applications.get(name)
    except ValueError as error:
        raise ValueError(str(error).replace("Unknown architecture", "Unknown backbone")) from None


def _augmentation_factory():
    try:
        from kerasbrain import layers
    except ImportError:
        return None
    return getattr(layers, "augmentation", None)


def _augmented_dataset(x, y, sample_weight, strength, batch_size, seed):
    """A shuffled, batched tf.data pipeline applying ``augmentation(strength)`` to ``x``."""
    import tensorflow as tf

    layer = _augmentation_factory()(strength=strength, seed=seed)
    elements = (x, y) if sample_weight is None else (x, y, sample_weight)
    n = len(x)
    dataset = tf.data.Dataset.from_tensor_slices(elements).shuffle(n, seed=seed)
    dataset = dataset.batch(batch_size)

    # layer by layer: each augmentation layer switches to TensorFlow ops inside tf.data
    # whatever the Keras backend; the Sequential around them would not
    steps = layer.layers if isinstance(layer, keras.Sequential) else [layer]

    def augment(volumes, *rest):
        for step in steps:
            volumes = step(volumes, training=True)
        return (volumes, *rest)

    return dataset.map(augment).prefetch(2)
