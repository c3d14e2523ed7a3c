"""SFCN training throughput and peak memory: Keras (JAX backend) against PyTorch.

Measures one SGD training step (forward, KL-divergence loss on 40-bin soft labels,
backward, update) of the SFCN of Peng et al. (2021) on synthetic in-memory batches at
160x192x160, for several batch sizes and precisions, and prints a table and JSON.

- Keras 3 on JAX: the model's stateless train step under ``jax.jit`` with donated
  buffers; ``float32`` and ``mixed_bfloat16``. Peak memory: XLA's compiled footprint
  (arguments + outputs + temporaries) and the allocator's peak.
- PyTorch, the same architecture in eager mode: float32 and autocast bf16 (AMP),
  ``cudnn.benchmark`` on. Peak memory: ``torch.cuda.max_memory_allocated``.

Each framework runs in its own subprocess so neither allocator sees the other's memory.
Warm-up steps (and compilation) are excluded; timing synchronises with the device
(``block_until_ready`` / ``torch.cuda.synchronize``) before reading the clock. A batch
that runs out of memory is recorded as ``"oom"``.

Needs keras, jax, numpy (and torch for the reference) and this repository's
``kerasbrain/layers`` (keras only); no TensorFlow.

Usage:
    python benchmarks/gpu_sfcn.py --json results.json            # GPU, full size
    python benchmarks/gpu_sfcn.py --cpu-tiny --json tiny.json     # CPU smoke run, 32^3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

FILTERS = (32, 64, 128, 256, 256, 64)
BINS = 40
FULL_SHAPE = (160, 192, 160)
TINY_SHAPE = (32, 32, 32)
TINY_FILTERS = (4, 4, 8, 8, 8, 4)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KERAS_SETTINGS = ("float32", "mixed_bfloat16", "float32+maxpool3d", "mixed_bfloat16+maxpool3d")
TORCH_SETTINGS = ("float32", "amp_bf16")


# ---------------------------------------------------------------------------------------
# Keras on JAX


def keras_sfcn(shape, filters, maxpool3d=False):
    """SFCN with a soft-classification head returning float32 logits ``(batch, 40)``.

    Same graph as ``kerasbrain.applications.SFCN(weights=None)`` (conv -> BN -> ReLU ->
    max-pool x5, 1x1x1 conv -> BN -> ReLU, global average pool, dropout, dense); the head
    is kept in float32 under a mixed policy. ``maxpool3d`` pools with
    ``keras.layers.MaxPooling3D`` instead of kerasbrain's ``FastMaxPooling3D``.
    """
    import keras

    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from kerasbrain.layers.pooling import FastMaxPooling3D  # keras only

    inputs = keras.Input((*shape, 1), name="volume")
    pool = (lambda name: keras.layers.MaxPooling3D(2, name=name)) if maxpool3d else (
        lambda name: FastMaxPooling3D(2, name=name))
    x = inputs
    for i, width in enumerate(filters[:5]):
        x = keras.layers.Conv3D(width, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = pool(name=f"block{i}_pool")(x)
    x = keras.layers.Conv3D(filters[5], 1, name="block5_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="block5_bn")(x)
    x = keras.layers.ReLU(name="block5_relu")(x)
    x = keras.layers.GlobalAveragePooling3D(name="avg_pool")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(BINS, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="sfcn")


def keras_worker(shape, filters, batches, settings, warmup, steps, repeats, out_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"the Keras part needs KERAS_BACKEND=jax, got {keras.backend.backend()}")
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    out = {"framework": "keras-jax", "device": device.device_kind,
           "memory_gib": stats.get("bytes_limit", 0) / 2**30 or None,
           "versions": {"keras": keras.__version__, "jax": jax.__version__}, "results": []}
    for setting in settings:
        oom = False
        for batch in batches:
            row = {"framework": "keras-jax", "setting": setting, "batch": batch}
            if oom:
                row["status"] = "oom"
            else:
                keras.backend.clear_session()
                policy, _, variant = setting.partition("+")
                keras.mixed_precision.set_dtype_policy(policy)
                try:
                    row.update(_keras_measure(jax, jnp, keras, np, device, shape, filters, batch,
                                              warmup, steps, repeats, variant == "maxpool3d"))
                    row["status"] = "ok"
                except Exception as error:  # noqa: BLE001 - record OOM, re-raise the rest
                    if not _is_oom(error):
                        raise
                    row["status"] = "oom"
                    oom = True
                finally:
                    keras.mixed_precision.set_dtype_policy("float32")
            out["results"].append(row)
            print(_row_line(row), flush=True)
            _write_json(out, out_path)
    return out


def _keras_measure(jax, jnp, keras, np, device, shape, filters, batch, warmup, steps, repeats,
                   maxpool3d=False):
    model = keras_sfcn(shape, filters, maxpool3d=maxpool3d)
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )

    def loss_fn(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        log_p = jax.nn.log_softmax(logits.astype("float32"), axis=-1)
        loss = jnp.sum(jnp.where(y > 0, y * (jnp.log(jnp.where(y > 0, y, 1.0)) - log_p), 0.0))
        return loss / x.shape[0], non_trainable

    def train_step(trainable, non_trainable, opt_vars, x, y):
        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return trainable, non_trainable, opt_vars, loss

    step = jax.jit(train_step, donate_argnums=(0, 1, 2))
    x, y = _synthetic_batch(np, shape, batch)
    x = jax.device_put(x, device)
    y = jax.device_put(y, device)

    start = time.perf_counter()
    compiled = step.lower(*state, x, y).compile()
    compile_s = time.perf_counter() - start
    footprint = _compiled_bytes(compiled)

    trainable, non_trainable, opt_vars = state
    for _ in range(warmup):
        trainable, non_trainable, opt_vars, loss = compiled(trainable, non_trainable, opt_vars, x, y)
    loss.block_until_ready()
    if not np.isfinite(float(loss)):
        raise RuntimeError(f"keras {batch=}: non-finite loss {float(loss)}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            trainable, non_trainable, opt_vars, loss = compiled(
                trainable, non_trainable, opt_vars, x, y)
        loss.block_until_ready()
        times.append((time.perf_counter() - start) / steps)
    stats = device.memory_stats() or {}
    step_s = sorted(times)[len(times) // 2]
    return {
        "step_ms": 1e3 * step_s,
        "volumes_per_s": batch / step_s,
        "peak_gib": footprint / 2**30 if footprint else None,
        "allocator_peak_gib": stats.get("peak_bytes_in_use", 0) / 2**30 or None,
        "compile_s": compile_s,
        "loss": float(loss),
    }


def _compiled_bytes(compiled):
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every runtime reports it
        return None
    if m is None:
        return None
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)


# ---------------------------------------------------------------------------------------
# PyTorch reference


def torch_sfcn(filters):
    import torch
    from torch import nn

    layers, channels = [], 1
    for width in filters[:5]:
        layers += [nn.Conv3d(channels, width, 3, padding=1), nn.BatchNorm3d(width),
                   nn.ReLU(inplace=True), nn.MaxPool3d(2)]
        channels = width
    layers += [nn.Conv3d(channels, filters[5], 1), nn.BatchNorm3d(filters[5]),
               nn.ReLU(inplace=True), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
               nn.Dropout(0.5), nn.Linear(filters[5], BINS)]
    return torch.nn.Sequential(*layers)


def torch_worker(shape, filters, batches, settings, warmup, steps, repeats, out_path, cpu):
    import numpy as np
    import torch

    device = torch.device("cpu" if cpu else "cuda")
    if cpu:
        torch.set_num_threads(1)
    else:
        torch.backends.cudnn.benchmark = True
    out = {"framework": "torch",
           "device": "cpu" if cpu else torch.cuda.get_device_name(device),
           "memory_gib": None if cpu else torch.cuda.get_device_properties(device).total_memory / 2**30,
           "versions": {"torch": torch.__version__}, "results": []}
    for setting in settings:
        oom = False
        for batch in batches:
            row = {"framework": "torch", "setting": setting, "batch": batch}
            if oom:
                row["status"] = "oom"
            else:
                try:
                    row.update(_torch_measure(torch, np, device, shape, filters, batch,
                                              setting == "amp_bf16", warmup, steps, repeats))
                    row["status"] = "ok"
                except torch.cuda.OutOfMemoryError:
                    row["status"] = "oom"
                    oom = True
                if not cpu:
                    torch.cuda.empty_cache()
            out["results"].append(row)
            print(_row_line(row), flush=True)
            _write_json(out, out_path)
    return out


def _torch_measure(torch, np, device, shape, filters, batch, amp, warmup, steps, repeats):
    import torch.nn.functional as F

    model = torch_sfcn(filters).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _synthetic_batch(np, shape, batch)
    x = torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous().to(device)
    y = torch.from_numpy(y).to(device)
    cuda = device.type == "cuda"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.kl_div(F.log_softmax(logits.float(), dim=-1), y, reduction="batchmean")
        loss.backward()
        optimizer.step()
        return loss

    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        loss = step()
    if cuda:
        torch.cuda.synchronize(device)
    if not np.isfinite(loss.item()):
        raise RuntimeError(f"torch {batch=}: non-finite loss {loss.item()}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) / steps)
    step_s = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    out = {"step_ms": 1e3 * step_s, "volumes_per_s": batch / step_s, "peak_gib": peak,
           "loss": loss.item()}
    return out


# ---------------------------------------------------------------------------------------
# Shared


def _synthetic_batch(np, shape, batch):
    """Random volumes ``(batch, *shape, 1)`` and Gaussian soft labels ``(batch, 40)``."""
    rng = np.random.default_rng(batch)
    x = rng.normal(1.0, 0.5, size=(batch, *shape, 1)).astype("float32")
    centres = np.arange(BINS) + 0.5
    ages = rng.uniform(5, 35, size=(batch, 1))
    y = np.exp(-0.5 * (centres - ages) ** 2)
    return x, (y / y.sum(axis=1, keepdims=True)).astype("float32")


def _is_oom(error):
    text = f"{type(error).__name__} {error}"
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def _row_line(row):
    if row.get("status") != "ok":
        return f"{row['framework']:>9} {row['setting']:<22} batch {row['batch']:>3}: {row.get('status')}"
    return (f"{row['framework']:>9} {row['setting']:<22} batch {row['batch']:>3}: "
            f"{row['volumes_per_s']:8.2f} vol/s  {row['step_ms']:9.1f} ms/step")


def table(results):
    """Markdown table: one row per (framework, setting, batch)."""
    lines = ["| framework | setting | batch | volumes/s | ms/step | peak GiB |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in results:
        if row.get("status") != "ok":
            lines.append(f"| {row['framework']} | {row['setting']} | {row['batch']} | "
                         f"{row.get('status')} | | |")
            continue
        peak = f"{row['peak_gib']:.1f}" if row.get("peak_gib") else "-"
        lines.append(f"| {row['framework']} | {row['setting']} | {row['batch']} | "
                     f"{row['volumes_per_s']:.2f} | {row['step_ms']:.1f} | {peak} |")
    return "\n".join(lines)


def compare(results):
    """bf16 Keras/JAX over PyTorch AMP at the largest batch where both ran."""
    keras_rows = {}
    for r in results:  # the faster Keras bf16 variant per batch
        if (r["framework"] == "keras-jax" and r["setting"].startswith("mixed_bfloat16")
                and r.get("status") == "ok"):
            best = keras_rows.get(r["batch"])
            if best is None or r["volumes_per_s"] > best["volumes_per_s"]:
                keras_rows[r["batch"]] = r
    torch_rows = {r["batch"]: r for r in results
                  if r["framework"] == "torch" and r["setting"] == "amp_bf16"
                  and r.get("status") == "ok"}
    common = sorted(set(keras_rows) & set(torch_rows))
    if not common:
        return None
    batch = common[-1]
    ratio = keras_rows[batch]["volumes_per_s"] / torch_rows[batch]["volumes_per_s"]
    return {"batch": batch, "keras_setting": keras_rows[batch]["setting"],
            "keras_bf16_volumes_per_s": keras_rows[batch]["volumes_per_s"],
            "torch_amp_bf16_volumes_per_s": torch_rows[batch]["volumes_per_s"],
            "speedup": ratio, "target": 1.2, "target_met": ratio >= 1.2}


def _write_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _run_worker(framework, settings, args, timeout):
    """Run one framework's settings in a fresh interpreter; return its (partial) JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{framework}.json")
        flag = "--keras-settings" if framework == "keras" else "--torch-settings"
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--worker-out",
               out, *args.forward, flag, *settings]
        env = dict(os.environ, KERAS_BACKEND="jax")
        if args.cpu_tiny:
            env["JAX_PLATFORMS"] = "cpu"
        else:
            env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")
        error = None
        try:
            proc = subprocess.run(cmd, env=env, timeout=max(timeout, 1))
            if proc.returncode != 0:
                error = f"worker exited with {proc.returncode}"
        except subprocess.TimeoutExpired:
            error = f"worker stopped after the time budget ({timeout:.0f} s)"
        part = {"framework": framework, "results": []}
        if os.path.exists(out):
            with open(out) as f:
                part = json.load(f)
        if error:
            part["error"] = error
        return part


