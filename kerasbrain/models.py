"""Multi-task models: a shared backbone, one head per task, one named output per task.

    backbone = kb.applications.SFCN(weights=None, include_top=False, pooling="avg")
    model = kb.models.multitask(backbone, kb.tasks.ukb_tasks(), loss_weights="uncertainty")
    model.fit(volumes, y, sample_weight=w, epochs=10)      # y, w from kb.tasks.encode_labels

The model is compiled with each task's loss and metrics; History names them
``<task>_loss`` and ``<task>_<metric>`` (``val_<task>_<metric>``). ``model.compile(...)``
can be called again with another optimiser; losses and metrics come from the tasks.
"""

import inspect

import keras
from keras import ops

from kerasbrain import tasks as tasks_lib

FEATURES = "features"
HEAD_DROPOUT = "head_dropout"
UNCERTAINTY = "uncertainty"


@keras.saving.register_keras_serializable(package="kerasbrain")
class UncertaintyWeighting(keras.layers.Layer):
    """Holds one learned log-variance ``s`` per task (Kendall, Gal & Cipolla 2018).

    Identity on the model outputs; the compiled loss of task ``i`` becomes
    ``exp(-s_i) * L_i + s_i``, so tasks with noisier losses are down-weighted.
    """

    def __init__(self, task_names, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.log_variances = {
            name: self.add_weight(shape=(), initializer="zeros", name=f"{name}_log_variance",
                                  dtype="float32")
            for name in self.task_names
        }

    def call(self, outputs):
        return {name: outputs[name] for name in self.task_names}

    def compute_output_spec(self, outputs):
        return {name: keras.KerasTensor(outputs[name].shape, outputs[name].dtype)
                for name in self.task_names}

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names}


def _sanitize(y, sample_weight, names):
    """NaN labels -> target 0, weight 0; scalar targets reshaped to ``(batch, 1)``."""
    if not isinstance(y, dict):
        return y, sample_weight
    y_out, w_out = {}, {}
    for name in names:
        if name not in y:
            raise KeyError(f"the data has no labels for task {name!r}; it has {sorted(y)}.")
        target = y[name]
        weight = sample_weight.get(name) if isinstance(sample_weight, dict) else sample_weight
        if len(target.shape) == 1:
            target = ops.expand_dims(target, -1)
        if "float" in str(target.dtype):
            missing = ops.any(ops.isnan(target), axis=-1)
            target = ops.where(ops.isnan(target), ops.zeros_like(target), target)
            present = ops.cast(ops.logical_not(missing), "float32")
            weight = present if weight is None else ops.reshape(ops.cast(weight, "float32"), (-1,)) * present
        y_out[name], w_out[name] = target, weight
    return y_out, w_out


