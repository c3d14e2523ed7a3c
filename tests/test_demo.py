"""The demo's library path at tiny size: files written, pretraining beats scratch."""

import json

import numpy as np
import pandas as pd
import pytest

from kerasbrain import demo, inference

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, demo.run(out, demo.DemoConfig.tiny(), log=lambda text: None)


def test_pretrained_beats_scratch_at_smallest_size(result):
    _, res = result
    config = demo.DemoConfig.tiny()
    table = res.table
    assert set(table["strategy"]) == {*config.strategies, "frozen-adapted", "linear-adapted"}
    assert sorted(set(table["size"])) == list(config.sizes)
    assert set(table["resample"]) == set(range(config.resamples))
    auc = table[(table["metric"] == "auc") & (table["size"] == config.sizes[0])]
    medians = auc.groupby("strategy")["value"].median()
    assert res.comparison["medians"] == pytest.approx(medians.to_dict())
    best_pretrained = max(medians[s] for s in config.strategies if s != "scratch")
    assert best_pretrained > medians["scratch"] + 0.05, medians.to_dict()
    assert "measured:" in demo.summary(res)


def test_outputs_written_and_model_predicts(result):
    out, res = result
    for key in ("model", "results_csv", "summary_csv", "learning_curve_png", "brain_age_png"):
        assert (out / res.files[key].split(str(out) + "/")[-1]).exists(), key
    written = pd.read_csv(res.files["results_csv"])
    assert len(written) == len(res.table)
    info = json.loads((out / "pretrained.json").read_text())
    assert info["brain_age_task"] == "age" and info["preprocessing"]["intensity"] == "mean"
    predictor = inference.Predictor.from_model(res.files["model"])
    assert [d[1] for d in predictor.decoders] == ["age", "sex", "ventricle_volume_ml"]
    assert np.isfinite(res.pretrain_metrics["unseen_site_age_mae"])
    assert np.isfinite(res.pretrain_metrics["unseen_site_age_mae_adapted"])
