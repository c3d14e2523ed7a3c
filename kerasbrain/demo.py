"""The transfer-learning workflow end to end on synthetic data, in minutes on a laptop.

1. generate a large multi-site cohort and a small cohort from an unseen site
   (`kerasbrain.datasets.synthetic`: synthetic images with known effects);
2. pretrain a multi-task SFCN (reduced width and resolution) on the large cohort
   (age, sex and ventricle volume, with a share of every label missing);
3. predict brain age on the unseen site before and after adapting the BatchNorm
   statistics to its scans (`kerasbrain.transfer.adapt_batchnorm`);
4. run a learning curve on the small cohort's disease label: training sizes x
   resamples x strategies (scratch, frozen, full fine-tuning, linear on features; frozen
   and linear also with BatchNorm adapted to the training draw), each evaluated on one
   fixed held-out set;
5. write the pretrained model (``pretrained.keras`` + ``pretrained.json``, ready for
   ``kerasbrain predict``), the results CSV, a learning-curve PNG and a brain-age PNG.

    from kerasbrain import demo
    result = demo.run("demo-output", demo.DemoConfig.quick())

The same from a shell: ``kerasbrain demo --out demo-output --quick`` (or
``python -m kerasbrain.demo``).
"""

import argparse
import dataclasses
import itertools
import os
import shutil
import sys
import time

import numpy as np

from kerasbrain.datasets.synthetic import make_cohort
from kerasbrain.files import save_figure, write_text

STRATEGIES = ("scratch", "frozen", "full", "linear")
ADAPTED = ("frozen-adapted", "linear-adapted")


@dataclasses.dataclass
class DemoConfig:
    """Sizes of the demo. The defaults run in a few minutes on 2 CPU cores.

    Attributes:
        shape: volume grid (voxels); the field of view is 192 mm.
        n_pretrain: subjects in the large cohort, spread over ``pretrain_sites``.
        n_small: subjects in the small cohort from ``unseen_site``; ``n_test`` of them are
            the fixed held-out set, the rest the pool that training sets are drawn from.
        sizes, resamples: learning-curve training sizes and draws per size.
        small_age_range: ages of the small (clinical-like) cohort.
        missing: share of each pretraining label that is removed.
        filters: SFCN widths (six blocks).
        pretrain_epochs, finetune_epochs, batch_size (pretraining), finetune_batch_size,
            learning_rate (pretraining; fine-tuning uses a third of it, a frozen
            backbone's new head, a linear probe without dropout, ten times it): training
            settings.
        adapt_batchnorm: add the frozen and linear strategies with BatchNorm statistics
            adapted to each training draw.
        ssl_epochs: epochs of self-supervised (SimCLR) pretraining on the large cohort
            without labels; its backbone adds the strategies ``ssl_full`` and
            ``ssl_linear`` to the learning curve (0 leaves them out).
        seed: seeds the cohorts, the draws and the weights.
    """

    shape: tuple = (32, 32, 32)
    n_pretrain: int = 500
    pretrain_sites: tuple = (0, 1, 2, 3, 4)
    n_small: int = 180
    n_test: int = 80
    unseen_site: int = 7
    sizes: tuple = (16, 32, 64)
    resamples: int = 3
    small_age_range: tuple = (55.0, 85.0)
    missing: float = 0.3
    filters: tuple = (4, 8, 16, 32, 32, 32)
    pretrain_epochs: int = 10
    finetune_epochs: int = 12
    batch_size: int = 16
    finetune_batch_size: int = 8
    learning_rate: float = 3e-3
    strategies: tuple = STRATEGIES
    adapt_batchnorm: bool = True
    ssl_epochs: int = 0
    seed: int = 0

    @classmethod
    def quick(cls):
        """About half the work of the default."""
        return cls(n_pretrain=320, n_small=140, n_test=60, sizes=(12, 24, 48), pretrain_epochs=8,
                   finetune_epochs=10)

    @classmethod
    def tiny(cls):
        """Seconds: for tests (one training size; scratch, frozen and linear only)."""
        return cls(n_pretrain=128, n_small=72, n_test=40, sizes=(24,), resamples=3,
                   strategies=("scratch", "frozen", "linear"), filters=(4, 8, 8, 8, 8, 8),
                   pretrain_epochs=6, finetune_epochs=6, batch_size=8, ssl_epochs=0)


