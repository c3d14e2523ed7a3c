"""Maps in the space of the scan (reorientation, crop, saved registration) and the
``kerasbrain explain`` / ``predict --explain`` commands on NIfTI files written here."""

import json
import os

import keras
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from kerasbrain import cli, inference
from kerasbrain.data import Preprocessor, load_volume
from kerasbrain.datasets.synthetic import make_cohort, write_cohort
from kerasbrain.explain import space

pytestmark = pytest.mark.backend_independent

SHAPE = (24, 24, 24)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain")
    volumes, table = make_cohort(2, shape=(28, 30, 26), sites=1, seed=3)
    write_cohort(volumes, table, tmp / "scans", spacing=192.0 / 28, orientation="PSR")
    return tmp


def crop_preprocessor():
    return Preprocessor(orientation="RAS", shape=SHAPE, intensity="mean")


def test_map_goes_back_through_reorientation_and_crop(scans):
    path = str(scans / "scans" / "sub-0000_T1w.nii.gz")
    pre = crop_preprocessor()
    grid = pre.transform(path)
    image = space.to_scan(grid.array, path, pre)  # the preprocessed image as the "map"
    raw = load_volume(path)
    assert image.shape == raw.shape and np.allclose(image.affine, raw.affine)
    back = np.asarray(image.dataobj)
    inside = back != 0
    mean = float(np.mean(space.resample_map(np.ones(grid.shape), grid.affine, raw.shape, raw.affine) > 0.5))
    assert abs(inside.mean() - mean) < 0.05 and inside.sum() > 0.5 * np.prod(SHAPE)
    # intensities divided by the mean, voxels back in their place (PSR file, RAS grid)
    ratio = raw.array[inside] / back[inside]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    with pytest.raises(ValueError, match="is not the model grid"):
        space.to_scan(np.zeros((4, 4, 4)), path, pre)


def test_native_space_needs_the_saved_transform(scans, tmp_path):
    native = str(scans / "scans" / "sub-0001_T1w.nii.gz")
    raw = load_volume(native)
    shift = np.eye(4)
    shift[:3, 3] = [6.0, -3.0, 2.0]  # "registration": native world -> registered world
    registered = nib.Nifti1Image(raw.array, shift @ raw.affine)
    path = str(tmp_path / "reg_T1w.nii.gz")
    nib.save(registered, path)
    pre = crop_preprocessor()
    grid = pre.transform(path)
    with pytest.raises(FileNotFoundError, match=r"reg_T1w.nii.gz: no saved transform \(.*reg_T1w_transform.json"):
        space.to_native(grid.array, path, pre)
    with open(space.transform_path(path), "w") as f:
        json.dump({"native": os.path.relpath(native, tmp_path), "matrix": shift.tolist()}, f)
    image = space.to_native(grid.array, path, pre)
    assert image.shape == raw.shape and np.allclose(image.affine, raw.affine)
    back = np.asarray(image.dataobj)
    inside = back != 0
    ratio = raw.array[inside] / back[inside]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)


def tiny_model():
    inputs = keras.Input((*SHAPE, 1))
    x = keras.layers.Conv3D(2, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling3D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, {"age": keras.layers.Dense(1, name="age")(x),
                                "sex": keras.layers.Dense(1, activation="sigmoid", name="sex")(x)})


@pytest.fixture(scope="module")
def model_path(scans):
    path = str(scans / "model.keras")
    inference.save_model(tiny_model(), path, crop_preprocessor(), brain_age_task="age")
    return path


def test_explain_command_writes_maps_overlays_and_the_average(scans, model_path, capsys):
    out = scans / "maps"
    code = cli.main(["explain", str(scans / "scans"), "--model", model_path, "--method", "lrp",
                     "--rules", "pyment", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "maps.csv")
    assert list(table["id"]) == ["sub-0000", "sub-0001"]
    for name in [*table["map"], *table["overlay"], "average_lrp.nii.gz", "average_lrp.png"]:
        assert (out / name).stat().st_size > 0
    image = nib.load(out / table["map"][0])
    raw = nib.load(scans / "scans" / "sub-0000_T1w.nii.gz")
    assert image.shape == raw.shape and np.allclose(image.affine, raw.affine)
    assert not list(out.glob("*.part*"))
    code = cli.main(["explain", str(scans / "scans"), "--model", model_path, "--method", "gradcam",
                     "--layer", "nope", "-o", str(scans / "bad")])
    assert code == 1 and "layer 'nope' not in" in capsys.readouterr().err
    code = cli.main(["explain", str(scans / "scans"), "--model", model_path, "--output", "bmi",
                     "-o", str(scans / "bad")])
    assert code == 1 and "output 'bmi' not in model" in capsys.readouterr().err
    code = cli.main(["explain", str(scans / "scans"), "--model", model_path, "--space", "native",
                     "-o", str(scans / "bad")])
    assert code == 1 and "no saved transform" in capsys.readouterr().err


def test_predict_explain_adds_the_maps(scans, model_path):
    csv = scans / "pred.csv"
    code = cli.main(["predict", str(scans / "scans"), "--model", model_path, "-o", str(csv),
                     "--explain", "gradcam", "--explain-space", "model", "--variant", "hirescam"])
    assert code == 0
    table = pd.read_csv(csv)
    assert "predicted_age" in table and len(table) == 2
    for path in table["map_gradcam"]:
        assert nib.load(path).shape == SHAPE
