"""Learning curves: how each transfer strategy scales with the training-set size.

For each size N and resample r, N subjects are drawn from the training pool (stratified
on the first classification task), every strategy is trained on them and evaluated on a
fixed held-out set. ``"linear"`` is a scikit-learn baseline on features extracted by the
pretrained backbone (ridge regression / logistic regression). ``"frozen-adapted"`` and
``"linear-adapted"`` first adapt the backbone's BatchNorm statistics to the training draw
(plus any unlabelled scans given), see ``kerasbrain.transfer.adapt_batchnorm``. Each finished cell
``(N, r, strategy)`` is written to ``out_dir/cells/`` at once, so an interrupted run
resumes without recomputing it.

    table = kb.transfer.learning_curve((x, labels), tasks, sizes=[25, 50, 100],
                                       resamples=5, backbone=pretrained,
                                       test=(x_test, labels_test), out_dir="curve")
    kb.transfer.summarize(table); kb.transfer.compare(table)
"""

import json
import os
import time

import keras
import numpy as np

from kerasbrain import tasks as tasks_lib
from kerasbrain.files import save_figure, write_text
from kerasbrain.transfer.adapt import adapt_batchnorm as adapt
from kerasbrain.transfer.features import extract_features
from kerasbrain.transfer.strategies import STRATEGIES, copy_model, finetune

ADAPTED = "-adapted"
ADAPTABLE = ("frozen", "linear")
ALL_STRATEGIES = (*STRATEGIES, "linear", *(s + ADAPTED for s in ADAPTABLE))
COLUMNS = ["size", "resample", "strategy", "task", "metric", "value", "seconds"]


def primary_metric(task):
    """The metric a learning curve plots for ``task`` (lower is better only for MAE)."""
    return {"binary": "auc", "categorical": "balanced_accuracy"}.get(task.kind, "mae")


def score(task, values, labels):
    """Test-set metrics of one task.

    Args:
        values: decoded predictions: values in target units (regression, soft
            classification, ranking), positive-class probabilities ``(n,)`` (binary) or
            class probabilities ``(n, k)`` (categorical).
        labels: the raw labels ``(n,)`` (missing ones are skipped).

    Returns:
        dict metric -> value: ``mae, r`` / ``auc, accuracy, balanced_accuracy`` /
        ``accuracy, balanced_accuracy``.
    """
    from sklearn import metrics

    targets, weights = task.encode(labels)
    keep = weights > 0
    targets, values = targets[keep], np.asarray(values)[keep]
    if task.kind == "binary":
        predicted = (values > 0.5).astype(int)
        return {
            "auc": float(metrics.roc_auc_score(targets, values)) if len(set(targets)) == 2 else float("nan"),
            "accuracy": float(metrics.accuracy_score(targets, predicted)),
            "balanced_accuracy": float(metrics.balanced_accuracy_score(targets, predicted)),
        }
    if task.kind == "categorical":
        predicted = np.argmax(values, axis=-1)
        return {"accuracy": float(metrics.accuracy_score(targets, predicted)),
                "balanced_accuracy": float(metrics.balanced_accuracy_score(targets, predicted))}
    values = values.astype("float64").reshape(-1)
    r = np.corrcoef(values, targets)[0, 1] if np.std(values) > 0 else float("nan")
    return {"mae": float(np.mean(np.abs(values - targets))), "r": float(r)}


def _model_values(task, output):
    output = np.asarray(output)
    if task.kind == "binary":
        return output.reshape(len(output), -1)[:, 0]
    if task.kind == "categorical":
        return output
    return task.decode(output)


def _take(labels, index):
    if hasattr(labels, "iloc"):
        return labels.iloc[index].reset_index(drop=True)
    return {name: np.asarray(values, dtype=object)[index] for name, values in labels.items()}


def _column(labels, name):
    values = labels[name]
    return values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else np.asarray(values, dtype=object)


