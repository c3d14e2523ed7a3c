"""Augmentation layers for self-supervised views of volumes ``(batch, x, y, z, channels)``.

Random resized crop, Gaussian blur and cutout, the 3D counterparts of SimCLR's image
augmentations; `view_augmentation` chains them with kerasbrain's flips and intensity
changes (gamma, contrast, noise). Same conventions as `kerasbrain.layers.augment`: active
only with ``training=True``, every backend, inside tf.data too, seeded draws.
"""

import math

import keras
import numpy as np

from kerasbrain.layers.augment import (
    _PACKAGE,
    Augmentation3D,
    RandomFlip3D,
    RandomIntensity,
)


def _along(backend, x, matrix, axis):
    """Apply a per-volume linear map ``matrix`` (batch, out, in) along spatial ``axis`` (0-2)."""
    equation = ("bpi,biyzc->bpyzc", "bpj,bxjzc->bxpzc", "bpk,bxykc->bxypc")[axis]
    return backend.numpy.einsum(equation, matrix, x)


def _mirrored_shifts(size, radius):
    """``(2 radius + 1, size, size)``: tap ``k`` reads voxel ``p + k - radius``, mirrored at the
    edges (``numpy.pad(mode="symmetric")``)."""
    out = np.zeros((2 * radius + 1, size, size), "float32")
    for k in range(2 * radius + 1):
        for p in range(size):
            j = p + k - radius
            j = -j - 1 if j < 0 else (2 * size - j - 1 if j >= size else j)
            out[k, p, min(max(j, 0), size - 1)] += 1.0
    return out


