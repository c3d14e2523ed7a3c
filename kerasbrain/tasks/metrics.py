"""Per-task metrics that honour sample weights (weight 0 = missing label).

Scalar-valued tasks whose head outputs a distribution (soft classification over bins,
ordinal ranking) are scored on the decoded value: ``decode`` is ``None`` (the output is
the value), ``{"centres": [...]}`` (expected value over bins) or ``{"low": a}`` (ranking:
``a + sum(round(p))``).
"""

import keras
from keras import ops


def decode_tensor(y_pred, decode):
    """Head output -> ``(batch,)`` value in target units (see module docstring)."""
    y_pred = ops.cast(y_pred, "float32")
    if decode is None:
        return ops.reshape(y_pred, (-1,))
    if "centres" in decode:
        return ops.sum(y_pred * ops.convert_to_tensor(decode["centres"], "float32"), axis=-1)
    return decode["low"] + ops.sum(ops.round(y_pred), axis=-1)


def _flat(y, sample_weight):
    y = ops.reshape(ops.cast(y, "float32"), (-1,))
    valid = ops.logical_not(ops.isnan(y))
    weight = ops.cast(valid, "float32")
    if sample_weight is not None:
        weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.where(valid, y, ops.zeros_like(y)), weight


@keras.saving.register_keras_serializable(package="kerasbrain")
class MeanAbsoluteError(keras.metrics.Metric):
    """Weighted mean absolute error of the decoded prediction (target units)."""

    def __init__(self, decode=None, name="mae", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.decode = decode
        self.total = self.add_variable((), "zeros", name="total")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, w = _flat(y_true, sample_weight)
        p = decode_tensor(y_pred, self.decode)
        self.total.assign(self.total + ops.sum(w * ops.abs(p - y)))
        self.count.assign(self.count + ops.sum(w))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self):
        return {**super().get_config(), "decode": self.decode}


@keras.saving.register_keras_serializable(package="kerasbrain")
class PearsonR(keras.metrics.Metric):
    """Weighted Pearson correlation between decoded prediction and target, accumulated
    over batches from weighted sums (centred on ``shift`` for float32 accuracy)."""

    def __init__(self, decode=None, shift=0.0, name="r", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.decode = decode
        self.shift = float(shift)
        self.sums = self.add_variable((6,), "zeros", name="sums")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, w = _flat(y_true, sample_weight)
        y = y - self.shift
        p = decode_tensor(y_pred, self.decode) - self.shift
        self.sums.assign(self.sums + ops.stack([
            ops.sum(w), ops.sum(w * p), ops.sum(w * y),
            ops.sum(w * p * p), ops.sum(w * y * y), ops.sum(w * p * y),
        ]))

    def result(self):
        n, sp, sy, spp, syy, spy = [self.sums[i] for i in range(6)]
        covariance = n * spy - sp * sy
        variance = ops.maximum(n * spp - sp * sp, 0.0) * ops.maximum(n * syy - sy * sy, 0.0)
        return ops.divide_no_nan(covariance, ops.sqrt(variance))

    def get_config(self):
        return {**super().get_config(), "decode": self.decode, "shift": self.shift}


@keras.saving.register_keras_serializable(package="kerasbrain")
class BalancedAccuracy(keras.metrics.Metric):
    """Mean per-class recall over the classes present so far.

    Args:
        classes: number of classes; 2 with a single sigmoid output (threshold 0.5).
    """

    def __init__(self, classes=2, name="balanced_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.classes = int(classes)
        self.confusion = self.add_variable((self.classes, self.classes), "zeros", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, w = _flat(y_true, sample_weight)
        y_pred = ops.cast(y_pred, "float32")
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > 0.5, "int32")
        else:
            predicted = ops.argmax(y_pred, axis=-1)
        truth = ops.one_hot(ops.cast(ops.clip(y, 0, self.classes - 1), "int32"), self.classes)
        guess = ops.one_hot(predicted, self.classes)
        self.confusion.assign(self.confusion + ops.matmul(ops.transpose(truth * w[:, None]), guess))

    def result(self):
        support = ops.sum(self.confusion, axis=1)
        recall = ops.divide_no_nan(ops.diagonal(self.confusion), support)
        present = ops.cast(support > 0, "float32")
        return ops.divide_no_nan(ops.sum(recall * present), ops.sum(present))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="kerasbrain")
class Accuracy(keras.metrics.Metric):
    """Weighted accuracy: sigmoid output thresholded at 0.5, or argmax over classes."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.correct = self.add_variable((), "zeros", name="correct")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, w = _flat(y_true, sample_weight)
        y_pred = ops.cast(y_pred, "float32")
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > 0.5, "float32")
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "float32")
        self.correct.assign(self.correct + ops.sum(w * ops.cast(predicted == y, "float32")))
        self.count.assign(self.count + ops.sum(w))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)
