"""Raw head -> model input: `kb.data.prepare`, `kerasbrain prepare`, the QC report.

Brain extraction runs deepbet's real pipeline (`extract_brain`) with two small Keras
networks that mark bright tissue as brain (the published networks need their 100 MB
weights); registration runs SimpleITK against the real MNI152 template.
"""

import base64
import html.parser
import os
import warnings

import keras
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from keras import ops

from kerasbrain import cli
from kerasbrain.data import brain as brain_module
from kerasbrain.data.io import VolumeError, load_volume
from kerasbrain.data.pipeline import ContrastWarning, prepare
from kerasbrain.data.preprocess import Preprocessor
from kerasbrain.data.registration import AffineTransform, apply_transform, to_native
from kerasbrain.datasets.synthetic import make_cohort

pytest.importorskip("SimpleITK")
pytest.importorskip("nilearn")


class BrightTissue(keras.layers.Layer):
    """(1, x, y, z, 1) -> (1, x, y, z, 2): probability that a voxel is above 40% of the range."""

    def call(self, x):
        low = ops.min(x, axis=(1, 2, 3, 4), keepdims=True)
        high = ops.max(x, axis=(1, 2, 3, 4), keepdims=True)
        p = ops.sigmoid(2000.0 * ((x - low) / (high - low) - 0.4))
        return ops.concatenate([1.0 - p, p], axis=-1)


def bright_tissue_models():
    inputs = keras.Input((None, None, None, 1))
    model = keras.Model(inputs, BrightTissue()(inputs))
    return model, model


