"""3D convolution with fast TensorFlow CPU gradients.

TensorFlow's CPU kernel for the weight gradient of a 3D convolution is slow for large
kernels: for a 7x7x7, stride-2 stem (the first layer of ResNet, ResNetV2 and DenseNet)
on a 38^3 volume it takes 11 s where the forward pass takes 0.01 s, and it dominates a
whole training step. ``FastConv3D`` computes the same convolution as a sum over the taps
of the first spatial axis of 2D convolutions of ``(batch * x)`` planes, whose gradients
TensorFlow computes quickly (0.3 s for that stem).

Stride-1 convolutions with smaller kernels (SFCN's 3x3x3 and 1x1x1, the backbones' 3x3x3
and 1x1x1 layers) take their gradients from forward convolutions where TensorFlow runs on
the CPU (``kerasbrain.layers.conv_gradient``): both gradients without oneDNN, where
TensorFlow's own gradient kernels run at less than half the forward rate; with oneDNN,
the input gradient only. Other backends, devices, strides, groups and dilations use
``keras.layers.Conv3D`` unchanged.
"""

import keras
from keras import ops

MIN_PLANE_TAPS = 5  # kernels with fewer taps along x use Conv3D's own kernel


@keras.saving.register_keras_serializable(package="kerasbrain")
class FastConv3D(keras.layers.Conv3D):
    """``keras.layers.Conv3D`` (same arguments, weights and numbers), faster to train on
    the TensorFlow CPU backend.

    Input ``(batch, x, y, z, channels)``, channels last.
    """

    def convolution_op(self, inputs, kernel):
        plane = (
            keras.backend.backend() == "tensorflow"
            and self.data_format == "channels_last"
            and self.kernel_size[0] >= MIN_PLANE_TAPS
            and self.groups == 1
            and tuple(self.dilation_rate) == (1, 1, 1)
        )
        if plane:
            return _plane_conv(inputs, kernel, self.strides, self.padding)
        mode = self._forward_gradients()
        if mode is not None and tuple(self.strides) == (1, 1, 1):
            from kerasbrain.layers import conv_gradient

            return conv_gradient.conv3d(inputs, kernel, self.padding, native_kernel_gradient=mode == "input")
        return super().convolution_op(inputs, kernel)

    def _forward_gradients(self):
        if keras.backend.backend() != "tensorflow":
            return None
        from kerasbrain.layers import conv_gradient

        if self.data_format == "channels_last" and self.groups == 1 and tuple(self.dilation_rate) == (1, 1, 1):
            return conv_gradient.forward_gradients()
        return None


def _plane_conv(x, kernel, strides, padding):
    """Conv3D as 2D convolutions of ``(batch*x)`` planes, one per kernel tap along x."""
    if padding == "same":
        shape = ops.shape(x)
        pads = [(0, 0)] + [_same_pads(shape[a + 1], kernel.shape[a], strides[a], 1) for a in range(3)]
        x = ops.pad(x, pads + [(0, 0)])
    return sum_over_planes(
        x, kernel.shape[0], strides, 1,
        lambda rows, i, plane_strides: ops.conv(rows, kernel[i], strides=plane_strides, padding="valid"),
    )


def sum_over_planes(x, kx, strides, dilation_x, plane_op):
    """``sum_i plane_op(rows_i, i, plane_strides)`` over the ``kx`` kernel taps along x.

    ``rows_i``: the ``(batch * out_x, y, z, channels)`` input planes that tap ``i`` meets
    (unpadded ``x``, "valid" windows); ``plane_op`` is a 2D convolution with the tap's
    kernel. TensorFlow's 2D convolutions need equal strides, so unequal ``(sy, sz)`` run
    at stride 1 and are subsampled. Returns ``(batch, out_x, out_y, out_z, channels_out)``.
    """
    sx, sy, sz = strides
    batch, size_x, size_y, size_z, channels = ops.shape(x)
    out_x = (size_x - dilation_x * (kx - 1) - 1) // sx + 1
    plane_strides = (sy, sz) if sy == sz else (1, 1)
    out = None
    for i in range(kx):
        start = i * dilation_x
        rows = x[:, start : start + (out_x - 1) * sx + 1 : sx]
        rows = ops.reshape(rows, (-1, size_y, size_z, channels))
        plane = plane_op(rows, i, plane_strides)
        out = plane if out is None else out + plane
    if sy != sz:
        out = out[:, ::sy, ::sz]
    out_shape = ops.shape(out)
    return ops.reshape(out, (batch, out_x, out_shape[1], out_shape[2], out_shape[3]))


def _same_pads(size, kernel, stride, dilation):
    """(left, right) zero padding of TensorFlow's ``"same"`` for one axis.

    ``size`` may be a Python int or a scalar tensor (dynamic shape in graph mode).
    """
    effective = (kernel - 1) * dilation + 1
    if stride == 1:
        total = effective - 1
        return total // 2, total - total // 2
    if isinstance(size, int):
        out = -(-size // stride)
        total = max((out - 1) * stride + effective - size, 0)
        return total // 2, total - total // 2
    out = (size + stride - 1) // stride
    total = ops.maximum((out - 1) * stride + effective - size, 0)
    left = total // 2
    return left, total - left
