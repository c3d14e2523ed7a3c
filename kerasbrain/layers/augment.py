"""Random 3D augmentation layers for volumes ``(batch, x, y, z, channels)``.

They are active only when ``training=True`` (inside ``model.fit``, or called
directly), work inside a model on every backend, and inside a ``tf.data`` pipeline
whatever the backend (as ``keras.layers.RandomFlip``: in a TF graph they switch to
TensorFlow ops). Unbatched input ``(x, y, z, channels)`` is accepted too. Random
draws come from a ``keras.random.SeedGenerator``: a seeded layer is reproducible.
For tf.data, `augment_with_seed` draws from an explicit per-element seed instead, so
the result does not depend on the order in which parallel map calls run.
"""

import math

import keras
import numpy as np

try:  # Keras >= 3.10
    from keras.src.layers.preprocessing.data_layer import DataLayer as _BackendSwitchingLayer
except ImportError:  # Keras 3.6 - 3.9
    from keras.src.layers.preprocessing.tf_data_layer import TFDataLayer as _BackendSwitchingLayer

_PACKAGE = "kerasbrain"


class _Draw:
    """Random numbers from a SeedGenerator, or stateless TF draws from a (2,) seed."""

    def __init__(self, backend, generator=None, seed=None):
        self.backend, self.generator, self.seed, self.count = backend, generator, seed, 0

    def _next_seed(self):
        import tensorflow as tf

        self.count += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape, minval=0.0, maxval=1.0):
        if self.seed is None:
            return self.backend.random.uniform(shape, minval, maxval, seed=self.generator)
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, self._next_seed(), minval, maxval)

    def normal(self, shape):
        """Standard normal draws by Box-Muller from uniform ones, both of its outputs used
        (along the next-to-last axis, static): on CPU TensorFlow about half the time of
        its normal sampler. ``shape``: at least 2 axes."""
        n = self.backend.numpy
        *lead, size, last = shape
        half = (int(size) + 1) // 2
        u = self.uniform((2, *lead, half, last))
        radius = n.sqrt(-2.0 * n.log(1.0 - u[0]))  # 1 - u in (0, 1]
        angle = (2.0 * math.pi) * u[1]
        return n.concatenate([radius * n.cos(angle), radius * n.sin(angle)], axis=-2)[..., :size, :]


