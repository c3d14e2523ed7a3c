"""Depthwise 3D convolution that is fast on every Keras backend.

``keras.layers.Conv3D(groups=channels)`` computes a depthwise 3D convolution, but on the
TensorFlow CPU backend it runs as a generic grouped convolution that is tens of times
slower than a dense ``Conv3D`` of the same size. ``DepthwiseConv3D`` gives the same
numbers and picks a fast formulation per backend:

- JAX on GPU/TPU and PyTorch: one grouped convolution (``feature_group_count`` /
  ``groups=channels``), a native depthwise kernel there. JAX on CPU: the
  sum over all kernel taps of strided input slices times per-channel weights, which XLA
  fuses (its CPU grouped convolutions are slow), for kernels of up to 27 taps; larger
  kernels use the depth-tap loop below.
- TensorFlow: a loop over the ``kx`` taps of the first spatial axis, each a 2D
  depthwise convolution (``tf.nn.depthwise_conv2d``) of the matching ``(batch * x)``
  slices over ``(y, z)``, summed.

Padding is applied explicitly once (TensorFlow ``"same"`` rules), so every backend
computes exactly the same windows as ``Conv3D``.
"""

import math

import keras
from keras import ops

from kerasbrain.layers.conv import _same_pads, sum_over_planes

_FAST_GROUPED_BACKENDS = ("jax", "torch")
_MAX_FUSED_TAPS = 27  # larger kernels: depth-tap 2D convolutions (XLA compile time)


def _jax_on_cpu():
    import jax

    return jax.default_backend() == "cpu"


def _triple(value, name):
    if isinstance(value, int):
        return (value,) * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"DepthwiseConv3D: {name} must be an int or 3 ints, got {value}.")
    return value


