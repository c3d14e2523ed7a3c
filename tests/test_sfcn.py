"""SFCN with published-format weights: parity with PyTorch, pyment HDF5, registry loading,
conversion, full-size layout, saving, and bad input."""

import dataclasses
import hashlib
import importlib.util
import json
import os

import h5py
import keras
import numpy as np
import pytest
from _local_http import serve

from kerasbrain import cli
from kerasbrain.applications import SFCN
from kerasbrain.weights import (
    CheckpointError,
    convert,
    load_weights,
    loading,
    registry,
    sfcn_converters,
)
from kerasbrain.weights.legacy_h5 import write_layers

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
LEGACY = os.path.join(FIXTURES, "sfcn_tiny_legacy.p")
ZIP = os.path.join(FIXTURES, "sfcn_tiny_zip.pt")


def _fixture_script():
    spec = importlib.util.spec_from_file_location(
        "make_torch_fixtures", os.path.join(FIXTURES, "make_torch_fixtures.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _fixture_script()
EXPECTED = np.load(os.path.join(FIXTURES, "sfcn_tiny_expected.npz"))
VOLUMES = MAKE.tiny_volumes()[..., None]
INPUT_SHAPE = (*MAKE.TINY_SHAPE, 1)
TINY = dict(filters=MAKE.TINY_FILTERS, input_shape=INPUT_SHAPE)


def run(model, x=VOLUMES):
    """Inference outputs; JAX compiles the whole graph once instead of op by op."""
    if keras.backend.backend() == "jax":
        return np.asarray(model.predict_on_batch(x))
    return keras.ops.convert_to_numpy(model(x, training=False))


# ---------------------------------------------------------------------------------------
# Parity with PyTorch (fixtures made by tests/fixtures/make_torch_fixtures.py)


@pytest.mark.parametrize("path", [LEGACY, ZIP], ids=["legacy-dataparallel", "zip-wrapped"])
def test_torch_checkpoint_parity(path):
    assert EXPECTED["probabilities"].max() > 0.5  # the reference is not near-uniform
    model = SFCN(weights=path, input_shape=INPUT_SHAPE)  # filters, classes, eps from file
    assert model.output_shape == (None, MAKE.TINY_CLASSES)
    assert model.get_layer("block3_bn").epsilon == 1e-5
    probabilities = run(model)
    assert np.abs(probabilities - EXPECTED["probabilities"]).max() < 1e-4
    trunk = SFCN(weights=path, include_top=False, pooling="avg", input_shape=INPUT_SHAPE)
    assert np.abs(run(trunk) - EXPECTED["features"]).max() < 1e-4


def test_registry_weights_download_convert_once_and_load(keras_home, monkeypatch, capsys):
    data = open(LEGACY, "rb").read()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with serve({"/tiny.p": data}) as server:
        base = registry.get_spec("ukb")
        registry.register(dataclasses.replace(
            base, name="tiny-peng",
            files=(registry.FileSpec("tiny.p", f"{server.url}/tiny.p", git_blob_sha1=blob),),
            config={**base.config, "input_shape": INPUT_SHAPE, "head": "categorical",
                    "classes": MAKE.TINY_CLASSES, "filters": MAKE.TINY_FILTERS},
        ))
        model = SFCN(weights="tiny-peng")
        assert "license: MIT" in capsys.readouterr().out
        assert np.abs(run(model) - EXPECTED["probabilities"]).max() < 1e-4
        converted = keras_home / "models" / "kerasbrain" / "tiny-peng.weights.h5"
        with h5py.File(converted, "r") as f:
            assert f.attrs[loading.SOURCE_ATTR] == blob

        def no_conversion(*args, **kwargs):
            raise AssertionError("converted twice")

        monkeypatch.setattr(loading, "_convert", no_conversion)
        trunk = SFCN(weights="tiny-peng", include_top=False, pooling="avg")
        assert np.abs(run(trunk) - EXPECTED["features"]).max() < 1e-4
        assert len(server.requests) == 1
        with pytest.raises(ValueError, match="needs input_shape"):
            SFCN(weights="tiny-peng", input_shape=(32, 32, 32, 1))
    assert sorted(os.listdir(keras_home / "models" / "kerasbrain")) == [
        "tiny-peng.weights.h5", "tiny.p", "tiny.p.verified"]


def test_convert_and_cli_convert(tmp_path, capsys):
    out = convert(ZIP, tmp_path / "api.weights.h5")
    assert cli.main(["weights", "convert", LEGACY, "-o", str(tmp_path / "cli.weights.h5")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli.weights.h5")
    for path in (out, tmp_path / "cli.weights.h5"):
        model = SFCN(weights=None, input_shape=INPUT_SHAPE, filters=MAKE.TINY_FILTERS,
                     classes=MAKE.TINY_CLASSES, head="categorical", bn_epsilon=1e-5)
        load_weights(model, str(path))
        assert np.abs(run(model) - EXPECTED["probabilities"]).max() < 1e-4
    assert sorted(os.listdir(tmp_path)) == ["api.weights.h5", "cli.weights.h5"]


# ---------------------------------------------------------------------------------------
# pyment's legacy Keras HDF5 layout


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        new = [rng.normal(0, 0.3, v.shape).astype("float32") for v in values]
        if isinstance(layer, keras.layers.BatchNormalization):
            new[0] = rng.uniform(0.5, 1.5, values[0].shape).astype("float32")
            new[3] = rng.uniform(0.3, 2.0, values[3].shape).astype("float32")
        layer.set_weights(new)
    return model


def _pyment_layers(model, prefix="sfcn-rank", top=True):
    """The model's weights in tf.keras 2 layout with pyment's layer names (and the
    weightless layers in between, as save_weights writes them)."""
    layers = [(f"{prefix}_inputs", [])]
    for i in range(6):
        block = f"{prefix}_block-{i}" if i < 5 else f"{prefix}_top"
        conv, bn = model.get_layer(f"block{i}_conv"), model.get_layer(f"block{i}_bn")
        layers.append((f"{block}_conv", list(zip(
            [f"{block}_conv/kernel:0", f"{block}_conv/bias:0"], conv.get_weights(), strict=True))))
        names = ["gamma", "beta", "moving_mean", "moving_variance"]
        layers.append((f"{block}_norm", list(zip(
            [f"{block}_norm/{n}:0" for n in names], bn.get_weights(), strict=True))))
        layers.append((f"{block}_relu", []))
    if top:
        dense = model.get_layer("predictions")
        layers.append((f"{prefix}_predictions", list(zip(
            [f"{prefix}_predictions/kernel:0", f"{prefix}_predictions/bias:0"],
            dense.get_weights(), strict=True))))
    return layers


def test_pyment_h5_round_trip(tmp_path):
    source = _randomize(SFCN(weights=None, head="ranking", classes=91, **TINY))
    path = tmp_path / "ranking_sfcn_brain_age_weights.h5"
    write_layers(path, _pyment_layers(source))
    x = VOLUMES
    loaded = SFCN(weights=str(path), input_shape=TINY["input_shape"])  # head, classes from file
    assert loaded.output_shape == (None, 91)
    np.testing.assert_allclose(run(loaded, x), run(source, x), atol=1e-5)
    no_top = tmp_path / "no_top.h5"
    write_layers(no_top, _pyment_layers(source, top=False))
    trunk = SFCN(weights=str(no_top), include_top=False, pooling="avg", **TINY)
    reference = keras.Model(source.input, source.get_layer("avg_pool").output)
    np.testing.assert_allclose(run(trunk, x), run(reference, x), atol=1e-5)


def test_pyment_h5_mismatch_names_the_tensor(tmp_path):
    model = SFCN(weights=None, head="regression", **TINY)
    layers = _pyment_layers(model, "sfcn-reg")
    name, weights = layers[7]  # block-2 conv: one output channel too many
    assert name == "sfcn-reg_block-2_conv"
    kernel, bias = weights[0][1], weights[1][1]
    layers[7] = (name, [(weights[0][0], np.concatenate([kernel, kernel[..., :1]], -1)),
                        (weights[1][0], np.concatenate([bias, bias[:1]]))])
    path = tmp_path / "reg.h5"
    write_layers(path, layers)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"'sfcn-reg_block-2_conv/kernel:0' has shape"):
        load_weights(model, str(path))
    for old, new in zip(before, model.get_weights(), strict=True):  # nothing half-loaded
        np.testing.assert_array_equal(old, new)
    layers = _pyment_layers(model, "sfcn-reg")
    layers[1], layers[2] = layers[2], layers[1]  # BN where the first conv should be
    write_layers(path, layers)
    with pytest.raises(ValueError, match="'sfcn-reg_block-0_norm'.*does not look like a conv"):
        load_weights(model, str(path))


# ---------------------------------------------------------------------------------------
# Full-size layout equals PyTorch's, tensor by tensor


@pytest.mark.backend_independent  # variable shapes do not depend on the backend
@pytest.mark.parametrize("name", ["ukb", "ukb-sex"])
def test_full_size_tensors_match_pytorch(name):
    with open(os.path.join(FIXTURES, "sfcn_torch_shapes.json")) as f:
        torch_shapes = json.load(f)[name]
    config = registry.get_spec(name).config
    model = SFCN(weights=None, filters=config["filters"], classes=config["classes"],
                 head=config["head"], bn_epsilon=1e-5)
    state = {k[len("module."):]: np.zeros(s, "float32") for k, s in torch_shapes.items()}
    layer_weights = sfcn_converters.from_peng(state, source=name)
    converted = {src: value.shape for ws in layer_weights.values() for src, value in ws}
    counted = {k: a for k, a in state.items() if not k.endswith("num_batches_tracked")}
    assert set(converted) == set(counted)
    assert len(counted) == len(model.weights) == 6 * 6 + 2
    loading.assign(model, layer_weights, source=name)  # raises on any shape mismatch
    by_path = {v.path: tuple(v.shape) for v in model.weights}
    kernel = by_path["block1_conv/kernel"]
    assert kernel == tuple(np.transpose(state["feature_extractor.conv_1.0.weight"],
                                        (2, 3, 4, 1, 0)).shape)
    assert sum(a.size for a in counted.values()) == model.count_params()


# ---------------------------------------------------------------------------------------
# Saving and bad input


def test_keras_file_round_trip(tmp_path):
    model = _randomize(SFCN(weights=None, head="regression", **TINY))
    x = VOLUMES
    path = tmp_path / "sfcn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(run(restored, x), run(model, x), atol=1e-6)


def test_peng_checkpoint_into_the_wrong_model_names_the_tensor():
    model = SFCN(weights=None, input_shape=INPUT_SHAPE, filters=MAKE.TINY_FILTERS[:5] + (9,),
                 classes=MAKE.TINY_CLASSES, head="categorical")
    with pytest.raises(ValueError, match=r"'feature_extractor.conv_5.0.weight' has shape"):
        load_weights(model, LEGACY)
    with pytest.raises(ValueError, match=r"'classifier.conv_6.weight' has shape"):
        SFCN(weights=LEGACY, classes=5, input_shape=INPUT_SHAPE)


@pytest.mark.backend_independent
def test_peng_converter_rejects_missing_and_extra_tensors():
    from kerasbrain.weights import torch_pickle

    state = dict(torch_pickle.state_dict(LEGACY))
    extra = {**state, "feature_extractor.conv_6.0.weight": np.zeros((1, 1, 1, 1, 1))}
    with pytest.raises(ValueError, match="unexpected tensors.*conv_6.0.weight"):
        sfcn_converters.from_peng(extra)
    del state["feature_extractor.conv_2.1.running_var"]
    with pytest.raises(ValueError, match="'feature_extractor.conv_2.1.running_var' is missing"):
        sfcn_converters.from_peng(state)


def test_bad_weights_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown weights 'ukb2'.*brain-age-2022"):
        SFCN(weights="ukb2")
    with pytest.raises(ValueError, match=r"needs input_shape \(160, 192, 160, 1\)"):
        SFCN(weights="ukb", input_shape=(64, 64, 64, 1))
    cut = tmp_path / "cut.p"
    cut.write_bytes(open(LEGACY, "rb").read()[:5000])
    with pytest.raises(CheckpointError, match="cut.p"):
        SFCN(weights=str(cut), input_shape=INPUT_SHAPE)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        SFCN(weights=str(tmp_path / "missing.pth"), input_shape=INPUT_SHAPE)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        SFCN(weights=None, classes=1, **TINY)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="weights.npz: unknown weights format"):
        SFCN(weights=str(other), **TINY)