@keras.saving.register_keras_serializable(package="kerasbrain")
class MultiTaskModel(keras.Model):
    """A functional model with one output per task that knows its tasks.

    ``compile()`` fills in each task's loss (weighted by ``task.weight``, or learned
    uncertainty weights when the model has an ``uncertainty`` layer) and metrics;
    NaN labels are masked in ``fit``/``evaluate``; ``fit`` runs the two-phase schedule
    set by ``kerasbrain.transfer.finetune(..., two_phase=...)``.
    """

    def __init__(self, *args, tasks=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tasks and all(isinstance(task, dict) for task in tasks):  # from a saved config
            tasks = tasks_lib.deserialize(tasks)
        self.tasks = tasks_lib.check_tasks(tasks)
        self.two_phase = None
        self._compile_args = None

    @property
    def task_names(self):
        return [task.name for task in self.tasks]

    def compile(self, optimizer="adam", learning_rate=None, weight_decay=None, loss_weights=None,
                **kwargs):
        """Compile with the tasks' losses and metrics.

        Args:
            optimizer: name or ``keras.optimizers.Optimizer``. With a name,
                ``learning_rate`` and ``weight_decay`` (decoupled) configure it.
            loss_weights: ``{task: weight}`` overriding ``task.weight``.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``jit_compile``,
                ``steps_per_execution``); ``loss``/``metrics`` override the tasks'.
        """
        if isinstance(optimizer, str):
            config = {}
            if learning_rate is not None:
                config["learning_rate"] = float(learning_rate)
            if weight_decay:
                config["weight_decay"] = float(weight_decay)
            optimizer = keras.optimizers.get({"class_name": optimizer, "config": config})
        elif learning_rate is not None or weight_decay is not None:
            raise ValueError("learning_rate/weight_decay apply to an optimizer given by name; "
                             "configure the optimizer object instead.")
        weights = {task.name: task.weight for task in self.tasks}
        unknown = sorted(set(loss_weights or {}) - set(weights))
        if unknown:
            raise ValueError(f"loss_weights names unknown tasks {unknown}; tasks are {sorted(weights)}.")
        weights.update(loss_weights or {})
        losses = {task.name: task.loss for task in self.tasks}
        if self._uncertainty_layer() is not None:
            layer = self._uncertainty_layer()
            losses = {name: tasks_lib.losses.UncertaintyWeightedLoss(loss, layer.log_variances[name])
                      for name, loss in losses.items()}
        kwargs.setdefault("loss", losses)
        kwargs.setdefault("loss_weights", weights)
        kwargs.setdefault("weighted_metrics", {task.name: task.metrics() for task in self.tasks})
        self._compile_args = {"optimizer": optimizer, "loss_weights": loss_weights}
        super().compile(optimizer=optimizer, **kwargs)

    def _uncertainty_layer(self):
        for layer in self.layers:
            if isinstance(layer, UncertaintyWeighting):
                return layer
        return None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y, sample_weight = _sanitize(y, sample_weight, self.task_names)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y, sample_weight = _sanitize(y, sample_weight, self.task_names)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``; with a two-phase schedule, the first ``head_epochs`` train
        the heads only (backbone frozen, ``head_learning_rate``), the rest everything.
        Datasets and generators shuffle themselves: ``shuffle`` defaults to False for them."""
        data = args[0] if args else kwargs.get("x")
        if not isinstance(data, (list, tuple, dict)) and not hasattr(data, "shape"):
            kwargs.setdefault("shuffle", False)  # Keras would warn that it ignores it
        if not self.two_phase:
            return super().fit(*args, **kwargs)
        return fit_two_phase(self, super().fit, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "tasks": tasks_lib.serialize(self.tasks)}

    def get_compile_config(self):
        if self._compile_args is None:
            return None
        return {
            "optimizer": keras.saving.serialize_keras_object(self._compile_args["optimizer"]),
            "loss_weights": self._compile_args["loss_weights"],
        }

    def compile_from_config(self, config):
        optimizer = keras.saving.deserialize_keras_object(config["optimizer"])
        self.compile(optimizer=optimizer, loss_weights=config.get("loss_weights"))
        if self.built:
            optimizer.build(self.trainable_variables)


def multitask(backbone, tasks, loss_weights=None, dropout=0.5, head_units=None, pooling="avg",
              name="multitask", freeze_backbone=False, optimizer="adam", learning_rate=1e-3,
              weight_decay=0.0, compile=True):
    """A shared backbone with one head per task.

    Args:
        backbone: a ``keras.Model`` mapping volumes to features: ``(batch, d)`` or a 5D
            feature map (pooled with ``pooling``), e.g. ``SFCN(include_top=False)``.
        tasks: list of ``kerasbrain.tasks.Task``.
        loss_weights: ``None`` (each ``task.weight``), ``{task: weight}``, or
            ``"uncertainty"`` (learned per-task log-variances, Kendall et al. 2018).
        dropout: rate of the dropout shared by the heads (0 for none).
        head_units: ``None`` (a linear head per task on the features), an int or a list
            of ints: hidden ReLU layers ``<task>_hidden<i>`` before each task's output.
        pooling: ``"avg"`` or ``"max"``, used when the backbone outputs a 5D map.
        name: model name.
        freeze_backbone: backbone not trainable and run in inference mode
            (BatchNorm statistics untouched, dropout off).
        optimizer, learning_rate, weight_decay: compile settings (``compile=True``).
        compile: compile with the tasks' losses and metrics.

    Returns:
        A ``MultiTaskModel`` with dict outputs ``{task name: tensor}``.
    """
    tasks = tasks_lib.check_tasks(tasks)
    if not isinstance(backbone, keras.Model):
        raise TypeError(f"backbone must be a keras.Model, got {type(backbone).__name__}.")
    if loss_weights is not None and loss_weights != "uncertainty" and not isinstance(loss_weights, dict):
        raise ValueError(f"loss_weights must be None, a dict or 'uncertainty', got {loss_weights!r}.")
    if freeze_backbone:
        backbone.trainable = False
    inputs, x = head_inputs(backbone, pooling, dropout, frozen=freeze_backbone)
    outputs = {task.name: task.head(hidden_layers(x, task, head_units)) for task in tasks}
    if loss_weights == "uncertainty":
        outputs = UncertaintyWeighting([task.name for task in tasks], name=UNCERTAINTY)(outputs)
    model = MultiTaskModel(inputs, outputs, tasks=tasks, name=name)
    if compile:
        compile_model(model, optimizer, learning_rate, weight_decay,
                      loss_weights if isinstance(loss_weights, dict) else None)
    return model


def load_model(path, compile=True, **kwargs):
    """``keras.saving.load_model`` for files holding kerasbrain objects.

    Imports the modules that register kerasbrain's layers, tasks, losses, metrics and
    models with Keras first, so a ``.keras`` file written by any kerasbrain model loads in
    a fresh process. ``kwargs`` go to ``keras.saving.load_model``.

    Raises:
        FileNotFoundError / ValueError naming ``path`` (missing, not a zip archive, truncated).
    """
    import importlib
    import os
    import zipfile

    for module in ("kerasbrain.layers", "kerasbrain.applications.convnext",
                   "kerasbrain.applications.pretrained"):
        importlib.import_module(module)
    name = os.fspath(path)
    if name.endswith(".keras"):
        if not os.path.exists(name):
            raise FileNotFoundError(f"{name}: no such model file")
        if not zipfile.is_zipfile(name):
            raise ValueError(f"{name}: not a .keras model (not a zip archive: truncated, or "
                             "another format)")
    try:
        return keras.saving.load_model(path, compile=compile, **kwargs)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f"{name}: not a readable .keras model (truncated?): {error}") from None


def compile_model(model, optimizer="adam", learning_rate=1e-3, weight_decay=0.0, loss_weights=None):
    """Compile a ``MultiTaskModel``; ``optimizer="adam"`` with ``weight_decay`` becomes AdamW."""
    if isinstance(optimizer, str):
        if weight_decay and optimizer.lower() == "adam":
            optimizer = "adamw"
        model.compile(optimizer=optimizer, learning_rate=learning_rate,
                      weight_decay=weight_decay or None, loss_weights=loss_weights)
    else:
        model.compile(optimizer=optimizer, loss_weights=loss_weights)
    return model


def head_inputs(backbone, pooling="avg", dropout=0.5, frozen=False):
    """The graph every task head reads: ``(inputs, x)``.

    ``inputs`` is a new ``volume`` input; ``x`` the backbone's features ``(batch, d)``
    (a 5D map pooled to ``features``) after the shared ``head_dropout``. ``frozen`` calls
    the backbone in inference mode (BatchNorm statistics untouched, dropout off).
    """
    inputs = keras.Input(shape=backbone.input_shape[1:], name="volume")
    features = backbone(inputs, training=False) if frozen else backbone(inputs)
    features = _pool(features, pooling)
    x = keras.layers.Dropout(dropout, name=HEAD_DROPOUT)(features) if dropout else features
    return inputs, x


def _pool(features, pooling):
    if len(features.shape) == 2:
        return features
    if len(features.shape) != 5:
        raise ValueError(f"backbone output must be (batch, d) or 5D, got shape {features.shape}.")
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling3D(name=FEATURES)(features)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling3D(name=FEATURES)(features)
    raise ValueError(f"pooling must be 'avg' or 'max' for a 5D backbone output, got {pooling!r}.")


def hidden_layers(x, task, head_units):
    """``head_units`` (an int or a list) hidden ReLU layers ``<task>_hidden<i>`` on ``x``."""
    if not head_units:
        return x
    units = [head_units] if isinstance(head_units, int) else list(head_units)
    for i, width in enumerate(units):
        x = keras.layers.Dense(width, activation="relu", name=f"{task.name}_hidden{i}",
                               dtype="float32")(x)
    return x


def fit_two_phase(model, fit, *args, **kwargs):
    """Run ``fit`` (the bound ``keras.Model.fit``) as heads-only then all-trainable.

    Callbacks are shared by both phases; epochs are numbered continuously and the
    returned History holds both phases.
    """
    bound = inspect.signature(keras.Model.fit).bind(model, *args, **kwargs)
    arguments = dict(bound.arguments)
    arguments.pop("self")
    arguments.update(arguments.pop("kwargs", {}))
    epochs = arguments.get("epochs", 1)
    initial_epoch = arguments.get("initial_epoch", 0)
    plan = model.two_phase
    head_epochs = plan["head_epochs"]
    backbone = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    optimizer = model.optimizer
    history = None

    def recompile(learning_rate):
        config = {**optimizer.get_config(), "learning_rate": learning_rate}
        config.pop("name", None)
        model.compile(optimizer=optimizer.__class__(**config), loss_weights=plan["loss_weights"])

    if initial_epoch < min(head_epochs, epochs):
        for layer in backbone:
            layer.trainable = False
        recompile(plan["head_learning_rate"])
        history = fit(**{**arguments, "epochs": min(head_epochs, epochs)})
        for layer in backbone:
            layer.trainable = True
        if model.stop_training or epochs <= head_epochs:
            recompile(plan["learning_rate"])
            return history
    recompile(plan["learning_rate"])
    second = fit(**{**arguments, "initial_epoch": max(initial_epoch, head_epochs)})
    if history is not None:
        for key, values in history.history.items():
            second.history[key] = list(values) + list(second.history.get(key, []))
        second.epoch = list(history.epoch) + list(second.epoch)
    return second
