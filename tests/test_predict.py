"""`kerasbrain predict` end to end on NIfTI files written here; input and output warnings."""

import os
import shutil
import subprocess
import sys
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

from kerasbrain import cli, inference
from kerasbrain.applications import SFCN
from kerasbrain.data import Preprocessor, Volume
from kerasbrain.datasets.synthetic import make_cohort, write_cohort

SHAPE = (32, 32, 32)
SPACING = 192.0 / 32


def tiny_model(age_bias=55.0):
    backbone = SFCN(weights=None, include_top=False, input_shape=(*SHAPE, 1), pooling="avg",
                    filters=(4, 4, 4, 4, 4, 4))
    features = backbone.output
    age = keras.layers.Dense(1, name="age_dense")(features)
    age = keras.layers.Rescaling(10.0, offset=age_bias, name="age")(age)
    sex = keras.layers.Dense(1, activation="sigmoid", name="sex")(features)
    return keras.Model(backbone.input, {"age": age, "sex": sex})


def preprocessor():
    return Preprocessor(orientation="RAS", spacing=SPACING, shape=SHAPE, intensity="mean")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three scans (the last stored P-S-R) and a model saved with its preprocessing."""
    tmp_path = tmp_path_factory.mktemp("predict")
    volumes, table = make_cohort(3, shape=SHAPE, sites=[1], seed=4)
    scans = tmp_path / "scans"
    write_cohort(volumes[:2], table.iloc[:2], scans, spacing=SPACING)
    write_cohort(volumes[2:], table.iloc[2:], tmp_path / "other", spacing=SPACING, orientation="PSR")
    (tmp_path / "other" / "participants.tsv").unlink()
    (tmp_path / "other" / f"{table.participant_id[2]}_T1w.nii.gz").rename(
        scans / f"{table.participant_id[2]}_T1w.nii.gz")
    table.assign(path=[f"{p}_T1w.nii.gz" for p in table.participant_id]).to_csv(
        scans / "participants.tsv", sep="\t", index=False)
    keras.utils.set_random_seed(0)  # module-scoped: runs before the per-test seed
    model = tiny_model()
    prep = preprocessor()
    training = np.stack([prep(_ras_volume(v)) for v in volumes])
    inference.save_model(model, tmp_path / "model.keras", prep, volumes=training,
                         output_ranges={"age": (20, 90)}, brain_age_task="age")
    return {"root": tmp_path, "scans": scans, "volumes": volumes, "table": table, "model": model,
            "inputs": training}


def _ras_volume(array):
    affine = np.diag([SPACING] * 3 + [1.0])
    return Volume(np.asarray(array, dtype="float32"), affine)


def test_cli_matches_model_in_python(dataset, capsys):
    root = dataset["root"]
    out, qc = root / "out.csv", root / "qc"
    code = cli.main(["predict", str(dataset["scans"]), "--model", str(root / "model.keras"),
                     "-o", str(out), "--qc", str(qc), "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    result = pd.read_csv(out)
    expected = dataset["model"].predict(dataset["inputs"][..., None], verbose=0)
    assert list(result["id"]) == list(dataset["table"]["participant_id"])
    np.testing.assert_allclose(result["predicted_age"], expected["age"][:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result["predicted_sex"], expected["sex"][:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result["brain_age_gap"], result["predicted_age"] - result["age"], atol=1e-3)
    assert len(set(np.round(result["predicted_age"], 4))) == 3  # the scans differ

    from matplotlib import image

    for pid in result["id"]:
        png = image.imread(qc / f"{pid}.png")[..., :3].mean(axis=-1)
        h, w = png.shape
        third = png[:, : w // 3]  # sagittal view: brain in the middle, dark corners
        centre = third[int(0.35 * h):int(0.65 * h), w // 12: w // 4]
        corner = third[int(0.15 * h):int(0.22 * h), 2:w // 30]
        assert centre.mean() > 0.2 and centre.mean() > corner.mean() + 0.15


def test_cli_in_a_fresh_process_loads_the_saved_model(dataset, tmp_path):
    """The .keras file holds kerasbrain layers (SFCN's pooling): a new process must load it."""
    out = tmp_path / "fresh.csv"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "kerasbrain.cli", "predict", str(dataset["scans"]), "--model",
         str(dataset["root"] / "model.keras"), "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = dataset["model"].predict(dataset["inputs"][..., None], verbose=0)
    np.testing.assert_allclose(pd.read_csv(out)["predicted_age"], expected["age"][:, 0], rtol=1e-4, atol=1e-4)


def test_non_canonical_file_same_as_canonical(dataset):
    predictor = inference.Predictor.from_model(dataset["root"] / "model.keras")
    stored = dataset["scans"] / f"{dataset['table'].participant_id[2]}_T1w.nii.gz"
    array, _, problems = predictor.preprocess(stored)
    np.testing.assert_allclose(array, dataset["inputs"][2], rtol=1e-5, atol=1e-5)
    assert problems == []


def test_wrong_shape_warns(dataset, tmp_path):
    predictor = inference.Predictor.from_model(dataset["root"] / "model.keras")
    small = dataset["volumes"][0][:, :, 8:24]
    write_cohort(small[None], dataset["table"].iloc[:1], tmp_path / "small", spacing=SPACING)
    scans = inference.collect_inputs([tmp_path / "small" / "participants.tsv"])
    with pytest.warns(inference.InputWarning, match="field of view"):
        predictor.predict(scans, progress=False)


def test_permuted_axes_warn(dataset, tmp_path):
    predictor = inference.Predictor.from_model(dataset["root"] / "model.keras")
    swapped = np.transpose(dataset["volumes"][1], (2, 1, 0))[:, :, ::-1]
    write_cohort(swapped[None], dataset["table"].iloc[1:2], tmp_path / "bad", spacing=SPACING)
    with pytest.warns(inference.InputWarning, match="looks axes permuted"):
        predictor.predict(inference.collect_inputs(tmp_path / "bad"), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", inference.InputWarning)
        predictor.predict(inference.collect_inputs(dataset["scans"]), progress=False)


def test_scan_unlike_the_training_scans_warns(dataset, tmp_path):
    volumes, table = make_cohort(8, shape=SHAPE, sites=[0, 1, 2, 3], seed=5)
    prep = preprocessor()
    training = np.stack([prep(_ras_volume(v)) for v in volumes])
    inference.save_model(dataset["model"], tmp_path / "model.keras", prep, volumes=training)
    predictor = inference.Predictor.from_model(tmp_path / "model.keras")
    floor, median = predictor.info["template_correlation"]
    assert 0.8 < floor <= median < 1.0
    # a head shifted down by a fifth of the field of view with a bright neck slab below it:
    # an unregistered scan with more head coverage than the training scans
    moved = np.roll(dataset["volumes"][0], -6, axis=2)
    moved[8:24, 8:24, :8] = moved.max()
    write_cohort(moved[None], dataset["table"].iloc[:1], tmp_path / "moved", spacing=SPACING)
    with pytest.warns(inference.InputWarning, match="does not look like the training inputs"):
        result = predictor.predict(inference.collect_inputs(tmp_path / "moved"), progress=False)
    assert result["input_warnings"][0].startswith("does not look like the training inputs")
    with warnings.catch_warnings():
        warnings.simplefilter("error", inference.InputWarning)
        result = predictor.predict(inference.collect_inputs(dataset["scans"]), progress=False)
    assert list(result["input_warnings"]) == ["", "", ""]


def test_saturated_outputs_warn(dataset, tmp_path):
    model = tiny_model(age_bias=90.0)
    model.get_layer("age_dense").set_weights([np.zeros((4, 1)), np.zeros(1)])
    inference.save_model(model, tmp_path / "edge.keras", preprocessor(), output_ranges={"age": (20, 90)})
    predictor = inference.Predictor.from_model(tmp_path / "edge.keras")
    with pytest.warns(inference.OutputRangeWarning, match="edge of the output range"):
        result = predictor.predict(inference.collect_inputs(dataset["scans"]), progress=False)
    np.testing.assert_allclose(result["predicted_age"], 90.0)


def test_bad_inputs_give_clear_errors(dataset, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(tmp_path / "absent.nii.gz"), "--model",
                     str(dataset["root"] / "model.keras"), "-o", str(out)]) == 1
    assert "absent.nii.gz" in capsys.readouterr().err
    assert cli.main(["predict", str(dataset["scans"]), "-o", str(out)]) == 1
    assert "--weights" in capsys.readouterr().err
    shutil.copy(dataset["root"] / "model.keras", tmp_path / "bare.keras")
    with pytest.raises(ValueError, match="no preprocessing known"):
        inference.Predictor.from_model(tmp_path / "bare.keras")
    assert not out.exists() and not list(tmp_path.glob("*.part"))
