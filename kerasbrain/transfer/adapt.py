"""Adapt BatchNorm statistics to a new site without labels (AdaBN).

A network trained on some scanners normalises every BatchNorm layer's input with the
moving mean and variance of the training data. Scans from another site shift those
statistics, and every layer downstream sees inputs it was never trained on.
``adapt_batchnorm`` re-estimates each layer's moving mean and variance on unlabelled
scans of the target site and changes nothing else (Li et al. 2016, "Revisiting batch
normalization for practical domain adaptation", arXiv:1603.04779):

    model = kb.models.load_model("pretrained.keras")
    kb.transfer.adapt_batchnorm(model, site_volumes, batch_size=4)
    ages = model.predict(site_volumes)

Estimates are cumulative over all the given scans (not an exponential trail), computed
layer by layer in the order the model runs them: layer ``k`` is estimated with layers
``1 .. k-1`` already adapted, so after adaptation the model in inference mode reproduces
what it computes in training mode with all the scans in one batch.
"""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

#: fewer scans than this raise an error
MIN_SCANS = 4
#: fewer scans than this give a `BatchNormAdaptationWarning`
RECOMMENDED_SCANS = 20


class BatchNormAdaptationWarning(UserWarning):
    """Adaptation ran on fewer scans than recommended; its statistics are noisy."""


class _Stop(Exception):
    """Raised inside the forward pass once the target layer has seen its inputs."""


def batchnorm_layers(model):
    """Every ``keras.layers.BatchNormalization`` of ``model``, nested models included."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    found = []
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization) and all(layer is not f for f in found):
            found.append(layer)
    return found


def adapt_batchnorm(model, volumes, batch_size=4, verbose=1):
    """Re-estimate the moving statistics of every BatchNorm layer on ``volumes``.

    Args:
        model: a built ``keras.Model`` (functional, sequential or subclassed; nested
            models included) with one input. Modified in place.
        volumes: unlabelled scans of one site, preprocessed like the training data: an
            array ``(n, x, y, z, c)`` (``(n, x, y, z)`` for one channel), or a
            ``tf.data.Dataset`` / iterable yielding batches ``(b, x, y, z, c)``, single
            volumes ``(x, y, z[, c])`` or tuples whose first item is one of those
            (labels are ignored). A one-shot iterator (a generator) is read once into
            memory; datasets and lists are read once per BatchNorm layer, so they must
            give the same scans each time (no augmentation).
        batch_size: scans per forward pass. The statistics do not depend on it.
        verbose: 1 shows a progress bar (one step per BatchNorm layer), 0 nothing.

    Each layer's ``moving_mean`` becomes the mean of its input over all scans and
    voxels, and ``moving_variance`` the population variance (divided by the voxel count,
    not count - 1): the variance Keras' BatchNormalization normalises with in training,
    so the adapted model in inference mode matches the model in training mode on all
    the scans as one batch. Sums are accumulated in float64. A BatchNorm layer's
    statistics depend on the layers before it, so the model runs once per layer, up to
    that layer (SFCN: 6 layers, about 4.5 forward passes' work in all).

    At least ``MIN_SCANS`` (4) scans are needed; below ``RECOMMENDED_SCANS`` (20) a
    ``BatchNormAdaptationWarning`` is given: the deepest layers of a small-input
    network see a few voxels per scan, and their variance needs tens of scans.

    Returns:
        ``model``.

    Raises:
        ValueError: no BatchNorm layer, too few scans, volumes of another shape than the
            model's input, or non-finite statistics (NaN or inf in the scans). On any
            error the model is left as it was.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}.")
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no BatchNormalization layers: there are no "
                         "statistics to adapt.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    source = _Volumes(volumes, _input_shape(model), int(batch_size))
    counted = source.count is not None
    if counted:
        _check_count(source.count)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    recorder = _Recorder(layers)
    try:
        with recorder, _no_grad():
            order = recorder.probe(model, source.first())
            bar = keras.utils.Progbar(len(order), unit_name="layer") if verbose else None
            for number, (layer, calls) in enumerate(order):
                count, mean, variance = recorder.estimate(model, source, layer, calls)
                if not counted:
                    _check_count(source.count)
                    counted = True
                if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
                    raise ValueError(f"non-finite statistics at layer {layer.name!r}: do the "
                                     "scans contain NaN or inf?")
                layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
                layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
                if bar is not None:
                    bar.update(number + 1)
    except BaseException:
        for layer, (mean, variance) in zip(layers, saved, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    return model


def _check_count(count):
    if count < MIN_SCANS:
        raise ValueError(f"adapt_batchnorm needs at least {MIN_SCANS} scans, got {count} "
                         f"(recommended: {RECOMMENDED_SCANS} or more from one site).")
    if count < RECOMMENDED_SCANS:
        warnings.warn(f"adapting BatchNorm statistics on {count} scans; {RECOMMENDED_SCANS} or "
                      "more from one site give stable estimates.", BatchNormAdaptationWarning,
                      stacklevel=3)


def _no_grad():
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _input_shape(model):
    """The shape of one input volume (``None`` for free axes), or ``None`` if unknown."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    if len(inputs) != 1:
        raise ValueError(f"adapt_batchnorm needs a model with one input; {model.name!r} has "
                         f"{len(inputs)}.")
    return tuple(inputs[0].shape[1:])


def _fits(shape, expected):
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected, strict=True))


def _as_batch(array, expected, where):
    """``array`` as a float32 batch ``(b, *expected)``: a batch or one volume, with or
    without the channel axis of a one-channel input."""
    array = np.asarray(array, dtype="float32")
    if expected is None:
        return array
    if array.ndim == len(expected) and _fits(array.shape, expected):
        return array[None]
    if array.ndim == len(expected) + 1 and _fits(array.shape[1:], expected):
        return array
    if expected[-1] == 1:
        if array.ndim == len(expected) - 1 and _fits(array.shape, expected[:-1]):
            return array[None, ..., None]
        if array.ndim == len(expected) and _fits(array.shape[1:], expected[:-1]):
            return array[..., None]
    shown = tuple("?" if e is None else e for e in expected)
    raise ValueError(f"{where}: shape {array.shape} does not fit the model's input volumes "
                     f"{shown}; give volumes (n, {', '.join(map(str, shown))}) preprocessed "
                     "like the training data.")


class _Volumes:
    """Re-iterable float32 batches of ``batch_size`` scans; ``count`` once known."""

    def __init__(self, volumes, expected, batch_size):
        self.expected, self.batch_size = expected, batch_size
        self.count = None
        if isinstance(volumes, np.ndarray) or ops.is_tensor(volumes):
            self.array = _as_batch(ops.convert_to_numpy(volumes), expected, "volumes")
            self.count = len(self.array)
            self.items = None
        else:
            self.array = None
            if not hasattr(volumes, "__iter__"):
                raise TypeError(f"volumes must be an array, a tf.data.Dataset or an iterable, got "
                                f"{type(volumes).__name__}.")
            self.items = volumes if iter(volumes) is not volumes else list(volumes)

    def first(self):
        for batch in self:
            return batch
        _check_count(0)

    def __iter__(self):
        if self.array is not None:
            for start in range(0, len(self.array), self.batch_size):
                yield self.array[start:start + self.batch_size]
            return
        buffer, buffered, count = [], 0, 0
        for number, item in enumerate(self.items):
            if isinstance(item, (tuple, list)):
                item = item[0]
            batch = _as_batch(item, self.expected, f"volumes item {number}")
            buffer.append(batch)
            buffered += len(batch)
            count += len(batch)
            while buffered >= self.batch_size:
                joined = np.concatenate(buffer)
                yield joined[:self.batch_size]
                buffer, buffered = [joined[self.batch_size:]], buffered - self.batch_size
        if buffered:
            yield np.concatenate(buffer)
        self.count = count


class _Statistics:
    """Per-channel count, mean and sum of squared deviations, merged in float64 (Chan et al.)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, count, mean, variance):
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + variance * count + delta**2 * (self.count * count / total)
        self.count = total

    def result(self):
        return self.count, np.asarray(self.mean), np.asarray(self.m2 / self.count)