@dataclasses.dataclass
class DemoResult:
    """What `run` produced: the learning-curve table, the comparison at the smallest
    size, and the paths of the files written."""

    table: object
    comparison: dict
    pretrain_metrics: dict
    files: dict


def preprocessor(config):
    """The preprocessing of the demo's inputs (stored with the pretrained model)."""
    from kerasbrain.data import Preprocessor

    spacing = 192.0 / np.asarray(config.shape)
    return Preprocessor(orientation="RAS", spacing=tuple(spacing), shape=config.shape,
                        intensity="mean", name="kerasbrain-demo")


def cohorts(config):
    """The large multi-site cohort and the small unseen-site cohort, preprocessed.

    Returns:
        ``(x_large, table_large, x_small, table_small)``; ``x`` is ``(n, *shape, 1)``
        float32 divided by each volume's mean (what `preprocessor` does to a file).
    """
    x_large, large = make_cohort(config.n_pretrain, config.shape, sites=config.pretrain_sites,
                                 seed=config.seed)
    x_small, small = make_cohort(config.n_small, config.shape, sites=[config.unseen_site],
                                 seed=config.seed + 1, age_range=config.small_age_range,
                                 disease_prevalence=0.5, id_prefix="sub-u")
    return _normalise(x_large), large, _normalise(x_small), small


def _normalise(volumes):
    mean = volumes.mean(axis=(1, 2, 3), keepdims=True, dtype="float64")
    return (volumes / mean).astype("float32")[..., None]


def pretraining_tasks():
    from kerasbrain import tasks

    return [
        tasks.Regression("age", standardize=True),
        tasks.Binary("sex", positive="M"),
        tasks.Regression("ventricle_volume_ml", standardize=True),
    ]


def pretraining_labels(table, config):
    """The pretraining tasks and their encoded labels ``(tasks, y, sample_weight)``, with a
    share ``config.missing`` of each label removed (seeded by ``config.seed``)."""
    from kerasbrain import tasks as tasks_lib

    rng = np.random.default_rng(config.seed)
    labels = table.copy()
    for column in ("age", "sex", "ventricle_volume_ml"):
        labels[column] = labels[column].astype(object)
        labels.loc[rng.random(len(labels)) < config.missing, column] = None
    tasks = pretraining_tasks()
    y, w = tasks_lib.encode_labels(tasks, labels)
    return tasks, y, w


def pretrain(x, table, config, log=print):
    """Fit a multi-task SFCN on ``x`` with a share ``config.missing`` of each label removed.

    Returns:
        ``(model, history)``.
    """
    import keras

    from kerasbrain import applications, models, transfer

    tasks, y, w = pretraining_labels(table, config)
    keras.utils.set_random_seed(config.seed)
    backbone = applications.SFCN(weights=None, include_top=False, input_shape=(*config.shape, 1),
                                 pooling="avg", filters=config.filters, dropout=0.0)
    model = models.multitask(backbone, tasks, dropout=0.2)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    log(f"pretraining a multi-task SFCN ({backbone.count_params():,} backbone parameters) on "
        f"{len(x)} subjects for {config.pretrain_epochs} epochs; "
        f"labels present: " + ", ".join(f"{t.name} {int(w[t.name].sum())}" for t in tasks))
    history = model.fit(x, y, sample_weight=w, epochs=config.pretrain_epochs,
                        batch_size=config.batch_size, validation_split=0.15, verbose=2)
    # population statistics of the training scans instead of the moving averages of the last
    # batches (closer to the batch statistics the model trained with; docs/transfer.md)
    transfer.adapt_batchnorm(model, x[:int(len(x) * (1 - 0.15))], verbose=0)
    return model, history


