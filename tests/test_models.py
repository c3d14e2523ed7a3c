import keras
import numpy as np
import pytest

import kerasbrain as kb
from kerasbrain import tasks


def tiny_backbone():
    return kb.applications.SFCN(weights=None, include_top=False, input_shape=(32, 32, 32, 1),
                                pooling="avg", filters=(4, 4, 4, 4, 4, 4))


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 32, 32, 32, 1)).astype("float32")
    return x, {"age": rng.uniform(40, 80, n).astype("float32"),
               "sex": rng.integers(0, 2, n).astype("float32")}


def make(loss_weights=None):
    task_list = [tasks.Regression("age", standardize=(60.0, 10.0)), tasks.Binary("sex")]
    return kb.models.multitask(tiny_backbone(), task_list, loss_weights=loss_weights,
                               learning_rate=1e-2)


def test_outputs_history_names_and_masked_head():
    model = make()
    x, y = data()
    y["sex"][:] = np.nan  # no sex label in this batch
    before = {layer: [w.copy() for w in model.get_layer(layer).get_weights()] for layer in ("sex", "age_dense")}
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert {"loss", "age_loss", "age_mae", "age_r", "sex_loss", "sex_auc", "sex_accuracy",
            "sex_balanced_accuracy"} <= set(history.history)
    for old, new in zip(before["sex"], model.get_layer("sex").get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the masked head did not move
    assert not np.allclose(before["age_dense"][0], model.get_layer("age_dense").get_weights()[0])
    assert np.isfinite(history.history["loss"][0]) and history.history["sex_loss"][0] == 0.0
    out = model.predict(x, verbose=0)
    assert set(out) == {"age", "sex"} and out["age"].shape == (8, 1) and out["sex"].shape == (8, 1)


def test_evaluate_metrics_ignore_missing_labels():
    model = make()
    x, y = data(12)
    y["sex"][[1, 4, 7]] = np.nan
    y["age"][[0, 5]] = np.nan
    scores = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    out = model.predict(x, batch_size=4, verbose=0)
    sex = ~np.isnan(y["sex"])
    accuracy = np.mean((out["sex"][sex, 0] > 0.5) == (y["sex"][sex] > 0.5))
    assert scores["sex_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    age = ~np.isnan(y["age"])
    assert scores["age_mae"] == pytest.approx(np.mean(np.abs(out["age"][age, 0] - y["age"][age])), rel=1e-5)
    # explicit sample weights (kerasbrain.data datasets) give the same numbers
    targets, weights = tasks.encode_labels(model.tasks, y)
    again = model.evaluate(x, targets, sample_weight=weights, batch_size=4, verbose=0, return_dict=True)
    assert again["sex_accuracy"] == pytest.approx(scores["sex_accuracy"])
    assert again["age_mae"] == pytest.approx(scores["age_mae"], rel=1e-5)


def test_uncertainty_weighting_learns_and_round_trips(tmp_path):
    model = make("uncertainty")
    layer = model.get_layer("uncertainty")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    learned = {name: float(keras.ops.convert_to_numpy(v)) for name, v in layer.log_variances.items()}
    assert all(value != 0.0 for value in learned.values())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [t.name for t in loaded.tasks] == ["age", "sex"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["age"], model.predict(x, verbose=0)["age"], rtol=1e-5)
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0)  # still compiled with its tasks


def test_bad_arguments():
    with pytest.raises(ValueError, match="loss_weights must be None"):
        kb.models.multitask(tiny_backbone(), [tasks.Binary("sex")], loss_weights="equal")
    model = kb.models.multitask(tiny_backbone(), [tasks.Binary("sex")])
    with pytest.raises(ValueError, match="unknown tasks"):
        model.compile(loss_weights={"age": 1.0})
    x, _ = data(4)
    with pytest.raises(KeyError, match="no labels for task 'sex'"):
        model.fit(x, {"diagnosis": np.zeros(4, "float32")}, verbose=0)
