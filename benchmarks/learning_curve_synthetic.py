"""Learning curve of transfer strategies on a synthetic cohort (CPU-sized).

Source cohort: volumes whose central sphere's brightness is a latent value, plus a
second nuisance sphere and noise; a tiny SFCN is pretrained to regress the latent value.
Target task: ``high`` = latent > 0.5 (binary), drawn from a separate pool; evaluated on a
fixed held-out set. Strategies: scratch, frozen, full (fine-tuned) and linear (logistic
regression on the pretrained features). Prints the median/IQR table, paired Wilcoxon
tests and a JSON line; writes results, plot and resumable cells to ``--out``.

    KERAS_BACKEND=tensorflow PYTHONPATH=. python benchmarks/learning_curve_synthetic.py \
        --sizes 25 50 100 --resamples 5 --epochs 5 --out runs/learning_curve
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import pandas as pd

import kerasbrain as kb


def cohort(n, seed, size=32):
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 1, n).astype("float32")
    nuisance = rng.uniform(0, 1, n).astype("float32")
    grid = np.stack(np.meshgrid(*[np.arange(size) - size / 2 + 0.5] * 3, indexing="ij"), -1)
    centre = np.linalg.norm(grid, axis=-1) < size / 4
    side = np.linalg.norm(grid - np.array([size / 4, size / 4, 0]), axis=-1) < size / 8
    x = (latent[:, None, None, None] * centre + nuisance[:, None, None, None] * side
         + rng.normal(0, 0.4, (n, size, size, size)))
    labels = pd.DataFrame({"latent": latent, "high": (latent > 0.5).astype(int)})
    return x[..., None].astype("float32"), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--strategies", nargs="+", default=["scratch", "frozen", "full", "linear"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--pretrain", type=int, default=300, help="source cohort size")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--pool", type=int, default=150)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--out", default="runs/learning_curve_synthetic")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    start = time.perf_counter()
    weights = os.path.join(args.out, "pretrained.keras")
    if os.path.exists(weights):
        pretrained = keras.models.load_model(weights)
    else:
        keras.utils.set_random_seed(0)
        x_source, source = cohort(args.pretrain, 1)
        backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=(32, 32, 32, 1),
                                        pooling="avg", filters=(4, 4, 4, 4, 4, 4))
        pretrained = kb.models.multitask(backbone, [kb.tasks.Regression("latent", standardize=(0.5, 0.29))],
                                         learning_rate=3e-3, dropout=0.0)
        pretrained.fit(x_source, {"latent": source["latent"].to_numpy()}, batch_size=16,
                       epochs=args.pretrain_epochs, verbose=2)
        pretrained.save(weights + ".partial.keras")
        os.replace(weights + ".partial.keras", weights)
    pretrain_seconds = time.perf_counter() - start

    data = cohort(args.pool, 2)
    test = cohort(args.test, 3)
    tasks = [kb.tasks.Binary("high")]
    start = time.perf_counter()
    table = kb.transfer.learning_curve(
        data, tasks, sizes=args.sizes, resamples=args.resamples, strategies=args.strategies,
        test=test, backbone=pretrained, epochs=args.epochs, batch_size=25, out_dir=args.out, seed=0,
        finetune_kwargs={"learning_rate": 3e-3, "dropout": 0.0})
    curve_seconds = time.perf_counter() - start

    summary = kb.transfer.summarize(table)
    auc = summary[summary.metric == "auc"].pivot_table(index="size", columns="strategy",
                                                     values=["median", "q25", "q75"])
    print("\nAUC on the held-out set (median [q25, q75] over resamples)")
    print(f"{'N':>5} " + " ".join(f"{s:>22}" for s in args.strategies))
    for size in args.sizes:
        cells = [f"{auc.loc[size, ('median', s)]:.3f} [{auc.loc[size, ('q25', s)]:.3f}, {auc.loc[size, ('q75', s)]:.3f}]"
                 for s in args.strategies]
        print(f"{size:>5} " + " ".join(f"{c:>22}" for c in cells))
    tests = kb.transfer.compare(table)
    tests = tests[(tests.metric == "auc")]
    print("\nPaired Wilcoxon signed-rank tests (AUC)")
    print(tests[["size", "a", "b", "median_difference", "p_value", "n"]].to_string(index=False))
    cell_seconds = table.groupby("strategy")["seconds"].median()
    print(f"\npretraining {pretrain_seconds:.0f} s (0 if loaded); learning curve {curve_seconds:.0f} s this run;"
          " median seconds per cell: " + ", ".join(f"{k} {v:.1f}" for k, v in cell_seconds.items()))
    print(json.dumps({
        "benchmark": "learning_curve_synthetic", "backend": keras.backend.backend(),
        "sizes": args.sizes, "resamples": args.resamples, "epochs": args.epochs,
        "auc_median": {s: {int(n): float(auc.loc[n, ("median", s)]) for n in args.sizes} for s in args.strategies},
        "seconds": {"pretrain": pretrain_seconds, "curve": curve_seconds,
                    "per_cell_median": {k: float(v) for k, v in cell_seconds.items()}},
    }))


if __name__ == "__main__":
    main()
