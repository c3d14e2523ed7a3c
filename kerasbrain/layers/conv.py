"""3D convolution with a fast TensorFlow CPU gradient for large kernels.

TensorFlow's CPU kernel for the weight gradient of a 3D convolution is slow for large
kernels: for a 7x7x7, stride-2 stem (the first layer of ResNet, ResNetV2 and DenseNet)
on a 38^3 volume it takes 11 s where the forward pass takes 0.01 s, and it dominates a
whole training step. ``FastConv3D`` computes the same convolution as a sum over the taps
of the first spatial axis of 2D convolutions of ``(batch * x)`` planes, whose gradients
TensorFlow computes quickly (0.3 s for that stem). Other backends, small kernels, groups
and dilations use ``keras.layers.Conv3D`` unchanged.
"""

import keras
from keras import ops

from kerasbrain.layers.depthwise import _same_pads

MIN_PLANE_TAPS = 5  # kernels with fewer taps along x use Conv3D's own kernel


@keras.saving.register_keras_serializable(package="kerasbrain")
class FastConv3D(keras.layers.Conv3D):
    """``keras.layers.Conv3D`` (same arguments, weights and numbers), faster to train on
    the TensorFlow CPU backend when the kernel spans 5 or more voxels along x.

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
        if not plane:
            return super().convolution_op(inputs, kernel)
        return _plane_conv(inputs, kernel, self.strides, self.padding)


def _plane_conv(x, kernel, strides, padding):
    """Sum over the kernel's x taps of 2D convolutions of the matching ``(batch*x)`` planes."""
    kx, ky, kz = kernel.shape[:3]
    sx, sy, sz = strides
    if padding == "same":
        shape = ops.shape(x)
        pads = [(0, 0)] + [_same_pads(shape[a + 1], kernel.shape[a], strides[a], 1) for a in range(3)]
        x = ops.pad(x, pads + [(0, 0)])
    batch, size_x, size_y, size_z, channels = ops.shape(x)
    out_x = (size_x - kx) // sx + 1
    plane_strides = (sy, sz) if sy == sz else (1, 1)  # TF 2D convolutions need equal strides
    out = None
    for i in range(kx):
        rows = x[:, i : i + (out_x - 1) * sx + 1 : sx]
        rows = ops.reshape(rows, (-1, size_y, size_z, channels))
        plane = ops.conv(rows, kernel[i], strides=plane_strides, padding="valid")
        out = plane if out is None else out + plane
    if sy != sz:
        out = out[:, ::sy, ::sz]
    out_shape = ops.shape(out)
    return ops.reshape(out, (batch, out_x, out_shape[1], out_shape[2], out_shape[3]))
