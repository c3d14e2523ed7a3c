"""Self-supervised pretraining on kerasbrain's synthetic world (CPU-sized).

The demo's cohorts (`kerasbrain.demo.cohorts`): a large multi-site cohort and a small one
from an unseen site. A tiny SFCN (32^3 voxels) is pretrained on the large cohort without
labels (SimCLR, y-aware with 30% of the ages missing, masked-volume SimMIM), and, beside
it, with labels (the demo's supervised multi-task pretraining); after pretraining, every
backbone's BatchNorm statistics are those of the unaugmented pretraining scans. Then, on
the unseen site's disease label (`kb.transfer.learning_curve`, same draws for every
backbone, BatchNorm momentum suited to the short fine-tuning runs, the same for scratch):
fine-tuning (``full``) vs training from scratch, and the frozen features' linear probe
(``linear``) vs a randomly initialised backbone's (as initialised, and with its BatchNorm
statistics set on the pretraining scans). Also: ridge R^2 of age from each backbone's
features on held-out scans, and training throughput (volumes/s) of each pretext task
beside supervised training of the same backbone. Prints a table, the targets' margins and
a JSON line; writes ``results.json``, the pretrained backbones and resumable cells to
``--out``. ``--throughput-only`` measures throughput alone (``--shape``, ``--filters``:
e.g. 64^3 with the published SFCN widths).

    KERAS_BACKEND=tensorflow PYTHONPATH=. nice -n 5 python benchmarks/pretraining_synthetic.py \
        --out runs/pretraining_synthetic
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import pandas as pd

import kerasbrain as kb
from kerasbrain import demo
from kerasbrain.datasets.synthetic import make_cohort
from kerasbrain.files import write_json


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def fresh_backbone(config, seed, filters=None):
    keras.utils.set_random_seed(seed)
    return kb.applications.SFCN(weights=None, include_top=False, input_shape=(*config.shape, 1),
                                pooling="avg", filters=filters or config.filters, dropout=0.0)


def settle_batchnorm(backbone, steps):
    """BatchNorm moving statistics must settle within a short run (as the demo does)."""
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(min(0.99, max(0.8, 1.0 - 10.0 / steps)))


def pretrainer(method, backbone, args, seed):
    if method == "masked":
        return kb.pretraining.MaskedVolume(backbone, mask_ratio=0.6, patch_size=8, seed=seed)
    kernel = ("age", args.sigma) if method == "yaware" else None
    return kb.pretraining.Contrastive(backbone, projection_dim=64, temperature=args.temperature,
                                      kernel=kernel, seed=seed)


def pretrain(method, x, table, config, args):
    """-> (backbone, seconds, history) for method in simclr | yaware | masked | supervised."""
    if method == "supervised":
        start = time.perf_counter()
        model, history = demo.pretrain(x, table, config)
        return kb.transfer.heads.split(model)[0], time.perf_counter() - start, history.history
    backbone = fresh_backbone(config, config.seed)
    settle_batchnorm(backbone, args.ssl_epochs * int(np.ceil(len(x) / args.batch_size)))
    model = pretrainer(method, backbone, args, config.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.ssl_learning_rate))
    y = None
    if method == "yaware":  # the demo's share of missing labels: those volumes fall back to SimCLR
        ages = table["age"].to_numpy(dtype="float32").copy()
        ages[np.random.default_rng(config.seed).random(len(ages)) < config.missing] = np.nan
        y = {"age": ages}
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.ssl_epochs, verbose=2)
    # population statistics of the unaugmented scans instead of moving averages over views
    # (as after the supervised pretraining)
    kb.transfer.adapt_batchnorm(model.backbone, x, verbose=0)
    return model.backbone, time.perf_counter() - start, history.history


def age_r2(features_train, age_train, features_test, age_test):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    ridge.fit(features_train, age_train)
    return float(ridge.score(features_test, age_test))


def throughput(methods, x, labels, config, args, rounds=4):
    """Training volumes/s of each pretext task (and supervised multi-task): the models take
    turns, one epoch each per round (the first round is warm-up), so that other load on the
    machine hits them alike; per-step times, median."""
    models = {}
    for method in methods:
        backbone = fresh_backbone(config, 1, args.filters)
        if method == "supervised":
            tasks = demo.pretraining_tasks()
            y, w = kb.tasks.encode_labels(tasks, labels.iloc[: len(x)])
            model = kb.models.multitask(backbone, tasks, dropout=0.2)
        else:
            model = pretrainer(method, backbone, args, 1)
            y = {"age": labels["age"].to_numpy("float32")[: len(x)]} if method == "yaware" else None
            w = None
        model.compile(optimizer="adam")
        models[method] = (model, y, w)
    seconds = {method: [] for method in methods}
    for round_ in range(rounds):
        for method, (model, y, w) in models.items():
            timer = StepTimer()
            model.fit(x, y, sample_weight=w, batch_size=args.batch_size, epochs=1, verbose=0,
                      callbacks=[timer])
            if round_:
                seconds[method] += timer.seconds
    return {method: args.batch_size / float(np.median(values)) for method, values in seconds.items()}


def margins(auc, sizes):
    """The targets: self-supervised fine-tuning minus scratch, and each self-supervised
    linear probe minus the better of the two random backbones' probes (median AUC)."""
    out = {}
    random = [s for s in ("random:linear", "random-bn:linear") if s in auc.index]
    for name in ("simclr", "masked"):
        for kind, reference in (("full", ["scratch"]), ("linear", random)):
            row = f"{name}:{kind}"
            if row in auc.index and all(r in auc.index for r in reference) and reference:
                out[f"{row} - {' | '.join(reference)}"] = {
                    int(n): float(auc.loc[row, n] - max(auc.loc[r, n] for r in reference)) for n in sizes}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-pretrain", type=int, default=400)
    parser.add_argument("--ssl-epochs", type=int, default=30)
    parser.add_argument("--ssl-learning-rate", type=float, default=1e-3)
    parser.add_argument("--supervised-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, default=5.0, help="y-aware kernel width (years)")
    parser.add_argument("--methods", nargs="+", default=["simclr", "yaware", "masked", "supervised"])
    parser.add_argument("--finetune", nargs="+", default=["simclr", "masked", "supervised"],
                        help="backbones that also get fine-tuning (full) rows; all get the linear probe")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--throughput-volumes", type=int, default=96)
    parser.add_argument("--out", default="runs/pretraining_synthetic")
    parser.add_argument("--throughput-only", action="store_true", help="measure throughput only")
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 32, 32], help="with --throughput-only")
    parser.add_argument("--filters", type=int, nargs=6, help="SFCN widths (default: the demo's)")
    args = parser.parse_args()
    if args.throughput_only:
        config = demo.DemoConfig(n_pretrain=args.throughput_volumes, shape=tuple(args.shape))
        x, labels = make_cohort(args.throughput_volumes, config.shape, sites=config.pretrain_sites)
        speed = throughput(("supervised", "simclr", "yaware", "masked"), demo._normalise(x), labels, config, args)
        print(json.dumps({"shape": args.shape, "filters": args.filters or config.filters,
                          "batch_size": args.batch_size, "volumes_per_second": speed,
                          "throughput_ratio": {m: v / speed["supervised"] for m, v in speed.items()},
                          "load_average": os.getloadavg(), "backend": keras.backend.backend()}))
        return
    os.makedirs(os.path.join(args.out, "backbones"), exist_ok=True)
    config = demo.DemoConfig(n_pretrain=args.n_pretrain, sizes=tuple(args.sizes), resamples=args.resamples,
                             pretrain_epochs=args.supervised_epochs)
    if args.filters:
        config.filters = tuple(args.filters)
    start = time.perf_counter()
    x_large, large, x_small, small = demo.cohorts(config)
    x_held, held = make_cohort(150, config.shape, sites=config.pretrain_sites, seed=config.seed + 2,
                               id_prefix="sub-h")
    x_held = demo._normalise(x_held)
    print(f"cohorts: {len(x_large)} + {len(x_small)} + {len(x_held)} ({time.perf_counter() - start:.0f} s)")

    results = {"config": vars(args), "pretraining": {}}
    backbones = {"random": fresh_backbone(config, 12345)}
    # the same untrained weights, BatchNorm statistics set on the pretraining scans
    backbones["random-bn"] = kb.transfer.adapt_batchnorm(kb.transfer.copy_model(backbones["random"]),
                                                         x_large, verbose=0)
    for method in args.methods:
        path = os.path.join(args.out, "backbones", f"{method}.keras")
        if os.path.exists(path):
            backbones[method] = keras.saving.load_model(path)
            continue
        backbone, seconds, history = pretrain(method, x_large, large, config, args)
        backbone.save(path + ".partial.keras")
        os.replace(path + ".partial.keras", path)
        backbones[method] = backbone
        results["pretraining"][method] = {"seconds": seconds, "loss": [float(v) for v in history["loss"]]}
        print(f"pretrained {method} in {seconds:.0f} s; loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}")

    pool, test = np.arange(config.n_test, len(small)), np.arange(config.n_test)
    data = (x_small[pool], small.iloc[pool].reset_index(drop=True))
    held_out = (x_small[test], small.iloc[test].reset_index(drop=True))
    # BatchNorm moving averages must follow a fine-tuning run of a few tens of steps;
    # the momentum is part of the architecture, so scratch (a clone) gets the same
    steps = config.finetune_epochs * int(np.ceil(min(config.sizes) / config.finetune_batch_size))
    tables = []
    for name, backbone in backbones.items():
        strategies = ("full", "linear") if name in args.finetune else ("linear",)
        if name == args.methods[0]:
            strategies = ("scratch", *strategies)
        tuned = kb.transfer.copy_model(backbone)
        settle_batchnorm(tuned, steps)
        table = kb.transfer.learning_curve(
            data, [kb.tasks.Binary("disease")], sizes=config.sizes, resamples=config.resamples,
            strategies=strategies, test=held_out, backbone=tuned, epochs=config.finetune_epochs,
            batch_size=config.finetune_batch_size, out_dir=os.path.join(args.out, f"curve_{name}"),
            seed=config.seed, plot=False, finetune_kwargs={"learning_rate": config.learning_rate / 3})
        table["strategy"] = [s if s == "scratch" else f"{name}:{s}" for s in table["strategy"]]
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    auc = table[table.metric == "auc"].groupby(["strategy", "size"])["value"].median().unstack("size")
    results["median_auc"] = {s: {int(k): float(v) for k, v in row.items()} for s, row in auc.iterrows()}
    results["margins"] = margins(auc, config.sizes)

    results["age_r2"] = {}
    for name, backbone in backbones.items():
        large_features = kb.transfer.extract_features(backbone, x_large)
        results["age_r2"][name] = {
            "held_out_sites_0_4": age_r2(large_features, large["age"], kb.transfer.extract_features(backbone, x_held),
                                         held["age"]),
            "unseen_site": age_r2(kb.transfer.extract_features(backbone, data[0]), data[1]["age"],
                                  kb.transfer.extract_features(backbone, held_out[0]), held_out[1]["age"]),
        }

    speed = throughput(("supervised", "simclr", "yaware", "masked"), x_large[: args.throughput_volumes],
                       large, config, args)
    results["volumes_per_second"] = speed
    results["throughput_ratio"] = {m: v / speed["supervised"] for m, v in speed.items()}
    results["seconds"] = time.perf_counter() - start
    results["load_average"] = os.getloadavg()
    results["backend"] = keras.backend.backend()

    print(f"\nmedian AUC over {config.resamples} resamples (unseen site, disease; {config.n_test} held-out scans):")
    print(auc.round(3).to_string())
    print("\ntargets (median AUC differences; >= 0.10 wanted):")
    for row, values in results["margins"].items():
        print(f"  {row:45s} " + "  ".join(f"N={n}: {v:+.3f}" for n, v in values.items()))
    print("\nage ridge R^2 from frozen features (fitted on pretraining scans / unseen-site pool):")
    print(pd.DataFrame(results["age_r2"]).T.round(3).to_string())
    print(f"\ntraining throughput (volumes/s, batch {args.batch_size}):")
    for m, v in speed.items():
        print(f"  {m:10s} {v:6.1f}  ({results['throughput_ratio'][m]:.2f}x supervised)")
    print(f"\nload average {results['load_average']}, {results['seconds']:.0f} s")
    write_json(os.path.join(args.out, "results.json"), results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