def pretrain_self_supervised(x, config):
    """SimCLR (`kerasbrain.pretraining.Contrastive`) on ``x`` without labels; returns the backbone."""
    import keras

    from kerasbrain import applications, pretraining, transfer

    keras.utils.set_random_seed(config.seed)
    backbone = applications.SFCN(weights=None, include_top=False, input_shape=(*config.shape, 1),
                                 pooling="avg", filters=config.filters, dropout=0.0)
    model = pretraining.Contrastive(backbone, projection_dim=64, seed=config.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=32, epochs=config.ssl_epochs, verbose=2)
    # population statistics of the unaugmented scans, as after supervised pretraining
    return transfer.adapt_batchnorm(model.backbone, x, verbose=0)


def run(out_dir="kerasbrain-demo", config=None, log=print):
    """Run the whole demo and write its outputs to ``out_dir``. See the module docstring."""
    from kerasbrain import inference, tasks, transfer

    config = config or DemoConfig()
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()

    def step(text):
        log(f"[{time.time() - start:6.1f} s] {text}")

    step(f"generating {config.n_pretrain} synthetic subjects from sites "
         f"{list(config.pretrain_sites)} and {config.n_small} from unseen site {config.unseen_site} "
         f"({'x'.join(map(str, config.shape))} voxels)")
    x_large, large, x_small, small = cohorts(config)

    step("pretraining")
    model, history = pretrain(x_large, large, config, log=log)
    val = {k: float(v[-1]) for k, v in history.history.items() if k.startswith("val_")}
    files = {"model": os.path.join(out_dir, "pretrained.keras")}
    inference.save_model(model, files["model"], preprocessor(config), volumes=x_large[:64, ..., 0],
                         output_ranges={"age": (20.0, 90.0)}, brain_age_task="age",
                         description="kerasbrain demo: multi-task SFCN pretrained on synthetic "
                                     "volumes (age, sex, ventricle volume); not for real data")
    step(f"saved {files['model']} (+ pretrained.json with its preprocessing)")

    predicted = model.predict(x_small, verbose=0)["age"][:, 0]
    mae = float(np.mean(np.abs(predicted - small["age"])))
    pretrain_metrics = {**val, "unseen_site_age_mae": mae,
                        "unseen_site_age_r": float(np.corrcoef(predicted, small["age"])[0, 1])}
    files["brain_age_png"] = os.path.join(out_dir, "brain_age.png")
    plot_brain_age(small["age"], predicted, small["disease"], files["brain_age_png"],
                   title=f"unseen site: MAE {mae:.1f} years (no fine-tuning)")
    step(f"brain age on the unseen site without fine-tuning: MAE {mae:.2f} years, "
         f"r {pretrain_metrics['unseen_site_age_r']:.2f}")
    adapted = transfer.adapt_batchnorm(transfer.copy_model(model), x_small, verbose=0)
    predicted = adapted.predict(x_small, verbose=0)["age"][:, 0]
    pretrain_metrics["unseen_site_age_mae_adapted"] = float(np.mean(np.abs(predicted - small["age"])))
    step(f"... after adapting BatchNorm statistics to the site's {len(x_small)} scans (no labels): "
         f"MAE {pretrain_metrics['unseen_site_age_mae_adapted']:.2f} years")

    step(f"learning curve on the unseen site's disease label: sizes {list(config.sizes)}, "
         f"{config.resamples} resamples, strategies {list(config.strategies)}")
    curve_dir = os.path.join(out_dir, "learning_curve")
    shutil.rmtree(os.path.join(curve_dir, "cells"), ignore_errors=True)  # never reuse old cells
    pool, test = np.arange(config.n_test, len(small)), np.arange(config.n_test)
    adapted = [s for s in ADAPTED if config.adapt_batchnorm and s.split("-")[0] in config.strategies]
    ssl_strategies = 2 if config.ssl_epochs else 0
    total_cells = len(config.sizes) * config.resamples * (len(config.strategies) + len(adapted) + ssl_strategies)
    report_cell = _cell_reporter(step, total_cells)
    table = transfer.learning_curve(
        (x_small[pool], small.iloc[pool].reset_index(drop=True)),
        [tasks.Binary("disease")],
        sizes=config.sizes,
        resamples=config.resamples,
        strategies=config.strategies,
        test=(x_small[test], small.iloc[test].reset_index(drop=True)),
        backbone=transfer.heads.split(model)[0],  # the pretrained trunk; strategies add new heads
        epochs=config.finetune_epochs,
        batch_size=config.finetune_batch_size,
        out_dir=curve_dir,
        seed=config.seed,
        on_cell=report_cell,
        adapt_batchnorm=config.adapt_batchnorm,
        finetune_kwargs={"learning_rate": config.learning_rate / 3,
                         "frozen": {"learning_rate": config.learning_rate * 10 / 3, "dropout": 0.0}},
    )
    if config.ssl_epochs:
        import pandas as pd

        step(f"self-supervised pretraining (SimCLR, no labels) on the large cohort, {config.ssl_epochs} epochs")
        ssl = transfer.learning_curve(
            (x_small[pool], small.iloc[pool].reset_index(drop=True)), [tasks.Binary("disease")],
            sizes=config.sizes, resamples=config.resamples, strategies=("full", "linear"),
            test=(x_small[test], small.iloc[test].reset_index(drop=True)),
            backbone=pretrain_self_supervised(x_large, config), epochs=config.finetune_epochs,
            batch_size=config.finetune_batch_size, seed=config.seed, on_cell=report_cell,
            finetune_kwargs={"learning_rate": config.learning_rate / 3})
        table = pd.concat([table, ssl.assign(strategy="ssl_" + ssl["strategy"])], ignore_index=True)
        write_text(os.path.join(curve_dir, "results.csv"), table.to_csv(index=False))
        write_text(os.path.join(curve_dir, "summary.csv"), transfer.summarize(table).to_csv(index=False))
        transfer.plot_learning_curve(table, os.path.join(curve_dir, "learning_curve.png"), [tasks.Binary("disease")])
    files["results_csv"] = os.path.join(curve_dir, "results.csv")
    files["summary_csv"] = os.path.join(curve_dir, "summary.csv")
    files["learning_curve_png"] = os.path.join(curve_dir, "learning_curve.png")
    comparison = compare_at_smallest(table, config.sizes[0])
    step("done")
    return DemoResult(table, comparison, pretrain_metrics, files)


