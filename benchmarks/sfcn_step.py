"""SFCN predict and train-step time per volume: Keras (TensorFlow, JAX) beside PyTorch.

Each framework runs in its own subprocess (one Keras backend per process), on the same
random volumes, with the published architecture (channels 32, 64, 128, 256, 256, 64; 40
outputs; Peng et al.'s PyTorch SFCN for the reference). The train step is one SGD update
with a KL-divergence loss on soft labels, as Peng et al. trained it.

    PYTHONPATH=. python benchmarks/sfcn_step.py            # 160x192x160, batch 1
    PYTHONPATH=. python benchmarks/sfcn_step.py --quick    # 64x80x64, batch 2

Prints a table and a JSON line; ``--json FILE`` also writes the JSON. PyTorch is optional
(skipped when not installed).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

FILTERS = (32, 64, 128, 256, 256, 64)
CLASSES = 40
FRAMEWORKS = ("tensorflow", "jax", "torch")


def _data(shape, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = rng.dirichlet(np.ones(CLASSES), size=batch).astype("float32")
    return x, y


def _time(fn, repeats):
    fn()  # warm-up: compilation, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def _keras_worker(shape, batch, repeats):
    import keras

    from kerasbrain.applications import SFCN

    x, y = _data(shape, batch)
    model = SFCN(weights=None, input_shape=(*shape, 1), classes=CLASSES)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.KLDivergence())
    predict = _time(lambda: model.predict_on_batch(x[..., None]), repeats)
    train = _time(lambda: model.train_on_batch(x[..., None], y), repeats)
    return {"framework": f"keras/{keras.backend.backend()}", "predict": predict, "train": train,
            "params": model.count_params()}


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

    return {"framework": f"torch {torch.__version__}", "predict": _time(predict, repeats),
            "train": _time(train, repeats),
            "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads()}


def _run_worker(framework, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if framework != "torch":
        env["KERAS_BACKEND"] = framework
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework,
               "--size", *map(str, args.size), "--batch", str(args.batch),
               "--repeats", str(args.repeats)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"framework": framework, "error": " | ".join(tail)}
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64x80x64 volumes, batch 2")
    parser.add_argument("--size", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--json", help="also write the JSON results here")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = tuple(args.size or ((64, 80, 64) if args.quick else (160, 192, 160)))
    args.batch = args.batch or (2 if args.quick else 1)
    if any(s % 32 for s in args.size):
        parser.error(f"--size must be multiples of 32 (five 2x poolings), got {args.size}")

    if args.worker:
        worker = _torch_worker if args.worker == "torch" else _keras_worker
        print(json.dumps(worker(args.size, args.batch, args.repeats)))
        return 0

    rows = [_run_worker(f, args) for f in args.frameworks.split(",")]
    print(f"SFCN step time per volume, input {'x'.join(map(str, args.size))}, batch "
          f"{args.batch}, median (min) of {args.repeats} after one warm-up, {os.cpu_count()} CPUs")
    print(f"{'framework':<20} {'predict s/vol':>18} {'train step s/vol':>20} {'params':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['framework']:<20} error: {row['error']}")
            continue
        p = [t / args.batch for t in row["predict"]]
        t = [t / args.batch for t in row["train"]]
        row["predict_s_per_volume"], row["train_step_s_per_volume"] = p[0], t[0]
        print(f"{row['framework']:<20} {p[0]:>9.3f} ({p[1]:.3f}) {t[0]:>11.3f} ({t[1]:.3f}) "
              f"{row['params']:>10,}")
    result = {"benchmark": "sfcn_step", "size": list(args.size), "batch": args.batch,
              "repeats": args.repeats, "cpus": os.cpu_count(), "results": rows}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