def draw(labels, tasks, size, rng):
    """Indices of ``size`` subjects, stratified on the first classification task."""
    n = len(_column(labels, tasks[0].name))
    if size > n:
        raise ValueError(f"training size {size} exceeds the {n} subjects available.")
    stratify = next((task for task in tasks if task.kind in ("binary", "categorical")), None)
    if stratify is None or size == n:
        return np.sort(rng.choice(n, size, replace=False))
    from sklearn.model_selection import train_test_split

    classes, weights = stratify.encode(_column(labels, stratify.name))
    strata = np.where(weights > 0, classes, -1)
    index, _ = train_test_split(np.arange(n), train_size=size, stratify=strata,
                                random_state=int(rng.integers(2**31)))
    return np.sort(index)


def _linear(tasks, train_features, train_labels, test_features):
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values = {}
    for task in tasks:
        targets, weights = task.encode(_column(train_labels, task.name))
        keep = weights > 0
        if task.kind in ("binary", "categorical"):
            if len(set(targets[keep])) < 2:
                raise ValueError(f"task {task.name!r}: the training draw has a single class.")
            estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            estimator.fit(train_features[keep], targets[keep].astype(int))
            probabilities = estimator.predict_proba(test_features)
            full = np.zeros((len(test_features), getattr(task, "n_classes", 2)))
            full[:, estimator.classes_] = probabilities
            values[task.name] = full[:, 1] if task.kind == "binary" else full
        else:
            estimator = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
            estimator.fit(train_features[keep], targets[keep])
            values[task.name] = estimator.predict(test_features)
    return values


def _reuse_compiled(templates, strategy, model):
    """The first model of a strategy is kept; later cells load their fresh weights into
    it and reset its optimiser, so ``fit`` is traced once per strategy, not per cell."""
    template = templates.get(strategy)
    if template is None or model.two_phase:
        templates[strategy] = model
        return model
    template.set_weights(model.get_weights())
    for variable in template.optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))
    return template