def _moments(x, axes):
    """Mean and population variance of ``x`` over ``axes`` (two passes, float32)."""
    x = ops.cast(x, "float32")
    mean = ops.mean(x, axis=axes, keepdims=True)
    return ops.reshape(mean, (-1,)), ops.mean(ops.square(x - mean), axis=axes)


if keras.backend.backend() == "jax":  # one compiled function instead of one per op
    import jax

    _moments = jax.jit(_moments, static_argnums=1)


class _Recorder:
    """Wraps each BatchNorm layer's ``call`` to record the order of calls, or the
    statistics of one layer's inputs; unwraps on exit."""

    def __init__(self, layers):
        self.layers = layers
        self.sequence = None
        self.target, self.calls, self.expected_calls, self.statistics = None, 0, 0, None

    def __enter__(self):
        for layer in self.layers:
            layer.call = self._wrap(layer, layer.call)
        return self

    def __exit__(self, *exc):
        for layer in self.layers:
            if "call" in layer.__dict__:
                del layer.call
        return False

    def _wrap(self, layer, original):
        def call(inputs, *args, **kwargs):
            if self.sequence is not None:
                self.sequence.append(layer)
            if layer is self.target:
                self._record(layer, inputs)
                self.calls += 1
                if self.calls == self.expected_calls:
                    raise _Stop
            return original(inputs, *args, **kwargs)

        return call

    def _record(self, layer, inputs):
        rank = len(inputs.shape)
        axes = tuple(i for i in range(rank) if i != layer.axis % rank)
        mean, variance = _moments(inputs, axes)
        count = int(np.prod([inputs.shape[i] for i in axes]))
        self.statistics.add(count, np.asarray(ops.convert_to_numpy(mean), "float64"),
                            np.asarray(ops.convert_to_numpy(variance), "float64"))

    def probe(self, model, batch):
        """Run one batch through; returns ``[(layer, calls per forward pass), ...]`` in
        the order the layers first run."""
        self.sequence = []
        try:
            model(batch, training=False)
            order = []
            for layer in self.sequence:
                if all(layer is not seen for seen, _ in order):
                    order.append((layer, sum(other is layer for other in self.sequence)))
            return order
        finally:
            self.sequence = None

    def estimate(self, model, source, layer, calls):
        """``(count, mean, variance)`` of ``layer``'s inputs over all of ``source``."""
        self.target, self.expected_calls, self.statistics = layer, calls, _Statistics()
        try:
            for batch in source:
                self.calls = 0
                try:
                    model(batch, training=False)
                except _Stop:
                    pass
            return self.statistics.result()
        finally:
            self.target = None
