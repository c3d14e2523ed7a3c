"""Contrastive pretraining (SimCLR, y-aware) as a ``keras.Model`` trained with ``fit``."""

import math

import keras
import numpy as np
from keras import ops

from kerasbrain.layers.views import view_augmentation
from kerasbrain.pretraining import losses


def pooled_features(backbone):
    """The feature size of a backbone with pooled output ``(batch, d)``; else ValueError."""
    if not isinstance(backbone, keras.Model):
        raise TypeError(f"backbone must be a keras.Model, got {type(backbone).__name__}.")
    shape = backbone.output.shape if hasattr(backbone, "output") else None
    if shape is None or len(shape) != 2:
        raise ValueError(
            f"backbone {backbone.name!r} must output pooled features (batch, d); its output has "
            f"shape {None if shape is None else tuple(shape)}. Build it with include_top=False "
            f"and pooling='avg' (or 'max').")
    return int(shape[-1])


@keras.saving.register_keras_serializable(package="kerasbrain")
class Contrastive(keras.Model):
    """Contrastive pretraining of ``backbone`` on unlabelled volumes.

    Each batch of ``N`` volumes becomes two random views (``augment``); each view goes
    through the backbone as a batch of ``N`` (BatchNorm statistics per view), then both
    through a projection head (Dense -> ReLU -> Dense), and
    NT-Xent pulls the two views of a volume together (see `kerasbrain.pretraining.losses`).
    With ``kernel=("age", sigma)`` the y-aware loss weights positives by an RBF kernel on
    the label ``age`` (years; same units as ``sigma``), taken from the labels ``fit``
    gets: ``fit(x, {"age": ages})``, or a dataset of ``(volumes, {"age": ...}[, weights])``
    such as ``kb.data.tfrecord_dataset(..., labels=["age"])``. A label that is NaN, or
    has sample weight 0, is missing: that volume falls back to NT-Xent.

    Args:
        backbone: a ``keras.Model`` with pooled output ``(batch, d)`` (e.g.
            ``SFCN(include_top=False, pooling="avg")``). After ``fit`` it is the pretrained
            backbone (``model.backbone``), ready for ``kb.transfer.finetune``.
        projection_dim: output size of the projection head.
        temperature: softmax temperature (> 0).
        augment: a Keras layer making a random view (``training=True``) of a batch;
            ``None``: `kerasbrain.layers.view_augmentation` (``seed``-ed).
        kernel: ``None`` (SimCLR) or ``(label name, sigma)`` (y-aware).
        seed: seed of the default augmentation.

    Calling the model returns the projections of two views of ``x``, stacked
    ``(2 * batch, projection_dim)`` (views are random in ``evaluate`` too: its loss is
    the same pretext task on held-out volumes).
    """

    def __init__(self, backbone, projection_dim=128, temperature=0.1, augment=None, kernel=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        features = pooled_features(backbone)
        self.temperature = losses.check_temperature(temperature)
        self.kernel = None
        if kernel is not None:
            if not (isinstance(kernel, list | tuple) and len(kernel) == 2 and isinstance(kernel[0], str)):
                raise ValueError(f"kernel must be None or (label name, sigma), got {kernel!r}.")
            sigma = float(kernel[1])
            if not sigma > 0 or not math.isfinite(sigma):
                raise ValueError(f"kernel sigma must be > 0, got {kernel[1]!r}.")
            self.kernel = (kernel[0], sigma)
        self.backbone = backbone
        self.projection_dim = int(projection_dim)
        self.seed = seed
        self.augment = augment if augment is not None else view_augmentation(seed=seed)
        self.projector = keras.Sequential(
            [keras.layers.Dense(max(features, self.projection_dim), activation="relu", name="projection_hidden"),
             keras.layers.Dense(self.projection_dim, name="projection")],
            name="projector")
        self.projector.build((None, features))
        self.built = True  # every variable exists: fit's BackupAndRestore may restore at once

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        # one backbone pass per view (BatchNorm statistics per view, as in BYOL or MoCo v3):
        # on CPUs two batches of N run faster than one of 2N
        features = [self.backbone(self.augment(inputs, training=True), training=training) for _ in range(2)]
        return self.projector(ops.concatenate(features, 0), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z1, z2 = ops.split(y_pred, 2, axis=0)
        labels = None if self.kernel is None else self.kernel_labels(y, sample_weight)
        loss = losses._loss(z1, z2, self.temperature, labels, None if labels is None else self.kernel[1])
        return _with_layer_losses(self, loss)

    def kernel_labels(self, y, sample_weight=None):
        """``(batch,)`` float labels of the kernel (NaN = missing) from ``fit``'s ``y``."""
        name = self.kernel[0]
        if y is None:
            raise ValueError(f"kernel label {name!r} is missing: fit got volumes without labels; "
                             f"pass y={{'{name}': values}} or a dataset with that label.")
        if isinstance(y, dict):
            if name not in y:
                raise ValueError(f"kernel label {name!r} is not among the labels {sorted(y)}.")
            value = y[name]
            weight = sample_weight.get(name) if isinstance(sample_weight, dict) else sample_weight
        else:
            value, weight = y, sample_weight
        value = ops.reshape(ops.cast(value, "float32"), (-1,))
        if weight is not None:
            weight = ops.reshape(ops.cast(weight, "float32"), (-1,))
            value = ops.where(weight > 0, value, np.nan)
        return value

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        if isinstance(x, np.ndarray) and len(x) < 2:
            raise ValueError(f"Contrastive.fit needs at least 2 volumes, got {len(x)}.")
        if batch_size is not None and batch_size < 2:
            raise ValueError(f"Contrastive.fit: batch_size must be at least 2 (the other volumes of "
                             f"a batch are the negatives), got {batch_size}.")
        if self.kernel is not None and y is None and isinstance(x, np.ndarray):
            raise ValueError(f"kernel label {self.kernel[0]!r} is missing: pass "
                             f"y={{'{self.kernel[0]}': values}} (NaN where unknown).")
        if isinstance(y, dict) and self.kernel is not None and self.kernel[0] not in y:
            raise ValueError(f"kernel label {self.kernel[0]!r} is not among the labels {sorted(y)}.")
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "projection_dim": self.projection_dim,
            "temperature": self.temperature,
            "augment": keras.saving.serialize_keras_object(self.augment),
            "kernel": None if self.kernel is None else list(self.kernel),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)


def _with_layer_losses(model, loss):
    """``loss`` plus the model's layer losses (weight regularisers), as ``compute_loss`` adds."""
    extra = model.losses
    return loss + ops.sum(ops.stack([ops.cast(v, loss.dtype) for v in extra])) if extra else loss
