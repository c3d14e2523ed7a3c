"""GFLOP/s of one 3D convolution's forward pass and gradients beside the matmul rate.

One layer (default: batch 2, 80x96x80 voxels, 32 -> 64 channels, 3x3x3, "same"),
float32, on the current Keras backend's framework:

- TensorFlow: ``tf.nn.conv3d``, ``Conv3DBackpropInputV2``, ``Conv3DBackpropFilterV2``, and
  ``FastConv3D``'s gradients from forward convolutions (``kerasbrain.layers.conv_gradient``);
- JAX: ``lax.conv_general_dilated`` and its gradients through XLA, and the same
  forward-convolution formulation of the gradients written with ``lax``;
- PyTorch (``measure(..., framework="torch")``): ``conv3d`` and ``convolution_backward``
  (input, kernel) beside ``torch.mm``, channels first as PyTorch stores volumes.

    KERAS_BACKEND=tensorflow PYTHONPATH=. python benchmarks/conv_rates.py [--size 2 40 48 40]
        [--kernel 3 --stride 2 --channels 32 64 --framework torch]

Prints one JSON line. ``benchmarks/sfcn_step.py`` runs it beside the SFCN step.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

LAYER = (2, 80, 96, 80)  # batch, x, y, z
CHANNELS = (32, 64)


def cpu_info():
    """The CPU model and its vector extensions (Linux), and the load average."""
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "f16c")))
    return {"cpu_model": model, "vector_extensions": vector, "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg())}


def _time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _tensorflow(x, kernel, dy, a, repeats, stride=1):
    import tensorflow as tf

    from kerasbrain.layers import conv_gradient

    args = [tf.constant(v) for v in (x, kernel, dy, a)]
    strides = [1, stride, stride, stride, 1]

    def as_forward(x, kernel, dy, wrt):
        # FastConv3D's gradients; the other one is pruned from the traced function
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv_gradient.conv3d(x, kernel, "same")
        return tape.gradient(y, [x, kernel][wrt], output_gradients=dy)

    ops = {  # arguments, not constants: nothing is folded at trace time
        "matmul": lambda x, kernel, dy, a: tf.matmul(a, a),
        "forward": lambda x, kernel, dy, a: tf.nn.conv3d(x, kernel, strides, "SAME"),
        "input_grad": lambda x, kernel, dy, a: tf.raw_ops.Conv3DBackpropInputV2(
            input_sizes=x.shape, filter=kernel, out_backprop=dy, strides=strides, padding="SAME"),
        "kernel_grad": lambda x, kernel, dy, a: tf.raw_ops.Conv3DBackpropFilterV2(
            input=x, filter_sizes=kernel.shape, out_backprop=dy, strides=strides, padding="SAME"),
    }
    if stride == 1:  # strided convolutions keep TensorFlow's gradient kernels
        ops["input_grad_as_forward"] = lambda x, kernel, dy, a: as_forward(x, kernel, dy, 0)
        ops["kernel_grad_as_forward"] = lambda x, kernel, dy, a: as_forward(x, kernel, dy, 1)
    from tensorflow.python.util import _pywrap_util_port

    info = {"framework": f"tensorflow {tf.__version__}", "onednn": _pywrap_util_port.IsMklEnabled(),
            "forward_gradients_in_fastconv3d": conv_gradient.forward_gradients()}
    compiled = {name: tf.function(f) for name, f in ops.items()}
    return info, {name: _time(lambda f=f: f(*args).numpy(), repeats) for name, f in compiled.items()}


def _jax(x, kernel, dy, a, repeats, stride=1):
    if stride != 1:
        raise ValueError("the JAX rates are for stride 1")
    import jax
    from jax import lax

    dims = ("NDHWC", "DHWIO", "NDHWC")

    def conv(v, k, padding="SAME"):
        return lax.conv_general_dilated(v, k, (1, 1, 1), padding, dimension_numbers=dims)

    def input_grad_as_forward(d, k):
        flipped = k[::-1, ::-1, ::-1].transpose(0, 1, 2, 4, 3)
        return conv(d, flipped)

    def kernel_grad_as_forward(v, d):
        # batch <-> channels: the kernel is the output gradient, the output the kernel gradient
        v = jax.numpy.pad(v, [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)])
        out = lax.conv_general_dilated(v, d, (1, 1, 1), "VALID",
                                       dimension_numbers=("CDHWN", "IDHWO", "NDHWC"))
        return out.transpose(1, 2, 3, 0, 4)  # (c_in, kx, ky, kz, c_out) -> (kx, ky, kz, c_in, c_out)

    args = [jax.numpy.asarray(v) for v in (x, kernel, dy, a)]
    ops = {  # arguments, not constants: XLA would fold constants at compile time
        "matmul": lambda x, kernel, dy, a: a @ a,
        "forward": lambda x, kernel, dy, a: conv(x, kernel),
        "input_grad": lambda x, kernel, dy, a: jax.vjp(lambda v: conv(v, kernel), x)[1](dy)[0],
        "kernel_grad": lambda x, kernel, dy, a: jax.vjp(lambda k: conv(x, k), kernel)[1](dy)[0],
        "input_grad_as_forward": lambda x, kernel, dy, a: input_grad_as_forward(dy, kernel),
        "kernel_grad_as_forward": lambda x, kernel, dy, a: kernel_grad_as_forward(x, dy),
    }
    info = {"framework": f"jax {jax.__version__}"}
    compiled = {name: jax.jit(f) for name, f in ops.items()}
    return info, {name: _time(lambda f=f: f(*args).block_until_ready(), repeats)
                  for name, f in compiled.items()}


def _torch(x, kernel, dy, a, repeats, stride=1):
    import torch

    # channels first: (batch, c, x, y, z), kernel (c_out, c_in, kx, ky, kz)
    x, dy = (torch.from_numpy(v).permute(0, 4, 1, 2, 3).contiguous() for v in (x, dy))
    kernel = torch.from_numpy(kernel).permute(4, 3, 0, 1, 2).contiguous()
    a = torch.from_numpy(a)

    pad = [kernel.shape[-1] // 2] * 3

    def backward(mask):
        return torch.ops.aten.convolution_backward(
            dy, x, kernel, None, [stride] * 3, pad, [1, 1, 1], False, [0, 0, 0], 1, mask)

    ops = {
        "matmul": lambda: a @ a,
        "forward": lambda: torch.nn.functional.conv3d(x, kernel, stride=stride, padding=pad),
        "input_grad": lambda: backward([True, False, False]),
        "kernel_grad": lambda: backward([False, True, False]),
    }
    info = {"framework": f"torch {torch.__version__}",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}
    with torch.no_grad():
        return info, {name: _time(f, repeats) for name, f in ops.items()}


def measure(size=LAYER, channels=CHANNELS, repeats=2, matmul=4096, framework=None, kernel=3, stride=1):
    """GFLOP/s of forward, input and kernel gradients (native and as forward convolutions)
    of a ``kernel``-wide, ``"same"`` convolution at ``stride`` and of a float32 ``matmul x
    matmul`` product, on ``framework`` ("torch") or the current Keras backend."""
    batch, *spatial = size
    c_in, c_out = channels
    out = [-(-n // stride) for n in spatial]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *spatial, c_in)).astype("float32")
    weights = (rng.normal(size=(kernel, kernel, kernel, c_in, c_out)) * 0.1).astype("float32")
    dy = rng.normal(size=(batch, *out, c_out)).astype("float32")
    a = rng.normal(size=(matmul, matmul)).astype("float32")
    if framework is None:
        import keras

        framework = keras.backend.backend()
    run = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}[framework]
    info, seconds = run(x, weights, dy, a, repeats, stride=stride)
    conv_flops = 2 * batch * int(np.prod(out)) * kernel**3 * c_in * c_out
    gflops = {name: (2 * matmul**3 if name == "matmul" else conv_flops) / t / 1e9
              for name, t in seconds.items()}
    return {**info, "layer": {"batch": batch, "spatial": spatial, "channels": [c_in, c_out],
                              "kernel": kernel, "stride": stride, "padding": "same"},
            "seconds": seconds, "gflops": gflops,
            "ratio_to_forward": {k: v / gflops["forward"] for k, v in gflops.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=4, default=LAYER, metavar=("BATCH", "X", "Y", "Z"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--channels", type=int, nargs=2, default=CHANNELS)
    parser.add_argument("--framework", choices=("tensorflow", "jax", "torch"),
                        help="default: the Keras backend")
    args = parser.parse_args(argv)
    result = measure(tuple(args.size), tuple(args.channels), repeats=args.repeats,
                     framework=args.framework, kernel=args.kernel, stride=args.stride)
    print(json.dumps({**result, **cpu_info()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