@keras.saving.register_keras_serializable(package="kerasbrain")
class DepthwiseConv3D(keras.layers.Layer):
    """Depthwise 3D convolution on channels-last volumes.

    Each input channel ``c`` is convolved with its own ``depth_multiplier`` filters;
    output channel ``c * depth_multiplier + m`` is filter ``m`` of channel ``c``, the
    ordering of ``keras.layers.Conv3D(channels * depth_multiplier, groups=channels)``
    and of ``keras.layers.DepthwiseConv2D``.

    Args:
        kernel_size: int or 3 ints ``(kx, ky, kz)``.
        strides: int or 3 ints. Strides > 1 cannot be combined with dilation > 1.
        padding: ``"valid"`` or ``"same"`` (TensorFlow rules: output ``ceil(n / s)``,
            the extra voxel of odd padding on the far side).
        depth_multiplier: filters per input channel.
        data_format: ``None`` or ``"channels_last"`` (the only layout supported).
        dilation_rate: int or 3 ints.
        activation: optional activation applied to the output.
        use_bias: whether to add a bias of shape ``(channels * depth_multiplier,)``.
        depthwise_initializer, bias_initializer, depthwise_regularizer,
        bias_regularizer, activity_regularizer, depthwise_constraint,
        bias_constraint: as in ``keras.layers.DepthwiseConv2D``.

    Weights:
        ``kernel``: ``(kx, ky, kz, channels, depth_multiplier)`` (a 2D depthwise kernel
        ``(ky, kz, channels, multiplier)`` with a spatial axis in front).
        ``bias``: ``(channels * depth_multiplier,)``.

    Input shape: ``(batch, x, y, z, channels)``.
    Output shape: ``(batch, x', y', z', channels * depth_multiplier)``.
    """

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.kernel_size = _triple(kernel_size, "kernel_size")
        self.strides = _triple(strides, "strides")
        self.dilation_rate = _triple(dilation_rate, "dilation_rate")
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"DepthwiseConv3D: padding must be 'valid' or 'same', got {padding!r}.")
        self.padding = padding
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"DepthwiseConv3D supports channels-last volumes only; got data_format={data_format!r}."
            )
        self.data_format = "channels_last"
        if int(depth_multiplier) < 1:
            raise ValueError(f"DepthwiseConv3D: depth_multiplier must be >= 1, got {depth_multiplier}.")
        self.depth_multiplier = int(depth_multiplier)
        if min(self.kernel_size) < 1 or min(self.strides) < 1 or min(self.dilation_rate) < 1:
            raise ValueError(
                "DepthwiseConv3D: kernel_size, strides and dilation_rate must be positive; got "
                f"{self.kernel_size}, {self.strides}, {self.dilation_rate}."
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "DepthwiseConv3D: strides > 1 cannot be combined with dilation_rate > 1; got "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.depthwise_constraint = keras.constraints.get(depthwise_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=5)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("DepthwiseConv3D: the channel axis of the input must be known.")
        self.input_spec = keras.layers.InputSpec(ndim=5, axes={-1: channels})
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(channels * self.depth_multiplier,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def call(self, inputs):
        x = inputs
        if self.padding == "same":
            shape = ops.shape(x)
            pads = [(0, 0)]
            for axis in range(3):
                pads.append(
                    _same_pads(
                        shape[axis + 1],
                        self.kernel_size[axis],
                        self.strides[axis],
                        self.dilation_rate[axis],
                    )
                )
            pads.append((0, 0))
            if any(p != (0, 0) for p in pads):
                x = ops.pad(x, pads)
        kernel = ops.cast(self.kernel, x.dtype)
        backend = keras.backend.backend()
        taps = self.kernel_size[0] * self.kernel_size[1] * self.kernel_size[2]
        if backend == "jax" and _jax_on_cpu() and taps <= _MAX_FUSED_TAPS:
            y = self._shifted_products(x, kernel)
        elif backend in _FAST_GROUPED_BACKENDS:
            channels = kernel.shape[3] * kernel.shape[4]
            grouped = ops.reshape(kernel, self.kernel_size + (1, channels))
            y = ops.conv(
                x, grouped, strides=self.strides, padding="valid",
                dilation_rate=self.dilation_rate,
            )
        else:
            y = self._depth_taps(x, kernel)
        if self.use_bias:
            y = y + ops.cast(self.bias, y.dtype)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def _shifted_products(self, x, kernel):
        """Sum over all kernel taps of strided input slices times per-channel weights.

        Elementwise work that XLA fuses into one pass; its CPU convolutions are slow for
        grouped kernels.
        """
        multiplier = self.depth_multiplier
        if multiplier > 1:
            x = ops.repeat(x, multiplier, axis=-1)
        kernel = ops.reshape(kernel, self.kernel_size + (-1,))
        sizes = x.shape[1:4]
        outs = [
            (n - d * (k - 1) - 1) // s + 1
            for n, k, s, d in zip(sizes, self.kernel_size, self.strides, self.dilation_rate, strict=True)
        ]
        (kx, ky, kz), (sx, sy, sz), (dx, dy, dz) = self.kernel_size, self.strides, self.dilation_rate
        out = None
        for i in range(kx):
            for j in range(ky):
                for k in range(kz):
                    tap = x[
                        :,
                        i * dx : i * dx + (outs[0] - 1) * sx + 1 : sx,
                        j * dy : j * dy + (outs[1] - 1) * sy + 1 : sy,
                        k * dz : k * dz + (outs[2] - 1) * sz + 1 : sz,
                    ] * kernel[i, j, k]
                    out = tap if out is None else out + tap
        return out

    def _depth_taps(self, x, kernel):
        """Sum over the ``kx`` taps of 2D depthwise convolutions of ``(batch*x)`` slices."""
        dy, dz = self.dilation_rate[1:]
        return sum_over_planes(
            x, self.kernel_size[0], self.strides, self.dilation_rate[0],
            lambda rows, i, strides: ops.depthwise_conv(
                rows, kernel[i], strides=strides, padding="valid", dilation_rate=(dy, dz)),
        )

    def compute_output_shape(self, input_shape):
        out = [input_shape[0]]
        for axis in range(3):
            size = input_shape[axis + 1]
            if size is None:
                out.append(None)
                continue
            stride = self.strides[axis]
            if self.padding == "same":
                out.append(math.ceil(size / stride))
            else:
                effective = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
                out.append((size - effective) // stride + 1 if size >= effective else 0)
        channels = input_shape[-1]
        out.append(None if channels is None else channels * self.depth_multiplier)
        return tuple(out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "depth_multiplier": self.depth_multiplier,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "depthwise_constraint": keras.constraints.serialize(self.depthwise_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config
