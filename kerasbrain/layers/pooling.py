"""Non-overlapping 3D max pooling as reshapes and maxima.

``keras.layers.MaxPooling3D`` backpropagates through a dedicated pooling-gradient kernel
(TensorFlow's ``MaxPool3DGrad``, XLA's select-and-scatter), which is slow on CPUs and
unfused on GPUs. When windows do not overlap (``strides == pool_size``, ``"valid"``
padding) the same maxima come from reshaping each axis into ``(n // k, k)`` and taking
the maximum over ``k``, one axis at a time; the gradient is then an elementwise select.
Measured on 2 CPU cores (TensorFlow): an SFCN training step at 32^3, batch 16, takes
0.30 s instead of 0.56 s, at 64^3, batch 2 (full width), 1.6 s instead of 2.2 s.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasbrain")
class FastMaxPooling3D(keras.layers.Layer):
    """Max pooling over non-overlapping ``pool_size`` windows of a volume.

    Gives the same outputs as ``keras.layers.MaxPooling3D(pool_size)`` (strides equal to
    the pool size, ``"valid"`` padding: trailing voxels that do not fill a window are
    dropped). Where several voxels of a window share the maximum, the gradient is split
    between them instead of going to one of them.

    Args:
        pool_size: int or 3 ints, the window (and stride) per spatial axis.

    Input shape ``(batch, x, y, z, channels)``; output shape
    ``(batch, x // px, y // py, z // pz, channels)``.
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        sizes = (pool_size,) * 3 if isinstance(pool_size, int) else tuple(int(p) for p in pool_size)
        if len(sizes) != 3 or min(sizes) < 1:
            raise ValueError(f"pool_size must be a positive int or 3 positive ints, got {pool_size!r}")
        self.pool_size = sizes
        self.input_spec = keras.layers.InputSpec(ndim=5)

    def call(self, x):
        shape = ops.shape(x)
        px, py, pz = self.pool_size
        nx, ny, nz = shape[1] // px, shape[2] // py, shape[3] // pz
        channels = shape[4]
        x = x[:, : nx * px, : ny * py, : nz * pz]
        # one axis at a time keeps every tensor at 4 dimensions (TensorFlow's CPU kernels
        # for the gradient of a maximum broadcast up to 5)
        x = ops.max(ops.reshape(x, (-1, nx, px, ny * py * nz * pz * channels)), axis=2)
        x = ops.max(ops.reshape(x, (-1, ny, py, nz * pz * channels)), axis=2)
        x = ops.max(ops.reshape(x, (-1, nz, pz, channels)), axis=2)
        return ops.reshape(x, (-1, nx, ny, nz, channels))

    def compute_output_shape(self, input_shape):
        batch, *spatial, channels = input_shape
        out = [None if n is None else n // p for n, p in zip(spatial, self.pool_size, strict=True)]
        return (batch, *out, channels)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
