"""Prediction tasks. A task owns its head (the layers after the shared features), its
loss, its metrics, and the encoding of labels to targets and of outputs to target units.

Every head ends in a layer named after the task (earlier head layers are named
``<task>_...``) and runs in float32, so the heads stay exact under mixed precision.
Missing labels (NaN / None) are encoded as sample weight 0: they contribute nothing to
the loss or the metrics.
"""

import abc
import numbers

import keras
import numpy as np

from kerasbrain.tasks import losses as losses_lib
from kerasbrain.tasks import metrics as metrics_lib

HEAD_DTYPE = "float32"


def _missing(values):
    """Boolean mask of missing entries (None, NaN, empty string) in a 1D object array."""
    out = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and value.strip() == ""):
            out[i] = True
        elif isinstance(value, numbers.Real) and np.isnan(value):
            out[i] = True
    return out


def _as_array(labels, task_name):
    values = np.asarray(labels, dtype=object).reshape(-1)
    if values.size == 0:
        raise ValueError(f"task {task_name!r}: no labels given.")
    return values


class Task(abc.ABC):
    """Base class. Subclasses set ``kind`` and implement ``head``, ``loss``, ``metrics``,
    ``encode`` and ``decode``.

    Args:
        name: output name; also the label column / dict key the task reads.
        weight: fixed weight of this task's loss in the total loss.
    """

    kind = None

    def __init__(self, name, weight=1.0):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"task name must be an identifier-like string, got {name!r}.")
        self.name = name
        self.weight = float(weight)

    # -- Keras pieces ---------------------------------------------------------------
    @abc.abstractmethod
    def head(self, features):
        """Apply this task's head to ``features`` ``(batch, d)``; return its output."""

    @property
    @abc.abstractmethod
    def loss(self):
        """A fresh ``keras.losses.Loss`` giving one value per sample."""

    @abc.abstractmethod
    def metrics(self):
        """Fresh metric objects (names without the task prefix; Keras adds it)."""

    # -- labels ---------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, labels):
        """Labels -> ``(targets float32 (n,), sample_weights float32 (n,))``; a missing
        label gets target 0 and weight 0."""

    @abc.abstractmethod
    def decode(self, predictions):
        """Model output -> target units (NumPy)."""

    @property
    def decoder(self):
        """How metrics decode the head output (see ``kerasbrain.tasks.metrics``)."""
        return None

    def get_config(self):
        return {"name": self.name, "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _numeric(self, labels):
        values = _as_array(labels, self.name)
        missing = _missing(values)
        targets = np.zeros(len(values), dtype="float32")
        for i in np.flatnonzero(~missing):
            value = values[i]
            if isinstance(value, (str, bytes)) or not isinstance(value, (numbers.Real, np.bool_)):
                raise TypeError(
                    f"task {self.name!r} ({type(self).__name__}) needs numeric labels; "
                    f"row {i} has {value!r} ({type(value).__name__})."
                )
            targets[i] = float(value)
        return targets, (~missing).astype("float32")


def _dense(units, name, activation=None):
    return keras.layers.Dense(units, activation=activation, name=name, dtype=HEAD_DTYPE)


@keras.saving.register_keras_serializable(package="kerasbrain")
class Regression(Task):
    """A continuous target (age, BMI, a cognitive score).

    Args:
        name: task name.
        loss: ``"mse"``, ``"mae"`` or ``"huber"``.
        standardize: ``False``; ``True`` (learn mean/std from the labels given to
            ``adapt``/``encode_labels``); or ``(mean, std)``. The head outputs raw units
            (a Rescaling layer stores mean/std with the model); the loss is computed on
            standardised units so tasks with different scales weigh alike.
        output_range: optional ``(low, high)`` clamp of the output (pyment's regression head).
        weight: loss weight.
    """

    kind = "regression"

    def __init__(self, name, loss="mse", standardize=False, output_range=None, weight=1.0):
        super().__init__(name, weight)
        if loss not in ("mse", "mae", "huber"):
            raise ValueError(f"Regression({name!r}): loss must be 'mse', 'mae' or 'huber', got {loss!r}.")
        self.loss_kind = loss
        self.mean, self.std = None, None
        if isinstance(standardize, (tuple, list)):
            self.mean, self.std = float(standardize[0]), float(standardize[1])
            if not self.std > 0:
                raise ValueError(f"Regression({name!r}): standardize std must be > 0, got {self.std}.")
            standardize = True
        self.standardize = bool(standardize)
        self.output_range = tuple(float(v) for v in output_range) if output_range else None

    def adapt(self, labels):
        """Set the standardisation from labels (missing ones ignored)."""
        targets, weights = self.encode(labels)
        values = targets[weights > 0]
        if values.size == 0:
            raise ValueError(f"task {self.name!r}: all labels are missing; cannot standardise.")
        self.mean = float(values.mean())
        self.std = float(values.std()) or 1.0
        return self

    def _scale(self):
        if not self.standardize:
            return 0.0, 1.0
        if self.mean is None:
            raise ValueError(
                f"Regression({self.name!r}, standardize=True) has no mean/std yet: call "
                f"task.adapt(labels) or kerasbrain.tasks.encode_labels(tasks, table) first, "
                f"or pass standardize=(mean, std)."
            )
        return self.mean, self.std

    def head(self, features):
        mean, std = self._scale()
        if not self.standardize and not self.output_range:
            return _dense(1, self.name)(features)
        x = _dense(1, f"{self.name}_dense")(features)
        if self.output_range:
            low, high = self.output_range
            x = keras.layers.Rescaling(std, offset=mean - low, name=f"{self.name}_scale",
                                       dtype=HEAD_DTYPE)(x)
            x = keras.layers.ReLU(max_value=high - low, name=f"{self.name}_clamp", dtype=HEAD_DTYPE)(x)
            return keras.layers.Rescaling(1.0, offset=low, name=self.name, dtype=HEAD_DTYPE)(x)
        return keras.layers.Rescaling(std, offset=mean, name=self.name, dtype=HEAD_DTYPE)(x)

    @property
    def loss(self):
        mean, std = self._scale()
        return losses_lib.RegressionLoss(self.loss_kind, mean, std)

    def metrics(self):
        shift = self.mean or 0.0
        return [metrics_lib.MeanAbsoluteError(), metrics_lib.PearsonR(shift=shift)]

    def encode(self, labels):
        return self._numeric(labels)

    def decode(self, predictions):
        return np.asarray(predictions, dtype="float64").reshape(len(predictions), -1)[:, 0]

    def get_config(self):
        standardize = (self.mean, self.std) if self.mean is not None else self.standardize
        return {**super().get_config(), "loss": self.loss_kind, "standardize": standardize,
                "output_range": self.output_range}


@keras.saving.register_keras_serializable(package="kerasbrain")
class Binary(Task):
    """A two-class target (sex, diagnosis). Output: probability of ``positive`` ``(batch, 1)``.

    Args:
        name: task name.
        positive: the label value that counts as the positive class. ``None`` accepts
            0/1 (or booleans) only.
        weight: loss weight.
    """

    kind = "binary"

    def __init__(self, name, positive=None, weight=1.0):
        super().__init__(name, weight)
        self.positive = positive

    def head(self, features):
        return _dense(1, self.name, activation="sigmoid")(features)

    @property
    def loss(self):
        return losses_lib.BinaryLoss()

    def metrics(self):
        return [keras.metrics.AUC(name="auc"), metrics_lib.Accuracy(name="accuracy"),
                metrics_lib.BalancedAccuracy(2)]

    def encode(self, labels):
        values = _as_array(labels, self.name)
        missing = _missing(values)
        present = values[~missing]
        distinct = sorted({str(v) if isinstance(v, (str, bytes)) else float(v) for v in present},
                          key=str)
        if len(distinct) > 2:
            raise ValueError(
                f"task {self.name!r} is Binary but its labels have {len(distinct)} classes "
                f"({distinct[:5]}{'...' if len(distinct) > 5 else ''}); use Categorical."
            )
        targets = np.zeros(len(values), dtype="float32")
        for i in np.flatnonzero(~missing):
            value = values[i]
            if self.positive is not None:
                targets[i] = float(value == self.positive or str(value) == str(self.positive))
            elif isinstance(value, (str, bytes)) or float(value) not in (0.0, 1.0):
                raise ValueError(
                    f"task {self.name!r}: label {value!r} at row {i} is not 0/1; pass "
                    f"Binary({self.name!r}, positive=<the positive label>)."
                )
            else:
                targets[i] = float(value)
        return targets, (~missing).astype("float32")

    def decode(self, predictions):
        return np.asarray(predictions, dtype="float64").reshape(len(predictions), -1)[:, 0]

    def get_config(self):
        return {**super().get_config(), "positive": self.positive}


@keras.saving.register_keras_serializable(package="kerasbrain")
class Categorical(Task):
    """A target with ``n`` classes. Output: softmax probabilities ``(batch, n)``.

    Args:
        name: task name.
        classes: number of classes (labels are integers ``0..n-1``) or the list of labels
            (strings or numbers), in output order.
        weight: loss weight.
    """

    kind = "categorical"

    def __init__(self, name, classes, weight=1.0):
        super().__init__(name, weight)
        if isinstance(classes, numbers.Integral):
            if classes < 2:
                raise ValueError(f"Categorical({name!r}): need at least 2 classes, got {classes}.")
            self.labels = None
            self.n_classes = int(classes)
        else:
            self.labels = list(classes)
            if len(set(map(str, self.labels))) != len(self.labels) or len(self.labels) < 2:
                raise ValueError(f"Categorical({name!r}): classes must be >= 2 distinct labels, got {classes}.")
            self.n_classes = len(self.labels)

    def head(self, features):
        return _dense(self.n_classes, self.name, activation="softmax")(features)

    @property
    def loss(self):
        return losses_lib.CategoricalLoss()

    def metrics(self):
        return [metrics_lib.Accuracy(name="accuracy"), metrics_lib.BalancedAccuracy(self.n_classes)]

    def encode(self, labels):
        values = _as_array(labels, self.name)
        missing = _missing(values)
        targets = np.zeros(len(values), dtype="float32")
        lookup = {str(label): i for i, label in enumerate(self.labels or [])}
        for i in np.flatnonzero(~missing):
            value = values[i]
            if self.labels is not None:
                key = str(value.decode() if isinstance(value, bytes) else value)
                if key not in lookup and isinstance(value, numbers.Real) and float(value).is_integer():
                    key = str(int(value))
                if key not in lookup:
                    raise ValueError(f"task {self.name!r}: label {value!r} at row {i} is not one of {self.labels}.")
                targets[i] = lookup[key]
            else:
                if isinstance(value, (str, bytes)) or not float(value).is_integer() or not 0 <= value < self.n_classes:
                    raise ValueError(
                        f"task {self.name!r}: label {value!r} at row {i} is not a class index in "
                        f"0..{self.n_classes - 1}; pass Categorical({self.name!r}, classes=[...labels]).")
                targets[i] = float(value)
        return targets, (~missing).astype("float32")

    def decode(self, predictions):
        index = np.argmax(np.asarray(predictions), axis=-1)
        if self.labels is None:
            return index
        return np.asarray(self.labels, dtype=object)[index]

    def get_config(self):
        return {**super().get_config(), "classes": self.labels or self.n_classes}


@keras.saving.register_keras_serializable(package="kerasbrain")
class SoftClassification(Task):
    """A continuous target predicted as a distribution over bins (SFCN brain age).

    Targets are Gaussian soft labels (``sigma`` in target units) over ``bins`` equal
    bins spanning ``bin_range``; loss KL divergence; prediction = expected value over bin
    centres. Output: softmax probabilities ``(batch, bins)``.
    """

    kind = "soft_classification"

    def __init__(self, name, bin_range=(42, 82), bins=40, sigma=1.0, weight=1.0):
        super().__init__(name, weight)
        low, high = (float(v) for v in bin_range)
        if not high > low or int(bins) < 2:
            raise ValueError(f"SoftClassification({name!r}): need bin_range low < high and bins >= 2.")
        self.bin_range, self.bins, self.sigma = (low, high), int(bins), float(sigma)

    @property
    def centres(self):
        low, high = self.bin_range
        return low + (high - low) / self.bins * (np.arange(self.bins) + 0.5)

    def head(self, features):
        return _dense(self.bins, self.name, activation="softmax")(features)

    @property
    def loss(self):
        return losses_lib.SoftLabelLoss(self.centres.tolist(), self.sigma)

    @property
    def decoder(self):
        return {"centres": self.centres.tolist()}

    def metrics(self):
        return [metrics_lib.MeanAbsoluteError(self.decoder),
                metrics_lib.PearsonR(self.decoder, shift=float(np.mean(self.bin_range)))]

    def encode(self, labels):
        return self._numeric(labels)

    def decode(self, predictions):
        return np.asarray(predictions, dtype="float64") @ self.centres

    def get_config(self):
        return {**super().get_config(), "bin_range": self.bin_range, "bins": self.bins,
                "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="kerasbrain")
class Ranking(Task):
    """A continuous target predicted ordinally (pyment's ranking head): one sigmoid per
    threshold ``low + k - 0.5`` (``k = 1..high-low-1``); value = ``low + sum(round(p))``."""

    kind = "ranking"

    def __init__(self, name, value_range=(3, 95), weight=1.0):
        super().__init__(name, weight)
        low, high = (float(v) for v in value_range)
        if not high - low >= 2:
            raise ValueError(f"Ranking({name!r}): value_range must span at least 2 units.")
        self.value_range = (low, high)
        self.thresholds = int(round(high - low)) - 1

    def head(self, features):
        return _dense(self.thresholds, self.name, activation="sigmoid")(features)

    @property
    def loss(self):
        return losses_lib.RankingLoss(self.value_range[0])

    @property
    def decoder(self):
        return {"low": self.value_range[0]}

    def metrics(self):
        return [metrics_lib.MeanAbsoluteError(self.decoder),
                metrics_lib.PearsonR(self.decoder, shift=float(np.mean(self.value_range)))]

    def encode(self, labels):
        return self._numeric(labels)

    def decode(self, predictions):
        return self.value_range[0] + np.round(np.asarray(predictions, dtype="float64")).sum(axis=-1)

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range}
