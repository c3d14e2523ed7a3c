"""Size, cost and CPU speed of every 3D backbone in ``kerasbrain.applications``.

For each family constructor (discovered from ``kerasbrain.applications.__all__``):

- parameters of the backbone (``include_top=False``, 1 input channel);
- FLOPs of one forward pass at 160x192x160 (2 x multiply-accumulates of convolutions,
  dense layers, attention; counted from the layer shapes; normalisation, activations and
  pooling left out);
- the minimum input size per axis;
- forward+backward time (median of ``--steps``) and the peak resident memory of a fresh
  process at the reference size (default 64^3, batch 1; families whose minimum is larger
  run at their minimum), on the CPU, TensorFlow backend unless KERAS_BACKEND says other.

Prints a table and JSON, writes ``--json`` and a Markdown table (``--markdown``).

    PYTHONPATH=. python benchmarks/backbones.py --only resnet resnet_v2 densenet \\
        --json backbones.json --markdown backbones.md
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLOPS_SHAPE = (160, 192, 160)
#: constructors in __all__ that are generic builders or aliases, not families
SKIP = {"ViT", "inflate", "load_imagenet"}


def constructors(only=None):
    """``{name: constructor}`` of every family constructor exported by the package."""
    from kerasbrain import applications

    found = {}
    for name in applications.__all__:
        obj = getattr(applications, name)
        if name in SKIP or not callable(obj) or not name[:1].isupper():
            continue
        module = obj.__module__.rsplit(".", 1)[-1]
        if only and name not in only and module not in only:
            continue
        found[name] = obj
    return found


def min_size(constructor):
    module = sys.modules[constructor.__module__]
    if hasattr(module, "MIN_SIZE"):
        return int(module.MIN_SIZE)
    if constructor.__name__.startswith("ViT"):
        return 16
    return None


def build(constructor, size):
    kwargs = dict(include_top=False, weights=None, input_shape=(*size, 1), pooling="avg")
    return constructor(**kwargs)


def count_flops(model):
    """2 x multiply-accumulates of the convolutions, dense layers and attention."""
    import keras
    import numpy as np

    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
            continue
        if kind == "MultiHeadAttention":
            tokens = int(layer.output.shape[1])
            projections = sum(
                int(np.prod(sub.kernel.shape))
                for sub in (layer._query_dense, layer._key_dense, layer._value_dense,
                            layer._output_dense)
            )
            total += 2 * projections * tokens
            total += 4 * layer._num_heads * layer._key_dim * tokens * tokens
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            kernel = getattr(layer, "depthwise_kernel", None)
        if kernel is None:
            continue
        size = int(np.prod(kernel.shape))
        out_shape = layer.output.shape
        if kind == "PatchEmbedding3D":
            total += 2 * size * (int(out_shape[1]) - 1)
        elif len(kernel.shape) == 5:  # Conv3D, grouped or depthwise 3D kernels
            total += 2 * size * int(np.prod(out_shape[1:4]))
        else:  # Dense over every leading position
            total += 2 * size * int(np.prod([d for d in out_shape[1:-1] if d]))
    return total


def static_stats(name, constructor):
    model = build(constructor, FLOPS_SHAPE)
    return {"params": int(model.count_params()), "gflops_160x192x160": count_flops(model) / 1e9}


def time_one(name, size, steps):
    """Forward+backward median time and this process's peak RSS (run in a subprocess)."""
    import keras
    import numpy as np

    constructor = constructors()[name]
    model = build(constructor, (size,) * 3)
    x = np.random.default_rng(0).normal(size=(1, size, size, size, 1)).astype("float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False)
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x, training=True) ** 2)
            return tape.gradient(loss, model.trainable_variables)

        run = lambda: [g.numpy() for g in step(x)[:1]]  # noqa: E731
    elif backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def grads(trainable, frozen, x):
            def loss(trainable):
                y, _ = model.stateless_call(trainable, frozen, x, training=True)
                return (y**2).sum()

            return jax.grad(loss)(trainable)

        run = lambda: jax.block_until_ready(grads(trainable, frozen, x))  # noqa: E731
    else:
        raise SystemExit(f"backend {backend} not supported by this benchmark")
    run()  # trace / compile
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "fwd_bwd_s": float(np.median(times)), "peak_rss_mb": peak_mb}


def markdown(rows):
    lines = [
        "| Constructor | Parameters (3D, 1 ch) | GFLOPs @160x192x160 | Min size | "
        "Fwd+bwd (s) @size | Peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        timing = f"{r['fwd_bwd_s']:.2f} @{r['size']}^3" if r.get("fwd_bwd_s") else "-"
        memory = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "-"
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['gflops_160x192x160']:.0f} | "
            f"{r['min_size']} | {timing} | {memory} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*",
                        help="constructor names or module names (resnet, densenet, ...)")
    parser.add_argument("--size", type=int, default=64, help="reference size for timing")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--no-timing", action="store_true", help="parameters and FLOPs only")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the Markdown table here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # child process: time one model
        print(json.dumps(time_one(args.one, args.size, args.steps)))
        return 0

    rows = []
    for name, constructor in constructors(args.only).items():
        import keras

        row = {"name": name, "min_size": min_size(constructor)}
        row.update(static_stats(name, constructor))
        keras.backend.clear_session()
        if not args.no_timing:
            size = max(args.size, row["min_size"] or 0)
            child = subprocess.run(
                [sys.executable, __file__, "--one", name, "--size", str(size),
                 "--steps", str(args.steps)],
                capture_output=True, text=True, env=os.environ.copy(),
            )
            if child.returncode == 0:
                row.update(json.loads(child.stdout.strip().splitlines()[-1]))
            else:
                row["error"] = child.stderr.strip().splitlines()[-1][:200]
        rows.append(row)
        print(f"{name:16s} {row['params'] / 1e6:8.2f} M {row['gflops_160x192x160']:9.1f} GFLOPs "
              f"min {row['min_size']}  "
              + (f"{row['fwd_bwd_s']:.3f} s @{row['size']}^3  {row['peak_rss_mb']:.0f} MB"
                 if "fwd_bwd_s" in row else row.get("error", "")), flush=True)
    import keras

    result = {"backend": keras.backend.backend(), "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "rows": rows}
    print(markdown(rows))
    print(json.dumps(result, indent=1))
    if args.json:
        # imported here: importing kerasbrain sets TF_ENABLE_ONEDNN_OPTS for the workers
        from kerasbrain.files import write_json

        write_json(args.json, result)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
