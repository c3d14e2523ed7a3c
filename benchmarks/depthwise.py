"""Depthwise 3D convolution: ``kerasbrain.layers.DepthwiseConv3D`` vs ``Conv3D(groups=C)``.

Both layers run inside a one-layer ``keras.Model`` and are timed the same way:
forward = ``predict_on_batch``, forward+backward = ``train_on_batch`` (MSE, SGD), so
each backend uses its own compiled path (``tf.function``, ``jax.jit``, eager PyTorch).
Every backend runs in its own subprocess. Prints a table and a JSON document.

    python benchmarks/depthwise.py                      # tensorflow and jax
    python benchmarks/depthwise.py --backends tensorflow,jax,torch --repeats 5
"""

import argparse
import json
import os
import subprocess
import sys
import time

# (batch, x, y, z, channels), kernel, strides, depth_multiplier
CASES = [
    ((2, 32, 32, 32, 16), 3, 1, 1),
    ((2, 32, 32, 32, 16), 3, 2, 1),
    ((2, 16, 16, 16, 96), 3, 1, 1),
    ((1, 8, 8, 8, 384), 5, 1, 1),
    ((1, 16, 16, 16, 64), 7, 1, 1),
    ((2, 16, 16, 16, 8), 3, 1, 4),
]


def _measure(repeats):
    import keras
    import numpy as np

    from kerasbrain.layers import DepthwiseConv3D

    def timed(fn):
        fn()  # compile / warm up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    rows = []
    for shape, kernel, strides, multiplier in CASES:
        channels = shape[-1]
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        layers = {
            "DepthwiseConv3D": DepthwiseConv3D(
                kernel, strides=strides, padding="same", depth_multiplier=multiplier
            ),
            "Conv3D(groups=C)": keras.layers.Conv3D(
                channels * multiplier, kernel, strides=strides, padding="same", groups=channels
            ),
        }
        row = {
            "backend": keras.backend.backend(),
            "shape": list(shape),
            "kernel": kernel,
            "strides": strides,
            "depth_multiplier": multiplier,
        }
        for label, layer in layers.items():
            inputs = keras.Input(shape[1:], batch_size=shape[0])
            model = keras.Model(inputs, layer(inputs))
            model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
            target = np.zeros(model.output_shape, dtype="float32")
            row[f"{label} fwd_s"] = timed(lambda m=model, x=x: m.predict_on_batch(x))
            row[f"{label} fwd_bwd_s"] = timed(lambda m=model, x=x, t=target: m.train_on_batch(x, t))
        row["speedup_fwd"] = row["Conv3D(groups=C) fwd_s"] / row["DepthwiseConv3D fwd_s"]
        row["speedup_fwd_bwd"] = row["Conv3D(groups=C) fwd_bwd_s"] / row["DepthwiseConv3D fwd_bwd_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (best kept)")
    parser.add_argument("--json", help="also write the JSON results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _measure(args.repeats)
        return 0

    rows = []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", "--repeats", str(args.repeats)],
            env=env, stdout=subprocess.PIPE, text=True,
        )
        found = []
        for line in child.stdout:
            if line.startswith("{"):
                found.append(json.loads(line))
                print(line.strip(), flush=True)
        if child.wait() != 0 or not found:
            print(f"{backend}: failed (exit code {child.returncode})", file=sys.stderr)
        rows.extend(found)

    header = (
        f"{'backend':<11}{'input':<20}{'k':>2}{'s':>3}{'m':>3}"
        f"{'fast fwd':>10}{'groups fwd':>12}{'x':>7}{'fast f+b':>10}{'groups f+b':>12}{'x':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backend']:<11}{'x'.join(map(str, r['shape'])):<20}{r['kernel']:>2}"
            f"{r['strides']:>3}{r['depth_multiplier']:>3}"
            f"{r['DepthwiseConv3D fwd_s']:>10.4f}{r['Conv3D(groups=C) fwd_s']:>12.4f}"
            f"{r['speedup_fwd']:>7.1f}"
            f"{r['DepthwiseConv3D fwd_bwd_s']:>10.4f}{r['Conv3D(groups=C) fwd_bwd_s']:>12.4f}"
            f"{r['speedup_fwd_bwd']:>7.1f}"
        )
    result = {"benchmark": "depthwise", "unit": "seconds (best of repeats)", "rows": rows}
    print(json.dumps(result, indent=1))
    if args.json:
        # imported here: importing kerasbrain sets TF_ENABLE_ONEDNN_OPTS for the workers
        from kerasbrain.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
