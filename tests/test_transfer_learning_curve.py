import importlib
import os

import numpy as np
import pandas as pd
import pytest

import kerasbrain as kb
from kerasbrain import tasks

lc = importlib.import_module("kerasbrain.transfer.learning_curve")  # the module, not the function


def _data(n, seed):
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 1, n)
    x = rng.normal(0, 0.3, (n, 32, 32, 32, 1)).astype("float32")
    x[:, 8:24, 8:24, 8:24] += latent[:, None, None, None, None].astype("float32")
    labels = pd.DataFrame({"high": (latent > 0.5).astype(int), "value": latent * 10})
    return x, labels


def test_learning_curve_table_resume_and_files(tmp_path, monkeypatch):
    backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=(32, 32, 32, 1),
                                    pooling="avg", filters=(4, 4, 4, 4, 4, 4))
    data, test = _data(24, 0), _data(16, 1)
    task_list = [tasks.Binary("high"), tasks.Regression("value")]
    calls = []
    real_finetune = lc.finetune
    monkeypatch.setattr(lc, "finetune", lambda *a, **k: calls.append(k["strategy"]) or real_finetune(*a, **k))
    kwargs = dict(sizes=[8, 12], resamples=2, strategies=["frozen", "linear"], test=test,
                  backbone=backbone, epochs=1, batch_size=8, out_dir=str(tmp_path), seed=3)
    table = kb.transfer.learning_curve(data, task_list, **kwargs)
    assert len(calls) == 4  # 2 sizes x 2 resamples of the one Keras strategy
    assert set(table.columns) >= {"size", "resample", "strategy", "task", "metric", "value"}
    cells = table.groupby(["size", "resample", "strategy"]).ngroups
    assert cells == 8 and len(os.listdir(tmp_path / "cells")) == 8
    assert set(table[table.task == "high"].metric) == {"auc", "accuracy", "balanced_accuracy"}
    assert set(table[table.task == "value"].metric) == {"mae", "r"}
    for name in ("results.csv", "summary.csv", "tests.csv", "learning_curve.png"):
        assert (tmp_path / name).stat().st_size > 0
    # stratified draws: both classes in every training set of 8
    rng = np.random.default_rng([3, 8, 0])
    index = lc.draw(data[1], task_list, 8, rng)
    assert len(index) == 8 and 0 < data[1]["high"].iloc[index].sum() < 8

    # resume: nothing recomputed; a lost cell is recomputed alone
    os.remove(tmp_path / "cells" / "n12_r1_frozen.json")
    calls.clear()
    monkeypatch.setattr(lc, "extract_features", lambda *a, **k: pytest.fail("features recomputed"))
    reported = []
    again = kb.transfer.learning_curve(data, task_list, on_cell=reported.append, **kwargs)
    assert calls == ["frozen"]
    assert [(c[0]["size"], c[0]["resample"], c[0]["strategy"]) for c in reported] == [
        (size, r, s) for size in (8, 12) for r in (0, 1) for s in ("frozen", "linear")]
    assert sum(len(c) for c in reported) == len(again)
    keep = (again["size"] != 12) | (again["resample"] != 1) | (again["strategy"] != "frozen")
    assert (~keep).sum() == 5  # the recomputed cell: 5 metrics
    pd.testing.assert_frame_equal(again[keep].reset_index(drop=True),
                                  table[keep].reset_index(drop=True))

    summary = kb.transfer.summarize(table)
    row = summary[(summary.task == "value") & (summary.metric == "mae") & (summary.strategy == "linear") & (summary["size"] == 8)]
    values = table[(table.task == "value") & (table.metric == "mae") & (table.strategy == "linear") & (table["size"] == 8)].value
    assert row["median"].item() == pytest.approx(values.median())


@pytest.mark.backend_independent
def test_compare_is_paired_wilcoxon():
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.05, 7), rng.normal(0.7, 0.05, 7)
    table = pd.DataFrame({"size": 50, "resample": list(range(7)) * 2, "strategy": ["full"] * 7 + ["scratch"] * 7,
                          "task": "dx", "metric": "auc", "value": np.r_[a, b]})
    result = kb.transfer.compare(table)
    assert result.p_value.item() == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert result.median_difference.item() == pytest.approx(np.median(a - b))


def test_learning_curve_bad_input():
    x, labels = _data(4, 0)
    backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=(32, 32, 32, 1),
                                    pooling="avg", filters=(4, 4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="unknown strategies"):
        kb.transfer.learning_curve((x, labels), [tasks.Binary("high")], [2], strategies=["ridge"],
                                   test=(x, labels), backbone=backbone)
    with pytest.raises(KeyError, match="task 'dx' has no labels in data"):
        kb.transfer.learning_curve((x, labels), [tasks.Binary("dx")], [2], test=(x, labels), backbone=backbone)
    with pytest.raises(ValueError, match="training size 10 exceeds the 4 subjects"):
        kb.transfer.learning_curve((x, labels), [tasks.Binary("high")], [10], strategies=["linear"],
                                   test=(x, labels), backbone=backbone)


@pytest.mark.backend_independent
def test_size_axis_labels_only_the_sizes():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from kerasbrain.transfer.learning_curve import size_axis

    figure, axis = plt.subplots()
    axis.plot([16, 24, 32, 64], [0.6, 0.7, 0.75, 0.8])
    size_axis(axis, [64, 16, 32, 24])
    figure.canvas.draw()
    assert [t.get_text() for t in axis.get_xticklabels()] == ["16", "24", "32", "64"]
    assert [t.get_text() for t in axis.get_xticklabels(minor=True)] == []
    assert axis.get_xscale() == "log"
    plt.close(figure)