@pytest.fixture(scope="module")
def networks():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(brain_module._MODELS, keras.backend.backend(), bright_tissue_models())
        yield


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Two synthetic T1 heads, 48^3 at 4 mm, stored PSR (not RAS), with participants.tsv."""
    folder = tmp_path_factory.mktemp("raw")
    make_cohort(2, shape=(48, 48, 48), sites=[0], seed=5, out_dir=str(folder),
                orientation="PSR")
    return folder


@pytest.fixture(scope="module")
def prepared(networks, heads):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, details = prepare(str(heads / "sub-0000_T1w.nii.gz"), weights="ukb",
                             return_details=True)
    return x, details, caught


def write(path, array, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(array, "float32"), np.eye(4) if affine is None
                             else affine), str(path))
    return str(path)


def test_prepare_returns_the_preprocessed_registered_brain(prepared, heads):
    x, details, caught = prepared
    assert not [w for w in caught if issubclass(w.category, ContrastWarning)]
    assert x.shape == (160, 192, 160) and x.dtype == np.float32
    np.testing.assert_array_equal(x, Preprocessor.for_weights("ukb")(details["registered"]))
    assert details["registered"].shape == (182, 218, 182)
    assert details["mask"].shape == (48, 48, 48)
    assert details["mask"].orientation == "PSR"
    truth = pd.read_csv(heads / "participants.tsv", sep="\t")["brain_volume_ml"][0]
    assert 0.7 * truth < details["tiv_cm3"] < 1.5 * truth  # brain + some CSF
    assert details["dice"] > 0.8
    assert np.isfinite(x).all()
    # the registered mask is the native mask moved by the transform
    moved = apply_transform(details["mask"], details["transform"], grid="ukb")
    np.testing.assert_array_equal(moved.array > 0.5, details["registered_mask"].array > 0)


@pytest.mark.backend_independent
def test_prepare_warns_on_t2_like_contrast(networks, heads, tmp_path):
    head = load_volume(str(heads / "sub-0001_T1w.nii.gz"))
    array = head.array
    brain = array > 0.45 * array.max()
    inverted = np.where(brain, array.max() * 1.1 - array, array)  # WM dark, GM brighter
    path = write(tmp_path / "t2.nii.gz", inverted, head.affine)
    with pytest.warns(ContrastWarning, match="t2.nii.gz.*not a T1-weighted"):
        prepare(path)


@pytest.mark.backend_independent
def test_prepare_bad_input(networks, tmp_path):
    with pytest.raises(VolumeError, match="four.nii.gz.*3D"):
        prepare(write(tmp_path / "four.nii.gz", np.ones((8, 8, 8, 2))))
    with pytest.raises(VolumeError, match="flat.nii.gz.*3D"):
        prepare(write(tmp_path / "flat.nii.gz", np.ones((8, 8))))
    with pytest.raises(VolumeError, match="zeros.nii.gz.*constant: no head"):
        prepare(write(tmp_path / "zeros.nii.gz", np.zeros((32, 32, 32))))


@pytest.mark.backend_independent
def test_prepare_nan_voxels_warned(networks, heads, tmp_path):
    head = load_volume(str(heads / "sub-0000_T1w.nii.gz"))
    array = head.array.copy()
    array[:3] = np.nan
    path = write(tmp_path / "nan.nii.gz", array, head.affine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = prepare(path)
    assert any("nan.nii.gz" in str(w.message) and "NaN" in str(w.message) for w in caught)
    assert np.isfinite(x).all()


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.rows = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "tr" and "id" in attrs:
            self.rows.append(attrs["id"])


@pytest.mark.slow
@pytest.mark.backend_independent
def test_cli_prepare_end_to_end(networks, heads, tmp_path):
    out = tmp_path / "prepared"
    assert cli.main(["prepare", str(heads), str(out), "--weights", "ukb"]) == 0
    table = pd.read_csv(out / "prepared.csv")
    assert sorted(table["id"]) == ["sub-0000", "sub-0001"]
    for _, row in table.iterrows():
        for key in ("path", "brain", "mask", "transform", "qc"):
            assert (out / row[key]).exists(), row[key]
        assert nib.load(out / row["path"]).shape == (182, 218, 182)
        assert 500 < row["tiv_cm3"] < 2500
        assert row["dice"] > 0.8
    # the transform takes the registered mask back onto the native mask
    row = table.iloc[0]
    transform = AffineTransform.load(out / row["transform"])
    mask = nib.load(out / row["mask"])
    native = load_volume(out / row["mask"], check=False)
    back = to_native(apply_transform(native, transform, grid="ukb"), transform)
    assert back.shape == mask.shape
    a, b = back.array > 0.5, native.array > 0.5
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95

    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert sorted(parser.rows) == sorted(table["id"])
    assert len(parser.images) == 2
    for image in parser.images:
        head, data = image["src"].split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.backend_independent
def test_report_sorts_worst_first_and_flags():
    from kerasbrain.data.pipeline import flags
    from kerasbrain.data.qc import report_html

    png = b"\x89PNG\r\n\x1a\nfake"
    scans = [
        {"id": "good", "png": png, "tiv_cm3": 1500, "dice": 0.95, "template_correlation": 0.4},
        {"id": "small", "png": png, "tiv_cm3": 700, "dice": 0.94, "template_correlation": 0.4},
        {"id": "misaligned", "png": png, "tiv_cm3": 1400, "dice": 0.7,
         "template_correlation": 0.05},
    ]
    for scan in scans:
        scan["flags"] = flags(scan["tiv_cm3"], scan["dice"], scan["template_correlation"])
    assert scans[0]["flags"] == []
    assert "TIV 700" in scans[1]["flags"][0]
    assert len(scans[2]["flags"]) == 2
    parser = _Images()
    parser.feed(report_html(scans))
    assert parser.rows == ["misaligned", "small", "good"]
    assert len(parser.images) == 3


@pytest.mark.backend_independent
def test_template_mask_and_grid_overlap():
    from kerasbrain.data.registration import registration_overlap, resample_to_grid
    from kerasbrain.data.template import load_template, template_mask

    template = load_template(1)
    assert template.shape == (197, 233, 189)
    mask = template_mask(template)
    volume_cm3 = mask.sum() / 1000.0
    assert 1700 < volume_cm3 < 2000  # nilearn's mask: brain, cerebellum, brain stem
    on_grid = resample_to_grid(template, np.eye(4), "ukb")
    assert registration_overlap(on_grid.array > 0.2) > 0.99
    shifted = resample_to_grid(template, np.array(
        [[1, 0, 0, 10], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "ukb")
    assert registration_overlap(shifted.array > 0.2) < 0.9
    assert os.path.basename(template.path).startswith("mni_icbm152_t1")


@pytest.mark.slow
@pytest.mark.backend_independent
def test_cli_predict_with_prepare(networks, heads, tmp_path):
    from kerasbrain import inference

    inputs = keras.Input((160, 192, 160, 1))
    outputs = keras.layers.Dense(1, name="age")(keras.layers.GlobalAveragePooling3D()(inputs))
    model = keras.Model(inputs, outputs)
    inference.save_model(model, tmp_path / "model.keras", Preprocessor.for_weights("ukb"))
    out = tmp_path / "ages.csv"
    assert cli.main(["predict", str(heads / "sub-0000_T1w.nii.gz"), "--model",
                     str(tmp_path / "model.keras"), "--prepare", "-o", str(out)]) == 0
    result = pd.read_csv(out)
    assert len(result) == 1 and np.isfinite(result.filter(like="predicted").to_numpy()).all()
    prepared = tmp_path / "ages_prepared"
    assert (prepared / "report.html").exists() and (prepared / "prepared.csv").exists()
    # the model saw the registered brain: its mean through the dense layer
    x = Preprocessor.for_weights("ukb")(str(prepared / "sub-0000_T1w_mni.nii.gz"))
    expected = model.predict(x[None, ..., None], verbose=0)[0, 0]
    np.testing.assert_allclose(result.filter(like="predicted").to_numpy()[0, 0], expected,
                               rtol=1e-4)
