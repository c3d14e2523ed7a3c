"""CVTuner, fold splitting and objectives (kerasbrain.tuning), with tiny Dense models."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

from kerasbrain import tuning

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------
# Folds


@pytest.mark.backend_independent
def test_kfold_validation_folds_are_disjoint_and_cover():
    folds = tuning.split_folds(23, 5, seed=3)
    assert len(folds) == 5
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation.tolist()) == list(range(23))
    for train, val in folds:
        assert not set(train) & set(val)
        assert len(train) + len(val) == 23
    assert [v.tolist() for _, v in tuning.split_folds(23, 5, seed=3)] == [
        v.tolist() for _, v in folds
    ]


@pytest.mark.backend_independent
def test_stratified_folds_keep_class_proportions():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 5)
    folds = tuning.split_folds(len(labels), 5, stratify=labels, seed=0)
    for _, val in folds:
        counts = np.bincount(labels[val], minlength=3)
        np.testing.assert_array_equal(counts, [4, 2, 1])


@pytest.mark.backend_independent
def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 9, size=40)  # 9 subjects with several scans each
    labels = groups % 2
    for stratify in (None, labels):
        folds = tuning.split_folds(40, 3, groups=groups, stratify=stratify, seed=1)
        seen = np.concatenate([val for _, val in folds])
        assert sorted(seen.tolist()) == list(range(40))
        for train, val in folds:
            assert not set(groups[train]) & set(groups[val])


@pytest.mark.backend_independent
def test_fold_errors_are_clear():
    with pytest.raises(ValueError, match=r"folds=6 is more than the number of samples \(5\)"):
        tuning.split_folds(5, 6)
    labels = np.array([0] * 10 + [1] * 2)
    with pytest.raises(ValueError, match=r"class\(es\) \{1: 2\}.*fewer members than folds"):
        tuning.split_folds(12, 3, stratify=labels)
    with pytest.raises(ValueError, match=r"number of distinct groups \(2\)"):
        tuning.split_folds(12, 3, groups=[0] * 6 + [1] * 6)
    with pytest.raises(ValueError, match="one label per sample"):
        tuning.split_folds(12, 3, groups=[0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        tuning.split_folds(12, 1)


@pytest.mark.backend_independent
def test_objective_direction_from_metric_name():
    expected = {
        "val_loss": "min",
        "val_age_mae": "min",
        "age_mse": "min",
        "val_age_r": "max",
        "val_diagnosis_auc": "max",
        "val_sex_accuracy": "max",
        "val_diagnosis_balanced_accuracy": "max",
        "val_fluid_intelligence_pearson_r": "max",
    }
    assert {name: tuning.metric_direction(name) for name in expected} == expected
    assert tuning.objective("val_age_mae").direction == "min"
    assert tuning.objective("val_x_auc").direction == "max"
    assert tuning.metric_direction("val_age_banana") is None
    with pytest.raises(ValueError, match="keras_tuner.Objective"):
        tuning.objective("val_age_banana")


# ---------------------------------------------------------------------------------------
# CVTuner


def _data(n=24):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    x[:, 0] = np.arange(n)  # the sample id rides along in the first column
    y = (x[:, 1] + 0.3 * x[:, 2] > 0).astype("int32")
    return x, y


class RecordingHyperModel(kt.HyperModel):
    """A tiny classifier that records which samples every fit saw."""

    def __init__(self):
        super().__init__()
        self.fits = []

    def build(self, hp):
        inputs = keras.Input((3,))
        features = keras.layers.Lambda(lambda t: t[:, 1:])(inputs)
        hidden = keras.layers.Dense(hp.Int("units", 2, 8, step=2), activation="relu")(features)
        outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
        model = keras.Model(inputs, outputs)
        lr = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
        model.compile(
            keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"],
            run_eagerly=True,  # tiny model: faster than tracing a graph for every fold
        )  # fmt: skip
        return model

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        history = model.fit(x, y, validation_data=validation_data, **kwargs)
        if validation_data is None:  # retraining on all data
            return history
        self.fits.append(
            {
                "train": x[:, 0].astype(int),
                "val": validation_data[0][:, 0].astype(int),
                "history": history.history,
                "hp": dict(hp.values),
            }
        )
        return history


def test_cv_tuner_trains_k_models_on_disjoint_folds(tmp_path):
    x, y = _data()
    hypermodel = RecordingHyperModel()
    tuner = tuning.CVTuner(
        hypermodel, "random", objective="val_loss", max_trials=2, folds=3,
        directory=tmp_path, project_name="cv", seed=0,
    )  # fmt: skip
    hypermodel.fits.clear()  # builds during space discovery are not fits
    tuner.search(x, y, epochs=2, batch_size=8, verbose=0)

    table = tuner.results_table()
    assert len(table) == 2 and (table["status"] == "COMPLETED").all()
    assert len(hypermodel.fits) == 2 * 3  # k models per trial
    for trial in range(2):
        fits = hypermodel.fits[3 * trial : 3 * trial + 3]
        validation = np.concatenate([f["val"] for f in fits])
        assert sorted(validation.tolist()) == list(range(24))  # disjoint and covering
        for fit, (train, val) in zip(fits, tuner.fold_indices, strict=True):
            np.testing.assert_array_equal(fit["val"], val)
            np.testing.assert_array_equal(fit["train"], train)
        # stratified automatically (integer labels): every fold holds both classes
        for fit in fits:
            assert set(y[fit["val"]]) == {0, 1}

    # reported scores = each fold's best epoch of val_loss; mean and std over folds
    for row_index, trial in enumerate(sorted(table["trial"])):
        fits = hypermodel.fits[3 * row_index : 3 * row_index + 3]
        per_fold = [min(f["history"]["val_loss"]) for f in fits]
        row = table.set_index("trial").loc[trial]
        np.testing.assert_allclose([row[f"fold{k}"] for k in range(3)], per_fold, rtol=1e-6)
        np.testing.assert_allclose(row["mean"], np.mean(per_fold), rtol=1e-6)
        np.testing.assert_allclose(row["std"], np.std(per_fold), rtol=1e-5)

    # the best trial is the one with the lowest recorded objective
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.trial_id == table.loc[table["mean"].idxmin(), "trial"]
    assert table.iloc[0]["trial"] == best.trial_id
    assert tuner.get_best_hyperparameters()[0].values == best.hyperparameters.values

    path = tuner.save_results(tmp_path / "results.csv")
    csv = pd.read_csv(path, dtype={"trial": str})
    assert list(csv.columns) == [
        "trial", "status", "units", "learning_rate", "fold0", "fold1", "fold2", "mean", "std",
        "objective",
    ]  # fmt: skip
    np.testing.assert_allclose(csv["mean"], table["mean"])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]

    model = tuner.fit_best(x, y, batch_size=8, verbose=0)
    assert model.layers[2].units == best.hyperparameters["units"]


@pytest.mark.backend_independent  # search logic; JAX: k-fold test
def test_cv_tuner_grouped_folds_and_overridden_space(tmp_path):
    x, y = _data(30)
    groups = np.repeat(np.arange(10), 3)  # 10 subjects, 3 scans each
    hp = kt.HyperParameters()
    hp.Fixed("units", 6)
    hp.Float("learning_rate", 0.01, 0.02)
    hypermodel = RecordingHyperModel()
    tuner = tuning.CVTuner(
        hypermodel, "random", objective="val_accuracy", max_trials=2, folds=2,
        hyperparameters=hp, directory=tmp_path, project_name="grouped",
    )  # fmt: skip
    hypermodel.fits.clear()
    tuner.search(x, y, groups=groups, epochs=1, batch_size=10, verbose=0)
    assert len(hypermodel.fits) == 4
    for fit in hypermodel.fits:
        assert not set(groups[fit["train"]]) & set(groups[fit["val"]])
    table = tuner.results_table()
    assert (table["units"] == 6).all()
    assert table["learning_rate"].between(0.01, 0.02).all()
    assert table["mean"].is_monotonic_decreasing  # accuracy: best (highest) first


@pytest.mark.backend_independent  # search logic; JAX: k-fold test
def test_cv_tuner_objective_that_no_task_produces(tmp_path):
    x, y = _data()
    tuner = tuning.CVTuner(
        RecordingHyperModel(), objective="val_age_mae", max_trials=1, folds=2,
        directory=tmp_path,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'val_age_mae' is not produced.*val_accuracy, val_loss"):
        tuner.search(x, y, epochs=1, verbose=0)


def test_cv_tuner_bad_arguments(tmp_path):
    x, y = _data(6)
    with pytest.raises(ValueError, match="Unknown tuner 'annealing'"):
        tuning.CVTuner(RecordingHyperModel(), "annealing", directory=tmp_path)
    tuner = tuning.CVTuner(RecordingHyperModel(), folds=8, directory=tmp_path)
    with pytest.raises(ValueError, match="more than the number of samples"):
        tuner.search(x, y, epochs=1)
    with pytest.raises(ValueError, match="validation_data is not accepted"):
        tuner.search(x, y, validation_data=(x, y))
    with pytest.raises(ValueError, match="differ in length"):
        tuner.search(x, y[:5])


@pytest.mark.backend_independent  # search logic; JAX: k-fold test
@pytest.mark.parametrize("oracle", ["bayesian", "hyperband", "grid"])
def test_cv_tuner_with_each_oracle(tmp_path, oracle):
    x, y = _data(12)
    hp = kt.HyperParameters()
    hp.Choice("learning_rate", [0.01, 0.05])  # a small grid for grid search
    hypermodel = RecordingHyperModel()
    tuner = tuning.CVTuner(
        hypermodel, oracle, objective="val_loss", max_trials=2, folds=2,
        max_epochs=2, factor=3, hyperparameters=hp, tune_new_entries=False,
        directory=tmp_path,
    )  # fmt: skip
    tuner.search(x, y, epochs=1, batch_size=12, verbose=0)
    table = tuner.results_table()
    assert len(table) >= 2 and (table["status"] == "COMPLETED").all()
    assert set(table["learning_rate"]) <= {0.01, 0.05}
    assert len(hypermodel.fits) == 2 * len(table)
    for fit in hypermodel.fits:  # Hyperband sets each trial's epochs
        assert len(fit["history"]["loss"]) == fit["hp"].get("tuner/epochs", 1)
    if oracle == "hyperband":  # its budget, not search(epochs=1), sets the epochs
        assert {fit["hp"]["tuner/epochs"] for fit in hypermodel.fits} == {2}


# ---------------------------------------------------------------------------------------
# Distributed: KerasTuner's chief/worker protocol, one chief and two workers on 127.0.0.1

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import keras, numpy as np
    from kerasbrain import tuning

    directory, log = sys.argv[1], sys.argv[2]

    def build(hp):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(hp.Int("units", 1, 8)),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(hp.Float("lr", 1e-3, 1e-1, sampling="log")), "mse",
                      metrics=["mae"],
                      run_eagerly=True)
        return model

    class LoggingTuner(tuning.CVTuner):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            with open(log, "a") as f:
                f.write(f"{self.tuner_id} {trial.trial_id}\\n")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5], "float32")
    tuner = LoggingTuner(build, "random", objective="val_mae", max_trials=4, folds=2,
                         directory=directory, project_name="distributed", seed=2)
    tuner.search(x, y, epochs=2, batch_size=8, verbose=0)
    if not tuning.is_distributed_worker():
        tuner.save_results(os.path.join(directory, "results.csv"))
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="three processes importing a backend: run once, on TensorFlow",
)
def test_distributed_search_chief_and_two_workers(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    log = tmp_path / "trials.log"
    env = dict(os.environ, PYTHONPATH=REPO, KERASTUNER_ORACLE_IP="127.0.0.1",
               KERASTUNER_ORACLE_PORT=str(_free_port()), TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        processes[tuner_id] = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(log)],
            env=dict(env, KERASTUNER_TUNER_ID=tuner_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 300
    try:
        for tuner_id, process in processes.items():
            output, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
            assert process.returncode == 0, f"{tuner_id} failed:\n{output[-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    ran = [line.split() for line in log.read_text().splitlines()]
    assert {tuner_id for tuner_id, _ in ran} <= {"worker0", "worker1"}
    trial_ids = sorted(trial for _, trial in ran)
    assert len(trial_ids) == 4 and len(set(trial_ids)) == 4  # each trial ran exactly once
    results = pd.read_csv(tmp_path / "results.csv", dtype={"trial": str})
    assert sorted(results["trial"]) == trial_ids
    assert (results["status"] == "COMPLETED").all()
    assert results[["fold0", "fold1", "mean"]].notna().all().all()