def max_batch_estimate(results, capacity_gib):
    """Largest batch that fits ``capacity_gib``, from a line through (batch, peak GiB).

    Peak memory of a train step is affine in the batch (weights + per-volume activations);
    the fit uses the measured batches of one (framework, setting).
    """
    estimates = {}
    keys = {(r["framework"], r["setting"]) for r in results}
    for key in sorted(keys):
        points = [(r["batch"], r["peak_gib"]) for r in results
                  if (r["framework"], r["setting"]) == key and r.get("status") == "ok"
                  and r.get("peak_gib")]
        cap = capacity_gib.get(key[0])
        if len(points) < 2 or not cap:
            continue
        (b0, m0), (b1, m1) = points[0], points[-1]
        slope = (m1 - m0) / (b1 - b0)
        if slope <= 0:
            continue
        estimates[f"{key[0]}/{key[1]}"] = {
            "gib_per_volume": slope, "fixed_gib": m0 - slope * b0,
            "max_batch": int((cap - (m0 - slope * b0)) // slope), "capacity_gib": cap}
    return estimates


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-tiny", action="store_true",
                        help="CPU smoke run: 32^3 volumes, tiny widths, batches 2 and 4")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default 2 4 8 16; --cpu-tiny: 2 4)")
    parser.add_argument("--keras-settings", nargs="*", default=list(KERAS_SETTINGS),
                        choices=KERAS_SETTINGS)
    parser.add_argument("--torch-settings", nargs="*", default=list(TORCH_SETTINGS),
                        choices=TORCH_SETTINGS)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat (10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; median kept")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--time-budget", type=float, default=3600,
                        help="seconds for all runs; phases past it are skipped (partial JSON)")
    parser.add_argument("--worker", choices=("keras", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batches is None:
        args.batches = [2, 4] if args.cpu_tiny else [2, 4, 8, 16]
    if args.warmup is None:
        args.warmup = 1 if args.cpu_tiny else 3
    if args.steps is None:
        args.steps = 2 if args.cpu_tiny else 10
    if args.cpu_tiny:
        args.repeats = min(args.repeats, 2)
    args.forward = (["--cpu-tiny"] if args.cpu_tiny else []) + [
        "--batches", *map(str, args.batches), "--warmup", str(args.warmup),
        "--steps", str(args.steps), "--repeats", str(args.repeats)]
    return args


def main(argv=None):
    args = parse_args(argv)
    shape = TINY_SHAPE if args.cpu_tiny else FULL_SHAPE
    filters = TINY_FILTERS if args.cpu_tiny else FILTERS
    common = (shape, filters, args.batches)
    timing = (args.warmup, args.steps, args.repeats)

    if args.worker == "keras":
        keras_worker(*common, args.keras_settings, *timing, args.worker_out)
        return 0
    if args.worker == "torch":
        torch_worker(*common, args.torch_settings, *timing, args.worker_out, args.cpu_tiny)
        return 0

    with_torch = not args.no_torch
    skipped = None
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch, skipped = False, "torch is not installed"
    # bf16 first (the comparison that matters), then float32.
    # Each phase gets a share of the time left (compilation makes Keras phases longer).
    phases = [("keras", [s for s in args.keras_settings if "bfloat16" in s], 0.35),
              ("torch", [s for s in args.torch_settings if s != "float32"], 0.2),
              ("keras", [s for s in args.keras_settings if "bfloat16" not in s], 0.28),
              ("torch", [s for s in args.torch_settings if s == "float32"], 0.17)]
    phases = [p for p in phases if p[1] and (with_torch or p[0] == "keras")]
    deadline = time.monotonic() + args.time_budget
    parts = []
    for i, (framework, settings, weight) in enumerate(phases):
        left = deadline - time.monotonic()
        if left <= 0:
            parts.append({"framework": framework, "results": [],
                          "error": f"not run ({' '.join(settings)}): time budget spent"})
            continue
        share = left * weight / sum(p[2] for p in phases[i:])
        parts.append(_run_worker(framework, settings, args, share))
    results = [row for part in parts for row in part["results"]]
    capacity = {("keras-jax" if p["framework"] in ("keras", "keras-jax") else "torch"):
                p.get("memory_gib") for p in parts}
    report = {
        "benchmark": "sfcn_train_step",
        "shape": list(shape),
        "filters": list(filters),
        "mode": "cpu-tiny" if args.cpu_tiny else "full",
        "warmup_steps": args.warmup, "timed_steps": args.steps, "repeats": args.repeats,
        "devices": {p["framework"]: p.get("device") for p in parts},
        "versions": {k: v for p in parts for k, v in p.get("versions", {}).items()},
        "errors": [p["error"] for p in parts if p.get("error")] + ([skipped] if skipped else []),
        "results": results,
        "comparison": compare(results),
        "max_batch_estimate": max_batch_estimate(results, capacity),
    }
    print()
    print(f"SFCN train step at {'x'.join(map(str, shape))}, devices {report['devices']}")
    print(table(results))
    if report["comparison"]:
        c = report["comparison"]
        print(f"\nbf16 at batch {c['batch']}: keras-jax {c['keras_bf16_volumes_per_s']:.2f} vol/s "
              f"vs torch AMP {c['torch_amp_bf16_volumes_per_s']:.2f} vol/s = "
              f"{c['speedup']:.2f}x (target 1.2x: {'met' if c['target_met'] else 'not met'})")
    for err in report["errors"]:
        print(f"note: {err}")
    print(json.dumps(report))
    if args.json:
        _write_json(report, args.json)
    return 1 if any(p.get("error") for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
