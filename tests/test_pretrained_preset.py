"""A model built with registry weights knows its weight set (``model.preset``, saved in the
``.keras`` file): finetune re-ranges its heads and Predictor decodes them from the preset."""

import dataclasses
import hashlib
import os

import numpy as np
import pytest
from _local_http import serve
from test_sfcn import INPUT_SHAPE, LEGACY, MAKE, VOLUMES, run

import kerasbrain as kb
from kerasbrain import tasks
from kerasbrain.applications import SFCN, PretrainedModel
from kerasbrain.inference import Predictor
from kerasbrain.weights import registry

pytestmark = pytest.mark.backend_independent


def _register_tiny_brain_age(url, blob):
    """The tiny Peng fixture as a soft-classification weight set over ages 42-49."""
    base = registry.get_spec("ukb")
    registry.register(dataclasses.replace(
        base, name="tiny-age",
        files=(registry.FileSpec("tiny.p", url, git_blob_sha1=blob),),
        config={**base.config, "input_shape": INPUT_SHAPE, "head": "soft_classification",
                "classes": MAKE.TINY_CLASSES, "bin_range": (42.0, 49.0),
                "filters": MAKE.TINY_FILTERS},
        tasks=({"type": "soft_classification", "name": "brain_age", "bin_range": (42.0, 49.0),
                "bins": MAKE.TINY_CLASSES},),
    ))


def test_registry_model_keeps_its_preset_for_finetune_and_predictor(keras_home, monkeypatch,
                                                                     tmp_path):
    data = open(LEGACY, "rb").read()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with serve({"/tiny.p": data}) as server:
        _register_tiny_brain_age(f"{server.url}/tiny.p", blob)
        model = SFCN(weights="tiny-age")
    assert isinstance(model, PretrainedModel) and model.preset == "tiny-age"
    path = os.fspath(tmp_path / "sfcn.keras")
    model.save(path)
    loaded = kb.models.load_model(path)
    assert isinstance(loaded, PretrainedModel) and loaded.preset == "tiny-age"
    p_old = run(model)
    np.testing.assert_allclose(run(loaded), p_old, atol=1e-6)

    # 7 bins over 42-49 -> 12 bins over 40-52, with no range given: the preset has it
    tuned = kb.transfer.finetune(loaded, [tasks.SoftClassification("age", bin_range=(40, 52), bins=12)],
                                 replace_heads=False)
    kernel, bias = tuned.get_layer("age").get_weights()
    old_kernel, old_bias = model.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel[:, 2:9], old_kernel)  # centres 42.5 ... 48.5
    np.testing.assert_array_equal(bias[2:9], old_bias)
    assert bias[0] == pytest.approx(old_bias[0] - 2) and bias[11] == pytest.approx(old_bias[-1] - 3)
    p_new = np.asarray(tuned.predict(VOLUMES, verbose=0)["age"])
    np.testing.assert_allclose(p_new[:, 2:9] / p_new[:, 2:9].sum(1, keepdims=True), p_old, rtol=1e-4)
    assert not isinstance(SFCN(weights=None, **dict(input_shape=INPUT_SHAPE)), PretrainedModel)

    # no sidecar and no --weights: preprocessing and decoding come from the preset
    predictor = Predictor.from_model(path)
    assert predictor.preprocessor.name == "ukb"
    assert [d[1] for d in predictor.decoders] == ["brain_age"]
    assert predictor.info["output_ranges"] == {"brain_age": [42.0, 49.0]}
    np.testing.assert_allclose(predictor.decoders[0][2](p_old), p_old @ (42.5 + np.arange(7)), rtol=1e-6)


def test_a_clamped_regression_head_is_carried_to_a_standardised_task():
    net = SFCN(weights=None, head="regression", classes=1, output_range=(3.0, 95.0),
               input_shape=(32, 32, 32, 1), filters=(4,) * 6)
    kernel, _ = net.get_layer("predictions").get_weights()
    net.get_layer("predictions").set_weights([kernel * 0.01, np.array([40.0], "float32")])
    pretrained = PretrainedModel(net.input, net.output, name="sfcn",
                                 preset="brain-age-2022:regression")  # as SFCN(weights=...) gives
    x = np.random.default_rng(0).normal(1.0, 1.0, (3, 32, 32, 32, 1)).astype("float32")
    before = pretrained.predict(x, verbose=0)
    assert np.all((before > 3) & (before < 95))  # inside the clamp: the two heads agree
    tuned = kb.transfer.finetune(pretrained, [tasks.Regression("age", standardize=(50.0, 10.0))],
                                 replace_heads=False)
    np.testing.assert_allclose(tuned.predict(x, verbose=0)["age"], before, rtol=1e-5)
    with pytest.raises(ValueError, match="'age' is Binary but the pretrained head is Regression"):
        kb.transfer.finetune(pretrained, [tasks.Binary("age")], replace_heads=False)