def learning_curve(
    data, tasks, sizes, resamples=5, strategies=("scratch", "frozen", "full", "linear"),
    test=None, backbone=None, epochs=10, batch_size=8, out_dir=None, seed=0,
    finetune_kwargs=None, fit_kwargs=None, plot=True, verbose=0, on_cell=None,
    adapt_batchnorm=False,
):
    """Train every strategy on resampled training sets of each size; score on ``test``.

    Args:
        data: ``(volumes, labels)``: an array ``(n, x, y, z, c)`` and a pandas DataFrame
            (or dict) with one column per task; the pool training sets are drawn from.
        tasks: list of tasks (the first classification task stratifies the draws).
        sizes: training-set sizes, e.g. ``[25, 50, 100]``.
        resamples: draws per size.
        strategies: among ``"scratch", "frozen", "partial", "full", "linear"``,
            ``"frozen-adapted"``, ``"linear-adapted"``.
        test: ``(volumes, labels)`` held out, the same for every cell.
        backbone: the pretrained model (backbone or with heads) every strategy starts from.
        epochs, batch_size: ``model.fit`` settings.
        out_dir: folder for finished cells (resume), ``results.csv``, ``summary.csv``,
            ``tests.csv`` and ``learning_curve.png``; ``None`` keeps everything in memory.
        seed: base seed of the draws and of weight initialisation.
        finetune_kwargs: extra ``finetune`` arguments, shared or per strategy
            (``{"partial": {"trainable_blocks": 2}}``).
        fit_kwargs: extra ``model.fit`` arguments.
        plot: write the PNG when ``out_dir`` is given.
        verbose: ``model.fit`` verbosity.
        on_cell: called after each finished cell (also one reused from ``out_dir``) with
            its rows (list of dicts with the columns below), e.g. to print progress.
        adapt_batchnorm: ``True`` adds ``"<s>-adapted"`` after the strategies for every
            ``"frozen"`` / ``"linear"`` ``s`` among ``strategies``: the same, with the
            backbone's BatchNorm statistics adapted to the training draw first. An array
            of unlabelled scans of the site ``(m, x, y, z, c)`` does the same, adapting on
            the draw plus these scans. The test set is never used for adaptation. Adapted
            strategies use their base strategy's seed and ``finetune_kwargs``.

    Returns:
        DataFrame with columns ``size, resample, strategy, task, metric, value, seconds``
        (``seconds``: training time of the cell).
    """
    import pandas as pd

    tasks = tasks_lib.check_tasks(tasks)
    unknown = [s for s in strategies if s not in ALL_STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {ALL_STRATEGIES}.")
    unlabelled = None
    if adapt_batchnorm is not False and adapt_batchnorm is not None:
        if adapt_batchnorm is not True:
            unlabelled = np.asarray(adapt_batchnorm, dtype="float32")
        strategies = [*strategies, *(s + ADAPTED for s in ADAPTABLE
                                     if s in strategies and s + ADAPTED not in strategies)]
    if backbone is None:
        raise ValueError("learning_curve needs the pretrained model: backbone=...")
    if test is None:
        raise ValueError("learning_curve needs a held-out set: test=(volumes, labels).")
    x, labels = data
    x_test, labels_test = test
    for name, table in (("data", labels), ("test", labels_test)):
        for task in tasks:
            if task.name not in (table.columns if hasattr(table, "columns") else table):
                raise KeyError(f"task {task.name!r} has no labels in {name}.")
    if len(x) != len(_column(labels, tasks[0].name)):
        raise ValueError(f"data: {len(x)} volumes but {len(_column(labels, tasks[0].name))} label rows.")
    finetune_kwargs = dict(finetune_kwargs or {})
    per_strategy = {s: finetune_kwargs.pop(s) for s in list(finetune_kwargs) if s in ALL_STRATEGIES}
    cells_dir = os.path.join(out_dir, "cells") if out_dir else None
    if cells_dir:
        os.makedirs(cells_dir, exist_ok=True)
    tasks_lib.encode_labels(tasks, labels)  # checks labels, sets standardisation
    features, templates = {}, {}
    rows = []
    for size in sizes:
        for resample in range(resamples):
            rng = np.random.default_rng([seed, size, resample])
            index = draw(labels, tasks, size, rng)
            for number, strategy in enumerate(strategies):
                path = os.path.join(cells_dir, f"n{size}_r{resample}_{strategy}.json") if cells_dir else None
                if path and os.path.exists(path):
                    with open(path) as handle:
                        cell = json.load(handle)
                    rows.extend(cell)
                    if on_cell is not None:
                        on_cell(cell)
                    continue
                start = time.perf_counter()
                train_labels = _take(labels, index)
                base = strategy.removesuffix(ADAPTED)
                adapt_on = None
                if base != strategy:
                    adapt_on = x[index] if unlabelled is None else np.concatenate([x[index], unlabelled])
                if strategy == "linear":
                    if not features:
                        features["train"] = extract_features(backbone, x, batch_size)
                        features["test"] = extract_features(backbone, x_test, batch_size)
                    values = _linear(tasks, features["train"][index], train_labels, features["test"])
                elif base == "linear":
                    adapted = adapt(copy_model(backbone), adapt_on, batch_size, verbose=0)
                    values = _linear(tasks, extract_features(adapted, x[index], batch_size), train_labels,
                                     extract_features(adapted, x_test, batch_size))
                else:
                    seed_number = strategies.index(base) if base in strategies else number
                    keras.utils.set_random_seed(seed * 1000 + size * 10 + resample + seed_number)
                    model = finetune(backbone, tasks, strategy=base, adapt_batchnorm=adapt_on,
                                     **{**finetune_kwargs, **per_strategy.get(base, {}),
                                        **per_strategy.get(strategy, {})})
                    model = _reuse_compiled(templates, strategy, model)
                    y, w = tasks_lib.encode_labels(tasks, train_labels, adapt=False)
                    model.fit(x[index], y, sample_weight=w, epochs=epochs, batch_size=batch_size,
                              verbose=verbose, **(fit_kwargs or {}))
                    output = model.predict(x_test, batch_size=batch_size, verbose=0)
                    values = {task.name: _model_values(task, output[task.name]) for task in tasks}
                seconds = time.perf_counter() - start
                cell = [
                    {"size": int(size), "resample": resample, "strategy": strategy, "task": task.name,
                     "metric": metric, "value": value, "seconds": seconds}
                    for task in tasks
                    for metric, value in score(task, values[task.name], _column(labels_test, task.name)).items()
                ]
                if path:
                    write_text(path, json.dumps(cell))
                rows.extend(cell)
                if on_cell is not None:
                    on_cell(cell)
    table = pd.DataFrame(rows, columns=COLUMNS)
    if out_dir:
        write_text(os.path.join(out_dir, "results.csv"), table.to_csv(index=False))
        write_text(os.path.join(out_dir, "summary.csv"), summarize(table).to_csv(index=False))
        if len(set(strategies)) > 1 and resamples > 1:
            write_text(os.path.join(out_dir, "tests.csv"), compare(table).to_csv(index=False))
        if plot:
            plot_learning_curve(table, os.path.join(out_dir, "learning_curve.png"), tasks)
    return table


def summarize(table):
    """Median and interquartile range over resamples: one row per
    ``(task, metric, strategy, size)`` with ``median, q25, q75, n``."""
    grouped = table.groupby(["task", "metric", "strategy", "size"])["value"]
    out = grouped.agg(median="median", q25=lambda v: v.quantile(0.25),
                      q75=lambda v: v.quantile(0.75), n="count")
    return out.reset_index()


def compare(table, pairs=None):
    """Paired Wilcoxon signed-rank tests between strategies over resamples.

    Args:
        table: ``learning_curve``'s table.
        pairs: ``[(a, b), ...]``; default all pairs of strategies.

    Returns:
        DataFrame ``task, metric, size, a, b, median_a, median_b, median_difference,
        statistic, p_value, n`` (difference = a - b, over resamples both finished).
    """
    import itertools

    import pandas as pd
    from scipy import stats

    strategies = list(dict.fromkeys(table["strategy"]))
    pairs = pairs or list(itertools.combinations(strategies, 2))
    rows = []
    for (task, metric, size), group in table.groupby(["task", "metric", "size"]):
        wide = group.pivot_table(index="resample", columns="strategy", values="value")
        for a, b in pairs:
            if a not in wide or b not in wide:
                continue
            both = wide[[a, b]].dropna()
            difference = both[a] - both[b]
            if len(both) >= 2 and np.any(difference != 0):
                statistic, p_value = stats.wilcoxon(both[a], both[b])
            else:
                statistic, p_value = float("nan"), float("nan")
            rows.append({"task": task, "metric": metric, "size": size, "a": a, "b": b,
                         "median_a": both[a].median(), "median_b": both[b].median(),
                         "median_difference": difference.median(), "statistic": statistic,
                         "p_value": p_value, "n": len(both)})
    return pd.DataFrame(rows)


def size_axis(axis, sizes):
    """A log-scale x axis labelled with the training ``sizes`` only (no minor labels)."""
    from matplotlib import ticker

    sizes = sorted(int(s) for s in sizes)
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(ticker.FixedLocator(sizes))
    axis.xaxis.set_major_formatter(ticker.FixedFormatter([str(s) for s in sizes]))
    axis.xaxis.set_minor_locator(ticker.NullLocator())
    axis.set_xlabel("training subjects")


def plot_learning_curve(table, path, tasks=None):
    """Metric vs training size, one line (median) and interquartile band per strategy,
    one panel per task (its primary metric). Saved as PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(table)
    names = [task.name for task in tasks] if tasks else list(dict.fromkeys(table["task"]))
    metric_of = {task.name: primary_metric(task) for task in tasks or []}
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        metric = metric_of.get(name) or summary[summary.task == name].metric.iloc[0]
        part = summary[(summary.task == name) & (summary.metric == metric)]
        for strategy, rows in part.groupby("strategy", sort=False):
            rows = rows.sort_values("size")
            axis.plot(rows["size"], rows["median"], marker="o", label=strategy)
            axis.fill_between(rows["size"], rows["q25"], rows["q75"], alpha=0.2)
        size_axis(axis, part["size"].unique())
        axis.set_ylabel(metric)
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return path