def _range(value, name, low, high):
    values = (float(value), float(value)) if isinstance(value, int | float) else tuple(map(float, value))
    if len(values) != 2 or not low <= values[0] <= values[1] <= high:
        raise ValueError(f"{name} must be a number or (min, max) within [{low}, {high}], got {value!r}")
    return values


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomResizedCrop3D(Augmentation3D):
    """Crop a random box holding a fraction ``scale`` of the volume (uniform in
    ``(min, max)``; each side ``scale ** (1/3)`` of the input's, times an aspect factor
    ``exp(u)``, ``u`` uniform in ``[-log(aspect), log(aspect)]`` per axis) and resize it
    back to the input size (trilinear). Shape is unchanged."""

    def __init__(self, scale=(0.4, 1.0), aspect=1.2, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.scale = _range(scale, "scale", 1e-3, 1.0)
        self.aspect = float(aspect)
        if self.aspect < 1.0:
            raise ValueError(f"aspect must be >= 1, got {aspect!r}")

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        side = n.power(draw.uniform((batch, 1), *self.scale), 1.0 / 3.0)
        log_aspect = math.log(self.aspect)
        side = n.clip(side * n.exp(draw.uniform((batch, 3), -log_aspect, log_aspect)), 0.05, 1.0)
        start = draw.uniform((batch, 3)) * (1.0 - side)
        for axis in range(3):
            # output voxel p samples start + p * side (voxel centres of the box, inside the
            # volume), linearly: one (size, size) interpolation matrix per volume and axis
            size = x.shape[axis + 1]
            coords = start[:, axis : axis + 1] * (size - 1) \
                + side[:, axis : axis + 1] * n.arange(size, dtype="float32")[None]
            low = n.clip(n.floor(coords), 0, size - 1)
            frac = coords - low
            high = n.clip(low + 1, 0, size - 1)
            one_hot = self.backend.nn.one_hot
            matrix = one_hot(self.backend.cast(low, "int32"), size) * n.expand_dims(1.0 - frac, -1) \
                + one_hot(self.backend.cast(high, "int32"), size) * n.expand_dims(frac, -1)
            x = _along(self.backend, x, matrix, axis)
        return x

    def get_config(self):
        return {**super().get_config(), "scale": list(self.scale), "aspect": self.aspect}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomBlur3D(Augmentation3D):
    """With ``probability``, Gaussian blur with a standard deviation (voxels) uniform in
    ``sigma = (min, max)``, drawn per volume; edges are mirrored (``mode="symmetric"``)."""

    def __init__(self, sigma=(0.1, 1.5), probability=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.sigma = _range(sigma, "sigma", 1e-3, 10.0)
        self.probability = float(probability)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        radius = max(1, math.ceil(3.0 * self.sigma[1]))
        sigma = draw.uniform((batch, 1), *self.sigma)
        taps = n.arange(-radius, radius + 1, dtype="float32")[None, :]
        kernel = n.exp(-0.5 * n.square(taps / sigma))
        kernel = kernel / n.sum(kernel, axis=1, keepdims=True)  # (batch, 2 * radius + 1)
        blurred = x
        for axis in range(3):
            shifts = self.backend.convert_to_tensor(_mirrored_shifts(x.shape[axis + 1], radius))
            blurred = _along(self.backend, blurred, n.einsum("bk,kpj->bpj", kernel, shifts), axis)
        apply = draw.uniform((batch, 1, 1, 1, 1)) < self.probability
        return n.where(apply, blurred, x)

    def get_config(self):
        return {**super().get_config(), "sigma": list(self.sigma), "probability": self.probability}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomCutout3D(Augmentation3D):
    """With ``probability``, set a random box to ``fill_value``; each side of the box is a
    fraction of the input's, uniform in ``size = (min, max)`` per axis."""

    def __init__(self, size=(0.1, 0.4), probability=0.5, fill_value=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.size = _range(size, "size", 0.0, 1.0)
        self.probability = float(probability)
        self.fill_value = float(fill_value)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        inside = None
        for axis in (1, 2, 3):
            full = x.shape[axis]
            side = draw.uniform((batch, 1), *self.size) * full
            start = draw.uniform((batch, 1)) * (full - side)
            position = n.arange(full, dtype="float32")[None, :] + 0.5
            hit = n.logical_and(position >= start, position < start + side)
            shape = [-1, 1, 1, 1, 1]
            shape[axis] = full
            hit = n.reshape(hit, shape)
            inside = hit if inside is None else n.logical_and(inside, hit)
        inside = n.logical_and(inside, draw.uniform((batch, 1, 1, 1, 1)) < self.probability)
        return n.where(inside, self.fill_value, x)

    def get_config(self):
        return {
            **super().get_config(),
            "size": list(self.size),
            "probability": self.probability,
            "fill_value": self.fill_value,
        }


def view_augmentation(crop_scale=(0.4, 1.0), flip_axes=(0,), blur=(0.1, 1.5), gamma=0.3,
                      contrast=0.2, noise=0.05, cutout=(0.1, 0.4), seed=None, name="views"):
    """A ``keras.Sequential`` making SimCLR-style views of volumes.

    Random resized crop (volume fraction ``crop_scale``), flips along ``flip_axes``,
    Gaussian blur (``blur``: sigma range in voxels, half the volumes), gamma
    (``log g`` within ``+-gamma``), contrast (intensity factor within ``1 +- contrast``),
    noise (``noise`` x the volume's std) and cutout (``cutout``: box side fractions, half
    the volumes). ``None`` or 0 leaves a step out.
    """

    def sub(i):
        return None if seed is None else seed + i

    layers = []
    if crop_scale:
        layers.append(RandomResizedCrop3D(scale=crop_scale, seed=sub(0)))
    if flip_axes:
        layers.append(RandomFlip3D(axes=flip_axes, seed=sub(1)))
    if blur:
        layers.append(RandomBlur3D(sigma=blur, seed=sub(2)))
    if gamma or contrast or noise:
        layers.append(RandomIntensity(scale=contrast or 0.0, gamma=gamma or 0.0, noise=noise or 0.0,
                                      bias=0.0, seed=sub(3)))
    if cutout:
        layers.append(RandomCutout3D(size=cutout, seed=sub(4)))
    return keras.Sequential(layers, name=name)
