"""Per-sample losses of the prediction tasks. Every loss returns one value per sample so
that Keras applies sample weights (weight 0 = missing label) before reducing; the default
reduction averages over the labelled samples only (``"mean_with_sample_weight"``)."""

import keras
from keras import ops

MEAN_OVER_LABELLED = "mean_with_sample_weight"


def _scalar(y):
    """``(batch,)`` or ``(batch, 1)`` -> ``(batch,)`` float32, NaN replaced by 0."""
    y = ops.reshape(ops.cast(y, "float32"), (-1,))
    return ops.where(ops.isnan(y), ops.zeros_like(y), y)


@keras.saving.register_keras_serializable(package="kerasbrain")
class RegressionLoss(keras.losses.Loss):
    """MSE, MAE or Huber on standardised targets ``(y - mean) / std``.

    Args:
        kind: ``"mse"``, ``"mae"`` or ``"huber"``.
        mean, std: target standardisation (``0, 1``: raw units).
        delta: Huber threshold in standardised units.
    """

    def __init__(self, kind="mse", mean=0.0, std=1.0, delta=1.0, reduction=MEAN_OVER_LABELLED,
                 name=None, dtype=None):
        if kind not in ("mse", "mae", "huber"):
            raise ValueError(f"Regression loss must be 'mse', 'mae' or 'huber', got {kind!r}.")
        super().__init__(name=name or f"regression_{kind}", reduction=reduction, dtype=dtype)
        self.kind, self.mean, self.std, self.delta = kind, float(mean), float(std), float(delta)

    def call(self, y_true, y_pred):
        error = (_scalar(y_pred) - _scalar(y_true)) / self.std
        if self.kind == "mse":
            return ops.square(error)
        absolute = ops.abs(error)
        if self.kind == "mae":
            return absolute
        quadratic = ops.minimum(absolute, self.delta)
        return 0.5 * ops.square(quadratic) + self.delta * (absolute - quadratic)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "mean": self.mean, "std": self.std,
                "delta": self.delta}


@keras.saving.register_keras_serializable(package="kerasbrain")
class BinaryLoss(keras.losses.Loss):
    """Binary cross-entropy on a sigmoid probability ``(batch, 1)``; targets 0/1."""

    def __init__(self, reduction=MEAN_OVER_LABELLED, name="binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        p = ops.clip(_scalar(y_pred), 1e-7, 1 - 1e-7)
        y = _scalar(y_true)
        return -(y * ops.log(p) + (1 - y) * ops.log(1 - p))


@keras.saving.register_keras_serializable(package="kerasbrain")
class CategoricalLoss(keras.losses.Loss):
    """Cross-entropy of softmax probabilities ``(batch, classes)`` against class indices."""

    def __init__(self, reduction=MEAN_OVER_LABELLED, name="categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        index = ops.cast(ops.clip(_scalar(y_true), 0, classes - 1), "int32")
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
        return -ops.sum(ops.one_hot(index, classes) * ops.log(p), axis=-1)


def gaussian_soft_labels(y, centres, sigma):
    """Gaussian probability mass of ``N(y, sigma)`` in each bin, normalised to sum 1.

    Args:
        y: ``(batch,)`` targets. centres: ``(bins,)`` equally spaced bin centres.

    Returns:
        ``(batch, bins)``.
    """
    centres = ops.convert_to_tensor(centres, "float32")
    half = (centres[1] - centres[0]) / 2 if centres.shape[0] > 1 else 0.5
    y = ops.expand_dims(y, -1)
    scale = 1.0 / (sigma * 2**0.5)
    mass = 0.5 * (ops.erf((centres + half - y) * scale) - ops.erf((centres - half - y) * scale))
    return mass / ops.maximum(ops.sum(mass, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="kerasbrain")
class SoftLabelLoss(keras.losses.Loss):
    """KL divergence between Gaussian soft labels over bins and softmax probabilities
    (Peng et al. 2021). Targets are scalars (e.g. age in years)."""

    def __init__(self, centres, sigma=1.0, reduction=MEAN_OVER_LABELLED, name="soft_label_kl",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.centres = [float(c) for c in centres]
        self.sigma = float(sigma)

    def call(self, y_true, y_pred):
        target = gaussian_soft_labels(_scalar(y_true), self.centres, self.sigma)
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
        return ops.sum(target * (ops.log(ops.maximum(target, 1e-12)) - ops.log(p)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "centres": self.centres, "sigma": self.sigma}


def ranking_targets(y, low, thresholds):
    """Ordinal targets: ``t_k = 1[y > low + k - 0.5]`` for ``k = 1..thresholds``."""
    k = ops.arange(1, thresholds + 1, dtype="float32")
    return ops.cast(ops.expand_dims(y, -1) > low + k - 0.5, "float32")


@keras.saving.register_keras_serializable(package="kerasbrain")
class RankingLoss(keras.losses.Loss):
    """Mean binary cross-entropy over ordinal thresholds (pyment's ranking head)."""

    def __init__(self, low, reduction=MEAN_OVER_LABELLED, name="ranking_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.low = float(low)

    def call(self, y_true, y_pred):
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        t = ranking_targets(_scalar(y_true), self.low, p.shape[-1])
        return -ops.mean(t * ops.log(p) + (1 - t) * ops.log(1 - p), axis=-1)

    def get_config(self):
        return {**super().get_config(), "low": self.low}


@keras.saving.register_keras_serializable(package="kerasbrain")
class UncertaintyWeightedLoss(keras.losses.Loss):
    """``exp(-s) * L + s`` with a learned log-variance ``s`` (Kendall et al. 2018).

    ``s`` is a variable of the model (``UncertaintyWeighting`` layer), so the optimiser
    learns it with the rest of the model; the wrapper only reads it.
    """

    def __init__(self, loss, log_variance, name=None):
        super().__init__(name=name or f"uncertainty_{loss.name}", reduction=None)
        self.loss = loss
        self.log_variance = log_variance

    def __call__(self, y_true, y_pred, sample_weight=None):
        s = ops.cast(ops.convert_to_tensor(self.log_variance), "float32")
        return ops.exp(-s) * self.loss(y_true, y_pred, sample_weight=sample_weight) + s

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)
