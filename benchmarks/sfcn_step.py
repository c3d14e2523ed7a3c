"""SFCN predict and train-step time per volume: Keras (TensorFlow, JAX) beside PyTorch.

Each framework runs in its own subprocess (one Keras backend per process), on the same
random volumes, with the published architecture (channels 32, 64, 128, 256, 256, 64; 40
outputs; Peng et al.'s PyTorch SFCN for the reference). The train step is one SGD update
with a KL-divergence loss on soft labels, as Peng et al. trained it. Rows:

- ``keras/<backend>``: ``kerasbrain.applications.SFCN`` (``FastConv3D``, ``FastMaxPooling3D``,
  ``FastBatchNormalization``);
- ``plain keras/<backend>``: the same model with ``keras.layers.Conv3D``, ``MaxPooling3D`` and
  ``BatchNormalization``;
- ``torch``: Peng et al.'s PyTorch SFCN;
- ``--env NAME=VALUE,...`` (repeatable) adds TensorFlow rows (kerasbrain, plain) run with
  those environment variables, e.g. ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's default on CPUs
  without AVX-512 VNNI) or ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2``.

Then the GFLOP/s of one 3x3x3 convolution layer (forward, input and kernel gradients,
TensorFlow's kernels and the forward-convolution formulation, beside the matmul rate) per
backend and ``--env``; see ``benchmarks/conv_rates.py``. Each row reports the user and
system CPU seconds of its train steps.

    PYTHONPATH=. python benchmarks/sfcn_step.py            # 160x192x160, batch 1
    PYTHONPATH=. python benchmarks/sfcn_step.py --quick    # 64x96x64, batch 2

``--isa avx2`` runs every process limited to AVX2 (PyTorch's ATen kernels, oneDNN in
PyTorch and TensorFlow, MKL), to measure on an AVX-512 machine what a CPU with AVX2 only
(AMD EPYC Zen 2/3, most laptops) gets; each framework's effective ISA is checked through
oneDNN's and MKL's verbose output and stored in the JSON. ``--row WORKER[:NAME=VALUE,...]``
(repeatable) replaces the rows above with these; ``native-tensorflow`` is kerasbrain's SFCN
with TensorFlow's own convolution gradients. ``--rounds N`` runs all rows N times,
interleaved, and reports the median over rounds. The comparison on AVX2:

    PYTHONPATH=. nice -n 5 python benchmarks/sfcn_step.py --isa avx2 --rounds 3 --repeats 1 \
        --batch 2 --row torch --row native-tensorflow:TF_ENABLE_ONEDNN_OPTS=0 \
        --row tensorflow:TF_ENABLE_ONEDNN_OPTS=0 --row tensorflow:TF_ENABLE_ONEDNN_OPTS=1

Prints tables and a JSON line (with the CPU model and its vector extensions); ``--json
FILE`` also writes the JSON. PyTorch is optional (skipped when not installed).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import conv_rates
import numpy as np

FILTERS = (32, 64, 128, 256, 256, 64)
CLASSES = 40
FRAMEWORKS = ("tensorflow", "jax", "torch")
WORKERS = FRAMEWORKS + ("plain-tensorflow", "plain-jax", "native-tensorflow", "layer-tensorflow",
                        "layer-jax", "layer-torch", "isa-tensorflow", "isa-torch")
#: environment that limits every framework's CPU kernels to an instruction set
ISA_LIMITS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                       "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def _data(shape, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = rng.dirichlet(np.ones(CLASSES), size=batch).astype("float32")
    return x, y


def _time(fn, repeats):
    fn()  # warm-up: compilation, allocation
    times = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {"user_s": (end.ru_utime - usage.ru_utime) / repeats,
           "system_s": (end.ru_stime - usage.ru_stime) / repeats}
    return float(np.median(times)), float(np.min(times)), cpu


def _plain(model):
    """``model`` with Keras' own Conv3D, MaxPooling3D and BatchNormalization layers (same weights)."""
    import keras

    from kerasbrain.layers import FastBatchNormalization, FastConv3D, FastMaxPooling3D

    def clone(layer):
        if isinstance(layer, FastBatchNormalization):
            return keras.layers.BatchNormalization.from_config(layer.get_config())
        if isinstance(layer, FastConv3D):
            return keras.layers.Conv3D.from_config(layer.get_config())
        if isinstance(layer, FastMaxPooling3D):
            return keras.layers.MaxPooling3D(layer.pool_size, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    plain.set_weights(model.get_weights())
    return plain


def _keras_worker(shape, batch, repeats, plain=False, native=False):
    import keras

    from kerasbrain.applications import SFCN

    info = {}
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.util import _pywrap_util_port

        from kerasbrain.layers import conv_gradient

        if native:  # TensorFlow's own gradient kernels in every FastConv3D
            conv_gradient.forward_gradients = lambda: None
        info = {"onednn": _pywrap_util_port.IsMklEnabled(),
                "forward_gradients": conv_gradient.forward_gradients()}
    x, y = _data(shape, batch)
    model = SFCN(weights=None, input_shape=(*shape, 1), classes=CLASSES)
    if plain:
        model = _plain(model)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.KLDivergence())
    predict = _time(lambda: model.predict_on_batch(x[..., None]), repeats)
    train = _time(lambda: model.train_on_batch(x[..., None], y), repeats)
    kind = "plain " if plain else "native-gradient " if native else ""
    return {"framework": f"{kind}keras/{keras.backend.backend()}", **info,
            "predict": predict[:2], "train": train[:2], "train_cpu": train[2],
            "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _torch_worker(shape, batch, repeats):
    import torch
    from torch import nn

    layers = []
    in_channels = 1
    for i, out_channels in enumerate(FILTERS):
        last = i == len(FILTERS) - 1
        block = [nn.Conv3d(in_channels, out_channels, 1 if last else 3, padding=0 if last else 1),
                 nn.BatchNorm3d(out_channels)]
        if not last:
            block.append(nn.MaxPool3d(2, stride=2))
        layers.append(nn.Sequential(*block, nn.ReLU()))
        in_channels = out_channels
    final = [s // 32 for s in shape]
    model = nn.Sequential(
        nn.Sequential(*layers),
        nn.AvgPool3d(final), nn.Dropout(0.5), nn.Conv3d(FILTERS[-1], CLASSES, 1),
        nn.Flatten(), nn.LogSoftmax(dim=1),
    )
    x, y = (torch.from_numpy(a) for a in _data(shape, batch))
    x = x[:, None]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.KLDivLoss(reduction="batchmean")

    def predict():
        model.eval()
        with torch.no_grad():
            return model(x)

    def train():
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    train_time = _time(train, repeats)
    return {"framework": f"torch {torch.__version__}", "predict": _time(predict, repeats)[:2],
            "train": train_time[:2], "train_cpu": train_time[2],
            "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _isa_worker(framework):
    """A small convolution, its gradients and a matmul, run with oneDNN's and MKL's verbose
    output on: the caller reads which instruction set their kernels use."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 40, 48, 40, 32)).astype("float32")
    k = rng.normal(size=(3, 3, 3, 32, 64)).astype("float32")
    a = rng.normal(size=(256, 256)).astype("float32")
    if framework == "torch":
        import torch

        conv = torch.nn.Conv3d(32, 64, 3, padding=1)
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            conv(torch.from_numpy(x).permute(0, 4, 1, 2, 3).requires_grad_()).sum().backward()
        torch.from_numpy(a) @ torch.from_numpy(a)
        return {"framework": f"torch {torch.__version__}",
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    x, k = tf.constant(x), tf.Variable(k)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.nn.conv3d(x, k, [1] * 5, "SAME"))
    tape.gradient(loss, [x, k])
    tf.matmul(a, a).numpy()
    return {"framework": f"tensorflow {tf.__version__}", "onednn": _pywrap_util_port.IsMklEnabled()}


def _verbose_isa(stdout):
    """oneDNN's ISA and the convolution/matmul implementations, MKL's ISA, from verbose lines."""
    found = {"onednn_isa": None, "onednn_implementations": [], "mkl": None}
    for line in stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and ",info,cpu,isa:" in line:
            found["onednn_isa"] = line.split("isa:", 1)[1].strip()
        elif line.startswith("onednn_verbose") and len(fields) > 7 and fields[3] == "exec" \
                and fields[5] in ("convolution", "matmul", "gemm_api", "inner_product"):
            impl = f"{fields[5]}:{fields[6]}:{fields[7]}"
            if impl not in found["onednn_implementations"]:
                found["onednn_implementations"].append(impl)
        elif line.startswith("MKL_VERBOSE") and " for Intel(R) 64 architecture " in line:
            found["mkl"] = line.split(" for Intel(R) 64 architecture ", 1)[1].split(", Lnx")[0]
    return found


def _parse_env(text):
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if not pairs or any(len(p) != 2 or not p[0] for p in pairs):
        raise argparse.ArgumentTypeError(f"--env expects NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return dict(pairs)


def _parse_row(text):
    worker, _, env = text.partition(":")
    if worker not in WORKERS or worker.startswith(("layer-", "isa-")):
        raise argparse.ArgumentTypeError(f"--row expects WORKER[:NAME=VALUE,...] with WORKER one of "
                                         f"{', '.join(FRAMEWORKS)}, plain-*, native-tensorflow; got {text!r}")
    return worker, _parse_env(env) if env else {}


def _run_worker(worker, args, extra_env=None):
    extra_env = extra_env or {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **ISA_LIMITS.get(args.isa, {}), **extra_env)
    if worker.startswith("isa-"):
        env.update(ONEDNN_VERBOSE="1", MKL_VERBOSE="1")
    if not worker.endswith("torch"):
        env["KERAS_BACKEND"] = worker.rsplit("-", 1)[-1]
    command = [sys.executable, os.path.abspath(__file__), "--worker", worker,
               "--size", *map(str, args.size), "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--layer", *map(str, args.layer)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"framework": worker, "env": extra_env, "error": " | ".join(tail)}
    row = {**json.loads(lines[-1]), "env": extra_env}
    if worker.startswith("isa-"):
        row.update(_verbose_isa(result.stdout + result.stderr))
    return row


def _label(row):
    return f"{row['framework']} {' '.join(f'{k}={v}' for k, v in row['env'].items())}"


def _merge_rounds(rounds):
    """One row per job: the median over rounds of each round's median (and the minimum)."""
    merged = []
    for runs in zip(*rounds, strict=True):
        ok = [r for r in runs if "error" not in r]
        if not ok:
            merged.append(runs[0])
            continue
        row = dict(ok[-1])
        for key in ("predict", "train"):
            row[key] = [float(np.median([r[key][0] for r in ok])), min(r[key][1] for r in ok)]
            row[f"{key}_rounds"] = [r[key][0] for r in ok]
        row["train_cpu"] = {k: float(np.median([r["train_cpu"][k] for r in ok])) for k in ok[0]["train_cpu"]}
        row["errors"] = [r["error"] for r in runs if "error" in r]
        merged.append(row)
    return merged


def _print_layers(layers):
    names = ("matmul", "forward", "input_grad", "kernel_grad", "input_grad_as_forward",
             "kernel_grad_as_forward")
    print(f"{'GFLOP/s (x forward)':<32}" + "".join(f"{n.replace('_as_forward', ' fwd'):>18}" for n in names))
    for row in layers:
        if "error" in row:
            print(f"{_label(row):<32} error: {row['error']}")
            continue
        print(f"{_label(row)[:31]:<32}" + "".join(
            f"{row['gflops'][n]:>10.1f} ({row['ratio_to_forward'][n]:.2f})" if n in row["gflops"]
            else f"{'-':>18}" for n in names))


def _jobs(args):
    """(worker, extra environment) of every SFCN row, and of the layer and ISA rows."""
    frameworks = [f for f in args.frameworks.split(",") if f]
    if args.row:
        jobs = list(args.row)
    else:
        jobs = [(f, {}) for f in frameworks]
        jobs += [(f"plain-{b}", {}) for b in args.plain.split(",") if b]
        env_workers = ["tensorflow"] + (["plain-tensorflow"] if "tensorflow" in args.plain.split(",") else [])
        jobs += [(worker, env) for env in args.env for worker in env_workers]
    layer_jobs, isa_jobs = [], []
    for worker, env in jobs:
        framework = worker.rsplit("-", 1)[-1]
        if (f"layer-{framework}", env) not in layer_jobs and not args.no_layers:
            layer_jobs.append((f"layer-{framework}", env))
        if args.isa and framework != "jax" and (f"isa-{framework}", env) not in isa_jobs:
            isa_jobs.append((f"isa-{framework}", env))
    return jobs, layer_jobs, isa_jobs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="64x96x64 volumes, batch 2; a 1x40x48x40 convolution layer")
    parser.add_argument("--size", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every row this many times, interleaved (median over rounds)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--plain", default="tensorflow",
                        help="backends of the plain Keras rows (comma-separated; '' for none)")
    parser.add_argument("--env", type=_parse_env, action="append", default=[],
                        help="NAME=VALUE[,NAME=VALUE]: more TensorFlow rows (kerasbrain, plain, "
                             "layer) with these environment variables (repeatable)")
    parser.add_argument("--row", type=_parse_row, action="append", default=[],
                        help="WORKER[:NAME=VALUE,...]: run these rows instead (repeatable)")
    parser.add_argument("--isa", choices=sorted(ISA_LIMITS),
                        help="limit every framework's CPU kernels to this instruction set")
    parser.add_argument("--layer", type=int, nargs=4, default=None, metavar=("B", "X", "Y", "Z"),
                        help=f"the convolution layer's batch and size (default {conv_rates.LAYER})")
    parser.add_argument("--no-layers", action="store_true", help="skip the layer GFLOP/s table")
    parser.add_argument("--json", help="also write the JSON results here")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.layer = tuple(args.layer or ((1, 40, 48, 40) if args.quick else conv_rates.LAYER))
    args.size = tuple(args.size or ((64, 96, 64) if args.quick else (160, 192, 160)))
    args.batch = args.batch or (2 if args.quick else 1)
    if any(s % 32 for s in args.size):
        parser.error(f"--size must be multiples of 32 (five 2x poolings), got {args.size}")

    if args.worker:
        kind, _, framework = args.worker.rpartition("-")
        if kind == "layer":
            result = conv_rates.measure(args.layer, repeats=args.repeats, framework=framework)
        elif kind == "isa":
            result = _isa_worker(framework)
        elif framework == "torch":
            result = _torch_worker(args.size, args.batch, args.repeats)
        else:
            result = _keras_worker(args.size, args.batch, args.repeats,
                                   plain=kind == "plain", native=kind == "native")
        print(json.dumps(result))
        return 0

    info = conv_rates.cpu_info()
    jobs, layer_jobs, isa_jobs = _jobs(args)
    isa = [_run_worker(worker, args, env) for worker, env in isa_jobs]
    rounds = []
    for _ in range(args.rounds):
        rounds.append([_run_worker(worker, args, env) for worker, env in jobs])
        print(f"round {len(rounds)}: load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    rows = _merge_rounds(rounds)
    layers = [_run_worker(worker, args, env) for worker, env in layer_jobs]
    print(f"SFCN step time per volume, input {'x'.join(map(str, args.size))}, batch "
          f"{args.batch}, median of {args.rounds} round(s) of the median (min) of {args.repeats} "
          f"after one warm-up; {info['cpus']} CPUs, {info['cpu_model']}, ISA limit "
          f"{args.isa or 'none'}, load {info['load_average'][0]:.1f} -> {os.getloadavg()[0]:.1f}")
    for row in isa:
        print(f"  {_label(row)}: " + ("error: " + row["error"] if "error" in row else
              f"oneDNN {row['onednn_isa']} {row['onednn_implementations']}, MKL {row['mkl']}, "
              f"ATen {row.get('cpu_capability', '-')}"))
    # speed: the train step's speed relative to PyTorch's (or to the fastest row's)
    ok = [r for r in rows if "error" not in r]
    torch_rows = [r["train"][0] for r in ok if r["framework"].startswith("torch")]
    reference = torch_rows[0] if torch_rows else min((r["train"][0] for r in ok), default=None)
    print(f"{'framework':<44} {'predict s/vol':>16} {'train step s/vol':>18} {'speed':>6} {'user/sys s':>12}")
    for row in rows:
        if "error" in row:
            print(f"{_label(row):<44} error: {row['error']}")
            continue
        p = [t / args.batch for t in row["predict"]]
        t = [t / args.batch for t in row["train"]]
        row["predict_s_per_volume"], row["train_step_s_per_volume"] = p[0], t[0]
        row["train_speed_vs_reference"] = reference / row["train"][0]
        cpu = row["train_cpu"]
        print(f"{_label(row)[:44]:<44} {p[0]:>7.3f} ({p[1]:.3f}) {t[0]:>8.3f} ({t[1]:.3f}) "
              f"{reference / row['train'][0]:>6.2f} {cpu['user_s']:>6.1f}/{cpu['system_s']:.1f}")
    if layers:
        print(f"\n3x3x3 convolution, batch {args.layer[0]}, {'x'.join(map(str, args.layer[1:]))}, "
              f"{conv_rates.CHANNELS[0]} -> {conv_rates.CHANNELS[1]} channels, float32, best of "
              f"{args.repeats}")
        _print_layers(layers)
    result = {"benchmark": "sfcn_step", "size": list(args.size), "batch": args.batch,
              "repeats": args.repeats, "rounds": args.rounds, "isa_limit": args.isa,
              "isa_environment": ISA_LIMITS.get(args.isa, {}), **info,
              "load_average_end": list(os.getloadavg()), "isa_check": isa,
              "results": rows, "layers": layers}
    print(json.dumps(result))
    if args.json:
        # imported here: importing kerasbrain sets TF_ENABLE_ONEDNN_OPTS for the workers
        from kerasbrain.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
