"""Stride-1 3D convolution with gradients computed by forward convolutions (TensorFlow CPU).

Without oneDNN (TensorFlow's default on CPUs without AVX-512 VNNI, such as AMD EPYC with
AVX2), TensorFlow's CPU kernels for the gradients of a 3D convolution
(``Conv3DBackpropInputV2``, ``Conv3DBackpropFilterV2``) build large im2col buffers and run
at a third to a half of the forward convolution's rate, while its forward convolution runs
near the matrix-product rate. ``conv3d`` computes the same convolution and takes both
gradients from forward convolutions:

- input gradient: the forward convolution of the output gradient, zero-padded by
  ``kernel - 1 - pad`` on each side, with the spatially flipped kernel whose input and
  output channels are swapped;
- kernel gradient: for each tap ``i`` along x, a 2D forward convolution whose batch is the
  input channels, whose channels are the ``(batch, x)`` planes and whose kernel is the
  output gradient: ``dk[i, j, l, c, o] = sum_{b, x, y, z} in[b, x + i, y + j, z + l, c]
  * dy[b, x, y, z, o]``.

Strided convolutions keep TensorFlow's kernels: as sums of stride-1 convolutions over the
input's phases (space to depth) their gradients ran 4-8x slower than TensorFlow's own.

With oneDNN (TensorFlow's default on Intel CPUs with AVX-512 VNNI, and kerasbrain's on
x86) the native kernel-gradient kernel runs near the forward rate and the 2D formulation is
slow, while the native input-gradient kernel still runs below the forward rate: there only
the input gradient of stride-1 convolutions comes from a forward convolution
(``forward_gradients`` says which).
"""

import functools

import tensorflow as tf


@functools.cache
def forward_gradients():
    """Which gradients of a convolution come from forward convolutions on TensorFlow:
    ``"both"`` on a CPU without oneDNN, ``"input"`` on a CPU with oneDNN, None where a GPU
    is visible to TensorFlow (its own gradient kernels)."""
    if tf.config.list_logical_devices("GPU"):
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - layout of TensorFlow's internals
        return None
    return "input" if _pywrap_util_port.IsMklEnabled() else "both"


def pads(kernel_size, padding):
    """``(left, right)`` zero padding per spatial axis of a stride-1 convolution."""
    if padding == "valid":
        return [(0, 0)] * 3
    return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size]


def conv3d(x, kernel, padding, native_kernel_gradient=False):
    """``tf.nn.conv3d(x, kernel, strides 1, padding)`` with forward-convolution gradients.

    ``x``: ``(batch, X, Y, Z, channels_in)``; ``kernel``: ``(kx, ky, kz, channels_in,
    channels_out)``; ``padding``: ``"same"`` or ``"valid"``; ``native_kernel_gradient``:
    the kernel gradient from TensorFlow's own kernel.
    Returns ``(batch, X', Y', Z', channels_out)``, the same numbers as ``tf.nn.conv3d``.
    """
    # a Keras variable is read now: the gradient may run outside a stateless scope
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    return _conv3d(tuple(kernel.shape[:3]), padding.lower(), native_kernel_gradient)(x, kernel)


@functools.cache
def _conv3d(kernel_size, padding, native_kernel_gradient=False):
    spatial_pads = pads(kernel_size, padding)

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv3d(x, kernel, [1] * 5, padding.upper())

        def grad(dy):
            if native_kernel_gradient:
                dk = tf.raw_ops.Conv3DBackpropFilterV2(
                    input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=[1] * 5,
                    padding=padding.upper())
            else:
                dk = _kernel_gradient(x, dy, kernel, spatial_pads)
            return _input_gradient(dy, kernel, spatial_pads), dk

        return y, grad

    return conv


def _input_gradient(dy, kernel, spatial_pads):
    kernel_size = kernel.shape[:3]
    flipped = tf.transpose(tf.reverse(kernel, [0, 1, 2]), [0, 1, 2, 4, 3])
    full = [(k - 1 - left, k - 1 - right) for k, (left, right) in zip(kernel_size, spatial_pads, strict=True)]
    if full == pads(kernel_size, "same"):  # no padded copy of dy
        return tf.nn.conv3d(dy, flipped, [1] * 5, "SAME")
    dy = tf.pad(dy, [(0, 0), *full, (0, 0)])
    return tf.nn.conv3d(dy, flipped, [1] * 5, "VALID")


def _kernel_gradient(x, dy, kernel, spatial_pads):
    kx, ky, kz, c_in, c_out = kernel.shape
    x = tf.pad(x, [(0, 0), *spatial_pads, (0, 0)])
    shape = tf.shape(dy)
    batch, out_x, out_y, out_z = shape[0], shape[1], shape[2], shape[3]
    # (batch, x, y, z, c) -> (c, y, z, batch, x): the channels of the 2D convolutions are
    # the (batch, x) planes, contiguous in memory
    x = tf.transpose(x, [4, 2, 3, 0, 1])
    planes = tf.reshape(tf.transpose(dy, [2, 3, 0, 1, 4]), (out_y, out_z, batch * out_x, c_out))
    size_y, size_z = tf.shape(x)[1], tf.shape(x)[2]
    taps = []
    for i in range(kx):
        rows = tf.reshape(x[..., i : i + out_x], (c_in, size_y, size_z, batch * out_x))
        tap = tf.nn.conv2d(rows, planes, 1, "VALID")  # (c_in, ky, kz, c_out)
        taps.append(tf.transpose(tap, [1, 2, 0, 3]))
    return tf.stack(taps)
