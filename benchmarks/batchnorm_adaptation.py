"""BatchNorm momentum and adaptation (AdaBN) in the demo's synthetic world, reduced size.

Cohorts, tasks and settings are the demo's (`kerasbrain.demo`), with fewer subjects and
epochs (``--n-pretrain`` 320, ``--epochs`` 6, batches of 8: about 200 training steps).

(b) Momentum: the demo's multi-task SFCN is pretrained twice on the same data with the
    same seed, BatchNorm momentum 0.99 (Keras' default, SFCN's before) and 0.9 (SFCN's
    now). Validation age MAE (the last 15 %, as the demo) in inference mode, with batch
    statistics (batches of 8, dropout off: what the network sees in training), and in
    inference mode after `adapt_batchnorm` on the training scans.
(a) Adaptation: with each pretrained model, brain-age MAE on the unseen site (no
    fine-tuning) before and after `adapt_batchnorm` on all the site's scans (what
    `kerasbrain predict --adapt` does); MAE on the site's held-out scans after adapting on
    n of its other scans; and the disease AUC at the smallest training size of the
    learning curve for frozen and linear, without and with adaptation to the draw.

    KERAS_BACKEND=tensorflow PYTHONPATH=. nice -n 5 python benchmarks/batchnorm_adaptation.py \
        --json benchmarks/results/batchnorm_adaptation_2cpu.json
"""

import argparse
import json
import os
import platform
import time
import warnings

import keras
import numpy as np

from kerasbrain import applications, demo, models, tasks, transfer
from kerasbrain.files import write_json


def pretrain(x, table, config, momentum):
    """`demo.pretrain` with a chosen BatchNorm momentum; returns ``(model, val_index)``."""
    task_list, y, w = demo.pretraining_labels(table, config)
    keras.utils.set_random_seed(config.seed)
    backbone = applications.SFCN(weights=None, include_top=False, input_shape=(*config.shape, 1),
                                 pooling="avg", filters=config.filters, dropout=0.0,
                                 bn_momentum=momentum)
    model = models.multitask(backbone, task_list, dropout=0.2)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    history = model.fit(x, y, sample_weight=w, epochs=config.pretrain_epochs,
                        batch_size=config.batch_size, validation_split=0.15, verbose=0)
    steps = len(history.epoch) * int(np.ceil(int(len(x) * 0.85) / config.batch_size))
    return model, np.arange(int(len(x) * 0.85), len(x)), steps


def age_mae(model, x, age, batch_statistics=False, batch_size=8):
    """Age MAE (years) in inference mode, or with each batch's own BatchNorm statistics."""
    if not batch_statistics:
        predicted = model.predict(x, batch_size=batch_size, verbose=0)["age"][:, 0]
    else:
        copy = transfer.copy_model(model)
        for layer in copy._flatten_layers(recursive=True):
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        predicted = np.concatenate([np.asarray(copy(x[i:i + batch_size], training=True)["age"])[:, 0]
                                    for i in range(0, len(x), batch_size)])
    return float(np.mean(np.abs(predicted - np.asarray(age, dtype="float64"))))


