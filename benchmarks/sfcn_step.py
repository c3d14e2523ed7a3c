"""SFCN predict and train-step time per volume: Keras (TensorFlow, JAX) beside PyTorch.

Each framework runs in its own subprocess (one Keras backend per process), on the same
random volumes, with the published architecture (channels 32, 64, 128, 256, 256, 64; 40
outputs; Peng et al.'s PyTorch SFCN for the reference). The train step is one SGD update
with a KL-divergence loss on soft labels, as Peng et al. trained it. Rows:

- ``keras/<backend>``: ``kerasbrain.applications.SFCN`` (``FastConv3D``, ``FastMaxPooling3D``);
- ``plain keras/<backend>``: the same model with ``keras.layers.Conv3D`` and ``MaxPooling3D``;
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
WORKERS = FRAMEWORKS + ("plain-tensorflow", "plain-jax", "layer-tensorflow", "layer-jax")


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
    """``model`` with Keras' own Conv3D and MaxPooling3D layers (same weights)."""
    import keras

    from kerasbrain.layers import FastConv3D, FastMaxPooling3D

    def clone(layer):
        if isinstance(layer, FastConv3D):
            return keras.layers.Conv3D.from_config(layer.get_config())
        if isinstance(layer, FastMaxPooling3D):
            return keras.layers.MaxPooling3D(layer.pool_size, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    plain.set_weights(model.get_weights())
    return plain


def _keras_worker(shape, batch, repeats, plain=False):
    import keras

    from kerasbrain.applications import SFCN

    x, y = _data(shape, batch)
    model = SFCN(weights=None, input_shape=(*shape, 1), classes=CLASSES)
    if plain:
        model = _plain(model)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.KLDivergence())
    predict = _time(lambda: model.predict_on_batch(x[..., None]), repeats)
    train = _time(lambda: model.train_on_batch(x[..., None], y), repeats)
    return {"framework": f"{'plain ' if plain else ''}keras/{keras.backend.backend()}",
            "predict": predict[:2], "train": train[:2], "train_cpu": train[2],
            "params": int(sum(np.prod(w.shape) for w in model.trainable_weights))}


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
            "threads": torch.get_num_threads()}


def _parse_env(text):
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if not pairs or any(len(p) != 2 or not p[0] for p in pairs):
        raise argparse.ArgumentTypeError(f"--env expects NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return dict(pairs)


def _run_worker(worker, args, extra_env=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    if worker != "torch":
        env["KERAS_BACKEND"] = worker.rsplit("-", 1)[-1]
    command = [sys.executable, os.path.abspath(__file__), "--worker", worker,
               "--size", *map(str, args.size), "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--layer", *map(str, args.layer)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"framework": worker, "env": extra_env or {}, "error": " | ".join(tail)}
    return {**json.loads(lines[-1]), "env": extra_env or {}}


def _print_layers(layers):
    names = ("matmul", "forward", "input_grad", "kernel_grad", "input_grad_as_forward",
             "kernel_grad_as_forward")
    print(f"{'GFLOP/s (x forward)':<32}" + "".join(f"{n.replace('_as_forward', ' fwd'):>18}" for n in names))
    for row in layers:
        label = f"{row['framework']} {' '.join(f'{k}={v}' for k, v in row['env'].items())}"
        if "error" in row:
            print(f"{label:<32} error: {row['error']}")
            continue
        print(f"{label[:31]:<32}" + "".join(
            f"{row['gflops'][n]:>10.1f} ({row['ratio_to_forward'][n]:.2f})" for n in names))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="64x96x64 volumes, batch 2; a 1x40x48x40 convolution layer")
    parser.add_argument("--size", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--plain", default="tensorflow",
                        help="backends of the plain Keras rows (comma-separated; '' for none)")
    parser.add_argument("--env", type=_parse_env, action="append", default=[],
                        help="NAME=VALUE[,NAME=VALUE]: more TensorFlow rows (kerasbrain, plain, "
                             "layer) with these environment variables (repeatable)")
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
        if args.worker.startswith("layer-"):
            result = conv_rates.measure(args.layer, repeats=args.repeats)
        elif args.worker == "torch":
            result = _torch_worker(args.size, args.batch, args.repeats)
        else:
            result = _keras_worker(args.size, args.batch, args.repeats,
                                   plain=args.worker.startswith("plain-"))
        print(json.dumps(result))
        return 0

    info = conv_rates.cpu_info()
    frameworks = [f for f in args.frameworks.split(",") if f]
    jobs = [(f, None) for f in frameworks]
    jobs += [(f"plain-{b}", None) for b in args.plain.split(",") if b]
    env_workers = ["tensorflow"] + (["plain-tensorflow"] if "tensorflow" in args.plain.split(",") else [])
    jobs += [(worker, env) for env in args.env for worker in env_workers]
    rows = [_run_worker(worker, args, env) for worker, env in jobs]
    layer_jobs = [] if args.no_layers else [
        (f"layer-{b}", None) for b in ("tensorflow", "jax") if b in frameworks]
    layer_jobs += [("layer-tensorflow", env) for env in args.env if not args.no_layers]
    layers = [_run_worker(worker, args, env) for worker, env in layer_jobs]
    print(f"SFCN step time per volume, input {'x'.join(map(str, args.size))}, batch "
          f"{args.batch}, median (min) of {args.repeats} after one warm-up; {info['cpus']} CPUs, "
          f"{info['cpu_model']}, load {info['load_average'][0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'framework':<44} {'predict s/vol':>16} {'train step s/vol':>18} {'user/sys s':>12}")
    for row in rows:
        label = f"{row['framework']} {' '.join(f'{k}={v}' for k, v in row['env'].items())}"
        if "error" in row:
            print(f"{label:<44} error: {row['error']}")
            continue
        p = [t / args.batch for t in row["predict"]]
        t = [t / args.batch for t in row["train"]]
        row["predict_s_per_volume"], row["train_step_s_per_volume"] = p[0], t[0]
        cpu = row["train_cpu"]
        print(f"{label[:44]:<44} {p[0]:>7.3f} ({p[1]:.3f}) {t[0]:>8.3f} ({t[1]:.3f}) "
              f"{cpu['user_s']:>6.1f}/{cpu['system_s']:.1f}")
    if layers:
        print(f"\n3x3x3 convolution, batch {args.layer[0]}, {'x'.join(map(str, args.layer[1:]))}, "
              f"{conv_rates.CHANNELS[0]} -> {conv_rates.CHANNELS[1]} channels, float32, best of "
              f"{args.repeats}")
        _print_layers(layers)
    result = {"benchmark": "sfcn_step", "size": list(args.size), "batch": args.batch,
              "repeats": args.repeats, **info, "load_average_end": list(os.getloadavg()),
              "results": rows, "layers": layers}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
