"""FineTuningHyperModel with CVTuner and the ``kerasbrain tune`` command: tiny SFCN, 32^3."""

import json

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
import yaml

import kerasbrain as kb
from kerasbrain import cli, tuning
from kerasbrain import training as train_command

pytest.importorskip("kerasbrain.transfer", reason="needs kerasbrain.transfer.finetune")

SHAPE = (32, 32, 32, 1)
FILTERS = (2, 2, 2, 2, 2, 4)


def _backbone():
    return kb.applications.SFCN(
        weights=None, include_top=False, input_shape=SHAPE, pooling="avg", filters=FILTERS
    )


def _cohort(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *SHAPE)).astype("float32")
    dx = np.tile([0.0, 1.0], n // 2).astype("float32")
    x[dx == 1, 8:24, 8:24, 8:24] += 1.0
    age = (50 + 10 * dx + rng.normal(0, 2, n)).astype("float32")
    return x, {"dx": dx, "age": age}


_BUILD = tuning.FineTuningHyperModel.build


def _eager_build(self, hp):
    model = _BUILD(self, hp)
    model.run_eagerly = True  # tiny models train faster without compiling a graph
    return model


class EagerHyperModel(tuning.FineTuningHyperModel):
    build = _eager_build


def _tasks():
    return [kb.tasks.Binary("dx"), kb.tasks.Regression("age")]


def test_random_search_end_to_end_and_config_reproduces_best(tmp_path):
    x, y = _cohort()
    hypermodel = EagerHyperModel(_backbone(), _tasks(), augmentation=False)
    assert hypermodel.stratify_task == "dx"
    hp = kt.HyperParameters()
    hp.Choice("strategy", ["frozen", "partial"])
    hp.Fixed("head_units", 0)
    tuner = tuning.CVTuner(
        hypermodel, "random", objective="val_dx_auc", max_trials=2, folds=2,
        hyperparameters=hp, directory=tmp_path, project_name="ft", seed=1,
    )  # fmt: skip
    tuner.search(x, y, epochs=1, batch_size=6, verbose=0)

    table = tuner.results_table()
    assert (table["status"] == "COMPLETED").all() and len(table) == 2
    assert set(table["strategy"]) <= {"frozen", "partial"} and (table["head_units"] == 0).all()
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == table["mean"].max() and table.iloc[0]["trial"] == best.trial_id
    for k in range(2):  # every fold holds both classes (stratified by the Binary task)
        assert set(y["dx"][tuner.fold_indices[k][1]]) == {0.0, 1.0}

    config = {
        "data": {"arrays": "cohort.npz"}, "backbone": "SFCN", "input_shape": list(SHAPE),
        "backbone_kwargs": {"filters": list(FILTERS)},
        "tasks": [{"type": "binary", "name": "dx"}, {"type": "regression", "name": "age"}],
        "tuner": "random", "budget": 2, "folds": 2, "objective": "val_dx_auc",
        "epochs": 1, "batch_size": 6,
    }  # fmt: skip
    config["output"] = str(tmp_path / "run")
    named = tuning.hypermodel_from_config({**config, "augmentation": False})
    exported = tuning.finetune_config(config, named, best.hyperparameters, epochs=3)
    for key in ("tuner", "budget", "folds", "objective"):
        assert key not in exported
    assert exported["strategy"] == best.hyperparameters["strategy"]
    assert exported["optimizer"]["learning_rate"] == best.hyperparameters["learning_rate"]
    loss_weights = {"dx": 1.0, "age": best.hyperparameters["loss_weight_age"]}
    assert exported["finetune"]["loss_weights"] == loss_weights
    assert exported["epochs"] == 3 and exported["data"]["train"] == {"npz": "cohort.npz"}
    path = tuning.write_config(exported, tmp_path / "best.yaml")
    reloaded = train_command.load_config(path, "train")  # the schema accepts it as it is
    assert yaml.safe_load(open(path)) == exported
    rebuilt = train_command.build_model(reloaded, train_command.build_tasks(reloaded))
    _assert_same_model(rebuilt, named.build(best.hyperparameters))


def _assert_same_model(a, b):
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
    assert [w.path for w in a.trainable_weights] == [w.path for w in b.trainable_weights]
    assert type(a.optimizer) is type(b.optimizer)
    config_a = {k: v for k, v in a.optimizer.get_config().items() if k != "name"}
    config_b = {k: v for k, v in b.optimizer.get_config().items() if k != "name"}
    assert config_a == config_b
    assert [layer.get_config() for layer in a.layers[2:]] == [layer.get_config() for layer in b.layers[2:]]


@pytest.mark.backend_independent  # search logic; JAX: random search test
def test_space_overrides_and_strategies(tmp_path):
    hypermodel = tuning.FineTuningHyperModel(_backbone(), [kb.tasks.Binary("dx")], augmentation=False)
    hp = kt.HyperParameters()
    hp.Fixed("strategy", "partial")
    hp.Int("trainable_blocks", 2, 2)
    hp.Float("learning_rate", 1e-4, 2e-4)
    settings = hypermodel.settings(hp)
    assert settings["strategy"] == "partial" and settings["trainable_blocks"] == 2
    assert 1e-4 <= settings["learning_rate"] <= 2e-4
    assert "loss_weights" not in settings  # one task
    frozen = hypermodel.build(tuning.fixed_hyperparameters({"strategy": "frozen"}))
    partial = hypermodel.build(hp)
    full = hypermodel.build(tuning.fixed_hyperparameters({"strategy": "full"}))
    counts = [len(m.trainable_weights) for m in (frozen, partial, full)]
    assert counts[0] < counts[1] < counts[2]
    two_phase = tuning.fixed_hyperparameters({"strategy": "two_phase", "head_learning_rate": 0.01})
    assert hypermodel.build(two_phase).two_phase["head_learning_rate"] == 0.01
    exported = tuning.finetune_config({"backbone": "SFCN"}, hypermodel, two_phase)
    assert exported["strategy"] == "full" and exported["finetune"]["two_phase"] is True
    assert exported["finetune"]["head_learning_rate"] == 0.01
    # the backbone is copied: building never changes the given backbone's weights
    backbone = _backbone()
    before = [w.copy() for w in backbone.get_weights()]
    model = EagerHyperModel(backbone, [kb.tasks.Binary("dx")]).build(
        tuning.fixed_hyperparameters({"strategy": "full", "learning_rate": 0.1})
    )
    x, y = _cohort(4)
    model.fit(x, {"dx": y["dx"]}, epochs=1, verbose=0)
    for w0, w1 in zip(before, backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown backbone 'SFCNN'.*SFCN"):
        tuning.FineTuningHyperModel("SFCNN", [kb.tasks.Binary("dx")])
    hypermodel = tuning.FineTuningHyperModel(_backbone(), [kb.tasks.Binary("dx")], augmentation=False)
    with pytest.raises(ValueError, match=r"'val_age_mae' is not produced.*val_dx_auc"):
        tuning.CVTuner(hypermodel, objective="val_age_mae", directory=tmp_path)
    x, y = _cohort(12)
    y["dx"][:] = 0
    y["dx"][:2] = 1  # two members in class 1, three folds
    tuner = tuning.CVTuner(hypermodel, objective="val_dx_auc", folds=3, directory=tmp_path)
    with pytest.raises(ValueError, match=r"class\(es\) \{1.0: 2\}"):
        tuner.search(x, {"dx": y["dx"]}, epochs=1)


@pytest.mark.backend_independent  # search logic; JAX: random search test
def test_tune_command_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning.FineTuningHyperModel, "build", _eager_build)
    x, y = _cohort(8)
    np.savez(tmp_path / "cohort.npz", x=x[..., 0], dx=y["dx"], subject=np.arange(8) // 2)
    pretrained = str(tmp_path / "pretrained.weights.h5")
    _backbone().save_weights(pretrained)
    config = {
        "data": {"arrays": str(tmp_path / "cohort.npz"), "groups": "subject"},
        "backbone": "SFCN", "weights": pretrained, "input_shape": list(SHAPE),
        "backbone_kwargs": {"filters": list(FILTERS)},
        "tasks": [{"type": "binary", "name": "dx"}],
        "tuner": "grid", "budget": 1, "folds": 2, "objective": "val_dx_loss",
        "epochs": 1, "batch_size": 4,
        "search_space": {"strategy": "frozen", "augmentation": 0.25},
        "output": str(tmp_path / "out"),
    }  # fmt: skip
    (tmp_path / "tune.json").write_text(json.dumps(config))
    assert cli.main(["tune", str(tmp_path / "tune.json"), "--verbose", "0"]) == 0
    out = tmp_path / "out"
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 1 and results["status"][0] == "COMPLETED"
    assert results["augmentation"][0] == 0.25
    best = yaml.safe_load(open(out / "best_config.yaml"))
    assert best["strategy"] == "frozen" and best["tasks"] == config["tasks"]
    assert best["output"] == str(out / "finetune") and "tuner" not in best
    assert json.load(open(out / "best_hyperparameters.json"))["strategy"] == "frozen"
    model = keras.saving.load_model(out / "best_model.keras")
    assert model.predict(x[:2], verbose=0)["dx"].shape == (2, 1)
    # the handoff: kerasbrain finetune takes best_config.yaml as it is
    assert best["data"]["augment"] == 0.25 and best["backbone"]["weights"] == pretrained
    assert cli.main(["finetune", str(out / "best_config.yaml")]) == 0
    tuned = keras.saving.load_model(out / "finetune" / "model.keras")
    assert tuned.predict(x[:2], verbose=0)["dx"].shape == (2, 1)
    assert len(pd.read_csv(out / "finetune" / "history.csv")) == best["epochs"]

    bad = dict(config, backbone="ResNet9000")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert cli.main(["tune", str(tmp_path / "bad.json")]) == 1