class Augmentation3D(_BackendSwitchingLayer):
    """Base class: subclasses implement ``_augment(x, draw)`` on 5D input with ``self.backend`` ops."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=True):
        if not training:
            return self._inference(inputs)
        return self._batched(inputs, _Draw(self.backend, generator=self._generator()))

    def _generator(self):
        backend = self.backend._backend
        if backend == keras.backend.backend():
            return self.generator
        # A TF generator for use in tf.data under another backend: its state variable
        # must be created eagerly, not inside the tf.data function being traced.
        import tensorflow as tf

        with tf.init_scope():
            return self._get_seed_generator(backend)

    def augment_with_seed(self, inputs, seed):
        """TensorFlow only (tf.data): ``call(training=True)`` with draws from ``seed`` (2,)."""
        import tensorflow as tf

        self.backend.set_backend("tensorflow")
        try:
            inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
            seed = tf.cast(tf.reshape(seed, [-1])[:2], tf.int64)
            return self._batched(inputs, _Draw(self.backend, seed=seed))
        finally:
            self.backend.reset()

    def _batched(self, inputs, draw):
        x = self.backend.cast(inputs, self.compute_dtype)
        unbatched = len(x.shape) == 4
        if unbatched:
            x = self.backend.numpy.expand_dims(x, 0)
        if len(x.shape) != 5:
            raise ValueError(f"{self.name}: expected (batch, x, y, z, channels), got shape {x.shape}")
        x = self._augment(x, draw)
        return x[0] if unbatched else x

    def _inference(self, inputs):
        return inputs

    def _batch_size(self, x):
        return self.backend.core.shape(x)[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomFlip3D(Augmentation3D):
    """Flip each volume along each of ``axes`` (0, 1, 2 = x, y, z) with ``probability``.

    Axis 0 is left-right in RAS orientation.
    """

    def __init__(self, axes=(0,), probability=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.axes = tuple(int(a) for a in ((axes,) if isinstance(axes, int) else axes))
        if any(a not in (0, 1, 2) for a in self.axes):
            raise ValueError(f"axes must be spatial axes 0, 1, 2; got {axes!r}")
        self.probability = float(probability)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        for axis in self.axes:
            flip = draw.uniform((batch, 1, 1, 1, 1)) < self.probability
            x = n.where(flip, n.flip(x, axis=axis + 1), x)
        return x

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "probability": self.probability}


def _gather_axis(backend, x, index, axis):
    """``out[b, ..., i, ...] = x[b, ..., index[b, i], ...]`` along spatial ``axis`` (1-3) of 5D x."""
    n = backend.numpy
    x = n.moveaxis(x, axis, 1)
    rest = tuple(x.shape[2:])
    size = x.shape[1]
    flat = n.reshape(x, (-1, math.prod(rest)))
    batch = backend.core.shape(index)[0]
    offsets = n.expand_dims(n.arange(batch, dtype="int32") * size, 1)
    rows = n.take(flat, n.reshape(index + offsets, (-1,)), axis=0)
    out = n.reshape(rows, (-1, index.shape[1], *rest))
    return n.moveaxis(out, 1, axis)


def _triple(value, name, cast=float):
    values = (value,) * 3 if isinstance(value, int | float) else tuple(value)
    if len(values) != 3:
        raise ValueError(f"{name} must be a number or 3 numbers, got {value!r}")
    return tuple(cast(v) for v in values)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomShift3D(Augmentation3D):
    """Shift each volume by a random whole number of voxels in ``[-max_shift, max_shift]``
    per axis, filling with ``fill_value``. Shape is unchanged."""

    def __init__(self, max_shift=8, fill_value=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_shift = _triple(max_shift, "max_shift", int)
        self.fill_value = float(fill_value)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        for axis, limit in enumerate(self.max_shift):
            if limit == 0:
                continue
            size = x.shape[axis + 1]
            shift = n.floor(draw.uniform((batch, 1), -limit, limit + 1))
            source = n.arange(size, dtype="float32")[None, :] - shift
            valid = n.logical_and(source >= 0, source <= size - 1)
            index = self.backend.cast(n.clip(source, 0, size - 1), "int32")
            moved = _gather_axis(self.backend, x, index, axis + 1)
            shape = [-1, 1, 1, 1, 1]
            shape[axis + 1] = size
            x = n.where(n.reshape(valid, shape), moved, self.fill_value)
        return x

    def get_config(self):
        return {**super().get_config(), "max_shift": list(self.max_shift), "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomCrop3D(Augmentation3D):
    """Crop a random ``shape`` window (training) or the centre window (inference)."""

    def __init__(self, shape, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.shape = _triple(shape, "shape", int)

    def _inference(self, inputs):
        x = inputs
        starts = [(n - s) // 2 for n, s in zip(x.shape[-4:-1], self.shape, strict=True)]
        self._check(x.shape[-4:-1])
        (a, b, c), (p, q, r) = starts, self.shape
        return x[..., a : a + p, b : b + q, c : c + r, :]

    def _check(self, spatial):
        if any(s > n for s, n in zip(self.shape, spatial, strict=True)):
            raise ValueError(f"{self.name}: crop {self.shape} larger than input {tuple(spatial)}")

    def _augment(self, x, draw):
        n = self.backend.numpy
        self._check(x.shape[1:4])
        batch = self._batch_size(x)
        for axis, size in enumerate(self.shape):
            full = x.shape[axis + 1]
            start = n.floor(draw.uniform((batch, 1), 0, full - size + 1))
            index = self.backend.cast(
                n.clip(start + n.arange(size, dtype="float32")[None, :], 0, full - 1), "int32"
            )
            x = _gather_axis(self.backend, x, index, axis + 1)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-4], *self.shape, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape)}


def affine_resample(backend, x, matrix, offset, fill_value=0.0):
    """Trilinear resampling: ``out[b, p] = x[b, matrix[b] @ p + offset[b]]`` (voxel units).

    Args:
        x: (batch, X, Y, Z, C). matrix: (batch, 3, 3). offset: (batch, 3).
        Points outside the volume take ``fill_value`` (as
        ``scipy.ndimage.map_coordinates(order=1, mode="grid-constant")``).
    """
    n = backend.numpy
    size = tuple(x.shape[1:4])
    channels = x.shape[4]
    grid = n.stack(n.meshgrid(*[n.arange(s, dtype="float32") for s in size], indexing="ij"), -1)
    grid = n.reshape(grid, (-1, 3))
    coords = n.einsum("bij,pj->bpi", matrix, grid) + n.expand_dims(offset, 1)
    floor = n.floor(coords)
    frac = coords - floor
    base = backend.cast(floor, "int32")
    flat = n.reshape(x, (-1, channels))
    batch = backend.core.shape(x)[0]
    start = n.expand_dims(n.arange(batch, dtype="int32") * math.prod(size), 1)
    strides = (size[1] * size[2], size[2], 1)
    out = 0.0
    inside = 0.0
    for corner in range(8):
        bits = ((corner >> 2) & 1, (corner >> 1) & 1, corner & 1)
        weight, linear, valid = 1.0, start, True
        for axis, bit in enumerate(bits):
            i = base[..., axis] + bit
            f = frac[..., axis]
            weight = weight * (f if bit else 1.0 - f)
            ok = n.logical_and(i >= 0, i < size[axis])
            valid = ok if valid is True else n.logical_and(valid, ok)
            linear = linear + n.clip(i, 0, size[axis] - 1) * strides[axis]
        weight = n.where(valid, weight, 0.0)
        out = out + n.take(flat, linear, axis=0) * n.expand_dims(weight, -1)
        inside = inside + weight
    if fill_value:
        out = out + n.expand_dims(1.0 - inside, -1) * fill_value
    return n.reshape(out, (-1, *size, channels))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomAffine3D(Augmentation3D):
    """Small random rotation (degrees, about each axis), isotropic scale and translation
    (voxels) about the volume centre, trilinear interpolation, ``fill_value`` outside."""

    def __init__(self, rotation=10.0, scale=0.1, translation=0.0, fill_value=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rotation = _triple(rotation, "rotation")
        self.scale = float(scale)
        self.translation = _triple(translation, "translation")
        self.fill_value = float(fill_value)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        angles = [draw.uniform((batch,), -math.radians(r), math.radians(r)) for r in self.rotation]
        zoom = draw.uniform((batch,), 1.0 - self.scale, 1.0 + self.scale)
        shift = n.stack([draw.uniform((batch,), -t, t) for t in self.translation], -1)
        matrix = None
        for axis, angle in enumerate(angles):
            c, s = n.cos(angle), n.sin(angle)
            one, zero = n.ones_like(c), n.zeros_like(c)
            a, b = [i for i in range(3) if i != axis]
            rows = [[one, zero, zero], [zero, one, zero], [zero, zero, one]]
            rows[a][a], rows[a][b], rows[b][a], rows[b][b] = c, -s, s, c
            rot = n.stack([n.stack(r, -1) for r in rows], -2)
            matrix = rot if matrix is None else n.matmul(matrix, rot)
        matrix = matrix / n.reshape(zoom, (-1, 1, 1))
        centre = n.array([(s - 1) / 2.0 for s in x.shape[1:4]], dtype="float32")
        offset = centre[None, :] - n.einsum("bij,j->bi", matrix, centre) + shift
        return affine_resample(self.backend, x, matrix, offset, self.fill_value)

    def get_config(self):
        return {
            **super().get_config(),
            "rotation": list(self.rotation),
            "scale": self.scale,
            "translation": list(self.translation),
            "fill_value": self.fill_value,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomIntensity(Augmentation3D):
    """Random intensity changes per volume, in this order:

    - bias field: multiply by ``exp(polynomial(x, y, z))`` of degree ``bias_order``
      over coordinates in [-1, 1], coefficients uniform in ``[-bias, bias]``;
    - gamma: ``low + range * ((v - low) / range) ** g``, ``log(g)`` uniform in
      ``[-gamma, gamma]`` (low/range: the volume's minimum and range);
    - scale: multiply by a factor uniform in ``[1 - scale, 1 + scale]``;
    - noise: add Gaussian noise with standard deviation ``noise`` x the volume's std.
    Any of them is skipped when its parameter is 0.
    """

    def __init__(self, scale=0.1, gamma=0.2, noise=0.02, bias=0.2, bias_order=3, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.scale, self.gamma, self.noise, self.bias = float(scale), float(gamma), float(noise), float(bias)
        self.bias_order = int(bias_order)

    def _augment(self, x, draw):
        n = self.backend.numpy
        batch = self._batch_size(x)
        axes = (1, 2, 3, 4)
        if self.bias and self.bias_order > 0:
            x = x * n.expand_dims(n.exp(self._bias_field(x.shape[1:4], batch, draw)), -1)
        if self.gamma:
            low = n.min(x, axis=axes, keepdims=True)
            span = n.maximum(n.max(x, axis=axes, keepdims=True) - low, 1e-8)
            g = n.exp(draw.uniform((batch, 1, 1, 1, 1), -self.gamma, self.gamma))
            # t ** g as exp(g log t) (t = 0 -> 0): a third of power's time with a per-volume g
            x = low + span * n.exp(g * n.log(n.clip((x - low) / span, 0.0, 1.0)))
        if self.scale:
            x = x * draw.uniform((batch, 1, 1, 1, 1), 1.0 - self.scale, 1.0 + self.scale)
        if self.noise:
            std = n.std(x, axis=axes, keepdims=True)
            x = x + draw.normal((batch, *x.shape[1:])) * std * self.noise
        return x

    def _bias_field(self, size, batch, draw):
        """(batch, x, y, z) polynomial of degree 1..bias_order with random coefficients."""
        n = self.backend.numpy
        k = self.bias_order + 1
        degree = np.add.outer(np.add.outer(np.arange(k), np.arange(k)), np.arange(k))
        mask = ((degree > 0) & (degree <= self.bias_order)).astype("float32")
        coefficients = draw.uniform((batch, k, k, k), -self.bias, self.bias) * mask[None]
        powers = [
            self.backend.convert_to_tensor(
                np.stack([np.linspace(-1.0, 1.0, s) ** p for p in range(k)], -1).astype("float32")
            )
            for s in size
        ]
        field = n.einsum("bijk,zk->bijz", coefficients, powers[2])
        field = n.einsum("bijz,yj->biyz", field, powers[1])
        return n.einsum("biyz,xi->bxyz", field, powers[0])

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "gamma": self.gamma,
            "noise": self.noise,
            "bias": self.bias,
            "bias_order": self.bias_order,
        }


def augmentation(strength=1.0, flip_axes=(0,), affine=False, seed=None, name="augmentation"):
    """A ``keras.Sequential`` of the augmentation layers, scaled by ``strength``.

    ``strength=1``: left-right flips, shifts up to 8 voxels, intensity scale 0.1,
    gamma 0.2, noise 0.02, bias 0.2; ``affine=True`` adds rotations up to 10 degrees
    and scaling 0.1 (slower: trilinear resampling of every voxel). ``strength=0``:
    flips only. Each layer gets its own seed derived from ``seed``.
    """
    s = float(strength)
    if s < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")

    def sub(i):
        return None if seed is None else seed + i

    layers = [RandomFlip3D(axes=flip_axes, seed=sub(0))] if flip_axes else []
    if s > 0:
        layers.append(RandomShift3D(max_shift=round(8 * s), seed=sub(1)))
        if affine:
            layers.append(RandomAffine3D(rotation=10 * s, scale=0.1 * s, seed=sub(2)))
        layers.append(
            RandomIntensity(scale=0.1 * s, gamma=0.2 * s, noise=0.02 * s, bias=0.2 * s, seed=sub(3))
        )
    return keras.Sequential(layers, name=name)


def augment_with_seed(layer, volume, seed):
    """Apply ``layer`` (an augmentation layer, a Sequential of them, or any callable) in
    tf.data with random draws from ``seed`` (a TF integer scalar or (2,) tensor)."""
    import tensorflow as tf

    seed = tf.cast(tf.reshape(seed, [-1]), tf.int64)
    seed = tf.concat([seed, tf.zeros([2], tf.int64)], 0)[:2]
    layers = layer.layers if isinstance(layer, keras.Sequential) else [layer]
    for i, item in enumerate(layers):
        if isinstance(item, Augmentation3D):
            volume = item.augment_with_seed(volume, tf.random.experimental.stateless_fold_in(seed, i))
        elif isinstance(item, keras.layers.Layer):
            volume = item(volume, training=True)
        else:
            volume = item(volume)
    return volume
