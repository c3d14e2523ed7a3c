import numpy as np
import pandas as pd
import pytest
from keras import ops

from kerasbrain import tasks
from kerasbrain.tasks import losses, metrics


@pytest.mark.backend_independent
def test_encode_marks_missing_and_maps_labels():
    targets, weights = tasks.Regression("bmi").encode([20.5, None, np.nan, 31])
    np.testing.assert_array_equal(weights, [1, 0, 0, 1])
    np.testing.assert_array_equal(targets, [20.5, 0, 0, 31])
    targets, weights = tasks.Binary("sex", positive="M").encode(["F", "M", None, "M"])
    np.testing.assert_array_equal(targets, [0, 1, 0, 1])
    np.testing.assert_array_equal(weights, [1, 1, 0, 1])
    targets, weights = tasks.Categorical("dx", ["CN", "MCI", "AD"]).encode(["AD", "CN", "", "MCI"])
    np.testing.assert_array_equal(targets, [2, 0, 0, 1])
    np.testing.assert_array_equal(weights, [1, 1, 0, 1])
    assert list(tasks.Categorical("dx", ["CN", "MCI", "AD"]).decode(np.eye(3)[[2, 0]])) == ["AD", "CN"]


@pytest.mark.backend_independent
def test_wrong_label_types_are_clear_errors():
    with pytest.raises(TypeError, match=r"task 'age' \(Regression\) needs numeric labels; row 1"):
        tasks.Regression("age").encode([50, "old"])
    with pytest.raises(ValueError, match="Binary but its labels have 3 classes"):
        tasks.Binary("dx").encode(["CN", "MCI", "AD"])
    with pytest.raises(ValueError, match="not 0/1; pass Binary"):
        tasks.Binary("sex").encode(["F", "M"])
    with pytest.raises(ValueError, match="'PD' at row 1 is not one of"):
        tasks.Categorical("dx", ["CN", "AD"]).encode(["CN", "PD"])
    table = pd.DataFrame({"age": [np.nan, None], "sex": [0, 1]})
    with pytest.raises(ValueError, match="task 'age': all 2 labels are missing"):
        tasks.encode_labels([tasks.Regression("age")], table)
    with pytest.raises(KeyError, match="task 'bmi' has no labels: the table's columns are"):
        tasks.encode_labels([tasks.Regression("bmi")], table)
    with pytest.raises(ValueError, match="repeated"):
        tasks.check_tasks([tasks.Binary("sex"), tasks.Binary("sex")])


@pytest.mark.backend_independent
def test_encode_labels_adapts_standardisation_and_ukb_tasks():
    task = tasks.Regression("age", standardize=True)
    y, w = tasks.encode_labels([task], {"age": [40.0, 60.0, None]})
    assert task.mean == pytest.approx(50.0) and task.std == pytest.approx(10.0)
    np.testing.assert_array_equal(w["age"], [1, 1, 0])
    names = [t.name for t in tasks.ukb_tasks()]
    assert names == ["age", "sex", "handedness", "bmi", "fluid_intelligence", "neuroticism"]


def test_soft_labels_and_decoding_match_sfcn():
    task = tasks.SoftClassification("age", bin_range=(42, 82), bins=40, sigma=1.0)
    np.testing.assert_allclose(task.centres[[0, -1]], [42.5, 81.5])
    soft = ops.convert_to_numpy(losses.gaussian_soft_labels(ops.convert_to_tensor([60.5]), task.centres, 1.0))
    assert soft.sum() == pytest.approx(1.0, abs=1e-5)
    assert task.decode(soft)[0] == pytest.approx(60.5, abs=1e-3)
    # the KL loss is zero at the soft label and positive elsewhere
    loss = task.loss
    assert float(loss(np.array([60.5]), soft)) == pytest.approx(0.0, abs=1e-4)
    assert float(loss(np.array([50.0]), soft)) > 1.0


def test_ranking_targets_and_decode_round_trip():
    task = tasks.Ranking("age", value_range=(3, 95))
    assert task.thresholds == 91
    targets = ops.convert_to_numpy(losses.ranking_targets(ops.convert_to_tensor([3.0, 40.2, 94.0]), 3.0, 91))
    np.testing.assert_allclose(task.decode(targets), [3, 40, 94])


def test_regression_loss_in_standardised_units():
    loss = tasks.Regression("age", loss="mse", standardize=(50.0, 10.0)).loss
    assert float(loss(np.array([50.0, 70.0]), np.array([[60.0], [70.0]]))) == pytest.approx(0.5)
    huber = tasks.Regression("age", loss="huber").loss
    assert float(huber(np.array([0.0]), np.array([[3.0]]))) == pytest.approx(2.5)


def test_metrics_ignore_missing_labels():
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0], "float32")
    p = np.array([[0.9], [0.2], [0.1], [0.8], [0.7]], "float32")
    w = np.array([1, 1, 0, 0, 1], "float32")  # the two wrong predictions are unlabelled
    for metric, expected in [(metrics.Accuracy(), 1.0), (metrics.BalancedAccuracy(2), 1.0)]:
        metric.update_state(y, p, sample_weight=w)
        assert float(metric.result()) == pytest.approx(expected)
    mae = metrics.MeanAbsoluteError()
    mae.update_state(np.array([10.0, np.nan, 20.0]), np.array([[11.0], [99.0], [18.0]]))
    assert float(mae.result()) == pytest.approx(1.5)
    r = metrics.PearsonR(shift=50.0)
    values = np.random.default_rng(0).normal(50, 5, 40).astype("float32")
    predicted = (values + np.random.default_rng(1).normal(0, 3, 40)).astype("float32")
    r.update_state(values[:20], predicted[:20, None])
    r.update_state(values[20:], predicted[20:, None])
    assert float(r.result()) == pytest.approx(np.corrcoef(values, predicted)[0, 1], abs=1e-4)
    balanced = metrics.BalancedAccuracy(3)
    balanced.update_state(np.array([0, 0, 0, 1, 2.0]), np.eye(3)[[0, 0, 1, 1, 2]])
    assert float(balanced.result()) == pytest.approx((2 / 3 + 1 + 1) / 3)


@pytest.mark.backend_independent
def test_task_config_round_trip():
    for task in [tasks.Regression("bmi", "huber", standardize=(26.0, 4.0), output_range=(10, 60)),
                 tasks.Binary("sex", positive="M"), tasks.Categorical("dx", ["a", "b", "c"]),
                 tasks.SoftClassification("age", (18, 90), 72, 2.0), tasks.Ranking("age", (3, 95))]:
        (copy,) = tasks.deserialize(tasks.serialize([task]))
        assert type(copy) is type(task) and copy.get_config() == task.get_config()