def _cell_reporter(step, total):
    """Progress line per finished learning-curve cell."""
    done = itertools.count(1)

    def report(cell):
        first = cell[0]
        auc = next((f"AUC {r['value']:.2f}" for r in cell if r["metric"] == "auc"), "")
        step(f"cell {next(done)}/{total}: N={first['size']}, resample {first['resample'] + 1}, "
             f"{first['strategy']}: {auc} ({first['seconds']:.0f} s)")

    return report


def compare_at_smallest(table, size, metric="auc"):
    """Median ``metric`` per strategy at ``size`` and whether each pretrained strategy beat scratch."""
    rows = table[(table["size"] == size) & (table["metric"] == metric)]
    medians = rows.groupby("strategy")["value"].median().to_dict()
    scratch = medians.get("scratch", np.nan)
    return {
        "size": size,
        "metric": metric,
        "medians": medians,
        "beats_scratch": {s: bool(v > scratch) for s, v in medians.items() if s != "scratch"},
    }


def plot_brain_age(age, predicted, disease, path, title=None):
    """Scatter of predicted against chronological age, patients highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    age, predicted, disease = (np.asarray(v, dtype=float) for v in (age, predicted, disease))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for value, colour, label in ((0, "tab:blue", "controls"), (1, "tab:red", "disease")):
        sel = disease == value
        ax.scatter(age[sel], predicted[sel], s=12, alpha=0.7, color=colour, label=label)
    low = min(age.min(), predicted.min()) - 2
    high = max(age.max(), predicted.max()) + 2
    ax.plot([low, high], [low, high], "k--", lw=1)
    ax.set_xlabel("chronological age (years)")
    ax.set_ylabel("predicted brain age (years)")
    ax.set_title(title or "brain age", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def summary(result):
    """The demo's report: medians per strategy and size, and the measured comparison."""
    medians = result.table.groupby(["metric", "size", "strategy"])["value"].median().unstack("strategy")
    order = [s for s in (*STRATEGIES, *ADAPTED, "ssl_full", "ssl_linear") if s in medians.columns]
    metrics = result.pretrain_metrics
    lines = [f"brain age on the unseen site without fine-tuning: MAE {metrics['unseen_site_age_mae']:.1f} "
             f"years; after adapting BatchNorm statistics to its scans: "
             f"{metrics.get('unseen_site_age_mae_adapted', float('nan')):.1f} years\n",
             "median over resamples (held-out set of the unseen site):",
             medians[order].round(3).to_string()]
    comparison = result.comparison
    scratch = comparison["medians"].get("scratch", float("nan"))
    parts = [f"{s} {comparison['medians'][s]:.3f}" for s in order if s != "scratch"]
    lines.append(f"\nat N={comparison['size']}: {comparison['metric'].upper()} "
                 f"{', '.join(parts)} vs scratch {scratch:.3f}")
    winners = [s for s, won in comparison["beats_scratch"].items() if won]
    losers = [s for s, won in comparison["beats_scratch"].items() if not won]
    if winners and not losers:
        lines.append("measured: every pretrained strategy beat training from scratch at the smallest size.")
    elif winners:
        lines.append(f"measured: {', '.join(winners)} beat scratch at the smallest size; "
                     f"{', '.join(losers)} did not.")
    else:
        lines.append("measured: no pretrained strategy beat scratch at the smallest size in this run.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The ``kerasbrain demo`` command

HELP = "run the transfer-learning demo on synthetic brains (minutes on a laptop CPU)"


def add_parser(subparsers):
    """Add ``demo`` to the ``kerasbrain`` command's subparsers."""
    parser = subparsers.add_parser(
        "demo", help=HELP, description=HELP + ": pretrain a multi-task SFCN on a large "
        "multi-site synthetic cohort, then compare fine-tuning strategies on a small cohort "
        "from an unseen site over training sizes and resamples.",
        epilog="The images are synthetic (kerasbrain.datasets.synthetic): cartoons of heads "
               "with known effects of age, sex, disease and scanner, not real MRI.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def add_arguments(parser):
    parser.add_argument("--out", default="kerasbrain-demo", metavar="DIR",
                        help="output folder (default: ./kerasbrain-demo)")
    parser.add_argument("--quick", action="store_true", help="about half the work")
    parser.add_argument("--seed", type=int, default=0, help="seed of cohorts, draws and weights")
    parser.add_argument("--ssl-epochs", type=int, default=0, metavar="N",
                        help="also pretrain a SimCLR backbone on the large cohort without labels for "
                             "N epochs and add it to the learning curve as ssl_full / ssl_linear "
                             "(default 0: off; roughly a minute per epoch on 2 CPU cores)")


def main(args):
    """Run the demo for parsed command-line ``args`` and print its report."""
    config = DemoConfig.quick() if args.quick else DemoConfig()
    config.seed = args.seed
    if args.ssl_epochs < 0:
        raise ValueError(f"--ssl-epochs must be 0 or more, got {args.ssl_epochs}")
    config.ssl_epochs = args.ssl_epochs
    result = run(args.out, config)
    print()
    print(summary(result))
    print(f"\nfiles in {os.path.abspath(args.out)}:")
    for name, path in result.files.items():
        print(f"  {name:20s} {os.path.basename(path)}")
    print(f"\nnext: kerasbrain predict YOUR_SCANS/ --model {result.files['model']} --qc qc/ -o predictions.csv")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m kerasbrain.demo", description=HELP)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
