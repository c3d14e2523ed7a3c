"""3D convolution with gradients computed by forward convolutions (TensorFlow CPU).

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

A strided convolution is the sum of one stride-1 convolution per phase of the input
(``_strided_conv3d``), so its gradients come from the same forward convolutions.

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


def conv3d(x, kernel, padding, strides=(1, 1, 1), native_kernel_gradient=False):
    """``tf.nn.conv3d(x, kernel, strides, padding)`` with forward-convolution gradients.

    ``x``: ``(batch, X, Y, Z, channels_in)``; ``kernel``: ``(kx, ky, kz, channels_in,
    channels_out)``; ``padding``: ``"same"`` or ``"valid"``; ``strides``: 3 ints;
    ``native_kernel_gradient``: the kernel gradient from TensorFlow's own kernel (stride 1).
    Returns ``(batch, X', Y', Z', channels_out)``, the same numbers as ``tf.nn.conv3d``.
    """
    # a Keras variable is read now: the gradient may run outside a stateless scope
    x, kernel = tf.convert_to_tensor(x), tf.convert_to_tensor(kernel)
    if tuple(strides) != (1, 1, 1):
        if native_kernel_gradient:
            raise ValueError("native_kernel_gradient needs strides of 1")
        return _strided_conv3d(x, kernel, padding.lower(), tuple(strides))
    return _conv3d(tuple(kernel.shape[:3]), padding.lower(), native_kernel_gradient)(x, kernel)


def _strided_conv3d(x, kernel, padding, strides):
    """A strided convolution as a sum of stride-1 convolutions, one per phase.

    With ``x`` zero-padded and ``t = s * q + p`` along each axis, ``y[o] = sum_t x[s * o + t]
    k[t] = sum_p sum_q x_p[o + q] k[p::s][q]``, where ``x_p = x[p::s]``: the "valid"
    stride-1 convolution of each phase ``x_p`` of the input with the kernel's taps
    ``k[p::s]``, cropped to the output. The phases come from one reshape and transpose
    (space to depth), whose gradient is one transpose.
    """
    ks = tuple(kernel.shape[:3])
    shape = tf.shape(x)
    # static sizes where known (Python ints), so that the output keeps its static shape
    batch, *sizes = [x.shape[a] if x.shape[a] is not None else shape[a] for a in range(4)]
    if padding == "same":
        outs = [(n + s - 1) // s for n, s in zip(sizes, strides, strict=True)]
        totals = [(o - 1) * s + k - n for o, s, k, n in zip(outs, strides, ks, sizes, strict=True)]
        totals = [max(t, 0) if isinstance(t, int) else tf.maximum(t, 0) for t in totals]
        lefts = [t // 2 for t in totals]
    else:
        outs = [(n - k) // s + 1 for n, s, k in zip(sizes, strides, ks, strict=True)]
        totals = lefts = [0, 0, 0]
    # pad to the padding, then up to whole multiples of the stride
    padded = [n + t for n, t in zip(sizes, totals, strict=True)]
    blocks = [(n + s - 1) // s for n, s in zip(padded, strides, strict=True)]
    rights = [b * s - n + t - left for b, s, n, t, left in zip(blocks, strides, padded, totals, lefts, strict=True)]
    x = tf.pad(x, [[0, 0], *([left, right] for left, right in zip(lefts, rights, strict=True)), [0, 0]])
    sx, sy, sz = strides
    c_in = kernel.shape[3]
    x = tf.reshape(x, [batch, blocks[0], sx, blocks[1], sy, blocks[2], sz, c_in])
    phases = tf.transpose(x, [2, 4, 6, 0, 1, 3, 5, 7])  # (sx, sy, sz, batch, bx, by, bz, c)
    parts = []
    for px in range(min(sx, ks[0])):
        for py in range(min(sy, ks[1])):
            for pz in range(min(sz, ks[2])):
                taps = kernel[px::sx, py::sy, pz::sz]
                part = _conv3d(tuple(taps.shape[:3]), "valid")(phases[px, py, pz], taps)
                parts.append(part[:, : outs[0], : outs[1], : outs[2]])
    return tf.add_n(parts)


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