def adapted(model, volumes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", transfer.BatchNormAdaptationWarning)
        return transfer.adapt_batchnorm(transfer.copy_model(model), volumes, verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-pretrain", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=6, help="pretraining epochs")
    parser.add_argument("--batch-size", type=int, default=8, help="pretraining batch size")
    parser.add_argument("--n-small", type=int, default=140)
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--size", type=int, default=12, help="learning-curve training size")
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--adapt-sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.99, 0.9])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    config = demo.DemoConfig(n_pretrain=args.n_pretrain, pretrain_epochs=args.epochs,
                             batch_size=args.batch_size, n_small=args.n_small, n_test=args.n_test,
                             sizes=(args.size,), resamples=args.resamples,
                             finetune_epochs=args.finetune_epochs)
    start = time.perf_counter()
    x_large, large, x_small, small = demo.cohorts(config)
    age_small = small["age"].to_numpy(dtype="float64")
    test, pool = np.arange(config.n_test), np.arange(config.n_test, len(small))
    rows = []
    for momentum in args.momenta:
        model, val, steps = pretrain(x_large, large, config, momentum)
        x_val, age_val = x_large[val], large["age"].to_numpy(dtype="float64")[val]
        train = np.setdiff1d(np.arange(len(x_large)), val)
        row = {"momentum": momentum, "steps": steps,
               "val_mae_inference": age_mae(model, x_val, age_val),
               "val_mae_batch_statistics": age_mae(model, x_val, age_val, batch_statistics=True),
               "val_mae_adapted_to_training": age_mae(adapted(model, x_large[train]), x_val, age_val),
               "site_mae": age_mae(model, x_small, age_small),
               "site_mae_adapted": age_mae(adapted(model, x_small), x_small, age_small),
               "site_test_mae": age_mae(model, x_small[test], age_small[test])}
        row["val_gap"] = row["val_mae_inference"] - row["val_mae_batch_statistics"]
        rng = np.random.default_rng(0)
        for n in args.adapt_sizes:
            values = [age_mae(adapted(model, x_small[rng.choice(pool, n, replace=False)]),
                              x_small[test], age_small[test]) for _ in range(args.resamples)]
            row[f"site_test_mae_adapted_{n}"] = float(np.median(values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", transfer.BatchNormAdaptationWarning)
            table = transfer.learning_curve(
                (x_small[pool], small.iloc[pool].reset_index(drop=True)), [tasks.Binary("disease")],
                sizes=config.sizes, resamples=config.resamples, strategies=("frozen", "linear"),
                test=(x_small[test], small.iloc[test].reset_index(drop=True)),
                backbone=transfer.heads.split(model)[0], epochs=config.finetune_epochs,
                batch_size=config.finetune_batch_size, seed=config.seed, adapt_batchnorm=True,
                finetune_kwargs={"learning_rate": config.learning_rate / 3,
                                 "frozen": {"learning_rate": config.learning_rate * 10 / 3, "dropout": 0.0}})
        auc = table[table.metric == "auc"].groupby("strategy")["value"].median()
        row.update({f"auc_{strategy}": float(value) for strategy, value in auc.items()})
        rows.append(row)
        print(f"[{time.perf_counter() - start:.0f} s] momentum {momentum}: " +
              ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k not in ("momentum", "steps")), flush=True)

    print(f"\nsynthetic demo world, reduced: {config.n_pretrain} pretraining scans "
          f"({'x'.join(map(str, config.shape))}), batches of {config.batch_size}, "
          f"{config.pretrain_epochs} epochs; unseen site {config.unseen_site}: {config.n_small} scans, "
          f"{config.n_test} held out; AUC: median of {config.resamples} draws of N={args.size}")
    print("\n(b) validation age MAE (years) after pretraining")
    print(f"{'momentum':>9} {'steps':>6} {'inference':>10} {'batch stats':>12} {'gap':>6} {'adapted':>8}")
    for r in rows:
        print(f"{r['momentum']:>9} {r['steps']:>6} {r['val_mae_inference']:>10.2f} "
              f"{r['val_mae_batch_statistics']:>12.2f} {r['val_gap']:>6.2f} {r['val_mae_adapted_to_training']:>8.2f}")
    print("\n(a) unseen site, no fine-tuning: age MAE (years); disease AUC at the smallest N")
    print(f"{'momentum':>9} {'all':>6} {'adapted':>8} | held-out: {'none':>5} "
          + " ".join(f"{'n=' + str(n):>6}" for n in args.adapt_sizes)
          + " | frozen  +adapt  linear  +adapt")
    for r in rows:
        print(f"{r['momentum']:>9} {r['site_mae']:>6.2f} {r['site_mae_adapted']:>8.2f} | "
              f"{'':>10}{r['site_test_mae']:>5.2f} "
              + " ".join(f"{r[f'site_test_mae_adapted_{n}']:>6.2f}" for n in args.adapt_sizes)
              + f" | {r.get('auc_frozen', np.nan):6.3f} {r.get('auc_frozen-adapted', np.nan):7.3f} "
              f"{r.get('auc_linear', np.nan):7.3f} {r.get('auc_linear-adapted', np.nan):7.3f}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {"benchmark": "batchnorm_adaptation", "backend": keras.backend.backend(),
              "cpu": platform.processor() or platform.machine(), "load_average": load,
              "seconds": round(time.perf_counter() - start, 1), "args": vars(args), "rows": rows}
    print(json.dumps(result))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
