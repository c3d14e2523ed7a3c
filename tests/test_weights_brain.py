"""Published brain weights beyond Peng's SFCN: pyment v4 TF checkpoints (multi-2025,
reg-2025), SynthBA's MONAI DenseNet201 and MedicalNet's ResNets.

Parity is checked against tiny reference checkpoints written by the reference
implementations themselves (tf-keras 2, MONAI) with their outputs on a fixed volume:
tests/fixtures/make_brain_weight_fixtures.py regenerates them.
"""

import dataclasses
import hashlib
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest
from _local_http import serve

import kerasbrain as kb
from kerasbrain.applications import DenseNet121, DenseNet201
from kerasbrain.applications.resnet import ResNet
from kerasbrain.applications.sfcn import SFCN, decode_predictions
from kerasbrain.weights import registry

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "brain_weights"
EXPECTED = np.load(FIXTURES / "expected.npz")
VOLUME = EXPECTED["volume"].astype("float32")[None, ..., None]
SHAPE = (32, 32, 32, 1)
TINY = (4, 4, 4, 4, 4, 4)


def _outputs(model):
    out = model(VOLUME, training=False)
    if isinstance(out, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    return keras.ops.convert_to_numpy(out)


def test_pyment_v4_multitask_checkpoint_matches_tf_keras():
    model = SFCN(weights=str(FIXTURES / "pyment_v4_multitask"), input_shape=SHAPE)
    out = _outputs(model)
    assert list(out) == list(registry.MULTITASK_OUTPUTS)
    got = np.concatenate([out[name] for name in registry.MULTITASK_OUTPUTS], axis=-1)
    np.testing.assert_allclose(got, EXPECTED["pyment_v4_multitask"], atol=1e-5, rtol=1e-5)
    assert 0 < out["sex"][0, 0] < 1 and 0 < out["handedness"][0, 0] < 1


def test_pyment_v4_regression_checkpoint_matches_tf_keras():
    model = SFCN(weights=str(FIXTURES / "pyment_v4_regression.index"), input_shape=SHAPE)
    assert model.get_layer("predictions").activation.__name__ == "linear"
    np.testing.assert_allclose(
        _outputs(model), EXPECTED["pyment_v4_regression"], atol=1e-5, rtol=1e-5
    )


@pytest.mark.backend_independent  # name mapping; JAX parity: MedicalNet tests
def test_monai_densenet201_state_dict_matches_monai():
    model = DenseNet201(
        weights=None, input_shape=SHAPE, classes=1, classifier_activation=None,
        growth_rate=1, stem_filters=2, bn_epsilon=1e-5,
    )
    kb.weights.load_weights(model, FIXTURES / "monai_densenet201.pth")
    np.testing.assert_allclose(_outputs(model), EXPECTED["monai_densenet201"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("depth", [10, 18, 50])
def test_medicalnet_resnet_state_dict_matches_monai(depth):
    model = ResNet(
        depth, weights=None, input_shape=SHAPE, classes=3, classifier_activation=None,
        block_layout="medicalnet", filters=2,
    )
    kb.weights.load_weights(model, FIXTURES / f"medicalnet_resnet{depth}.pth")
    np.testing.assert_allclose(
        _outputs(model), EXPECTED[f"medicalnet_resnet{depth}"], atol=1e-5, rtol=1e-5
    )


def test_medicalnet_backbone_loads_without_its_top():
    full = ResNet(10, weights=None, input_shape=SHAPE, classes=3, block_layout="medicalnet",
                  filters=2)
    kb.weights.load_weights(full, FIXTURES / "medicalnet_resnet10.pth")
    trunk = ResNet(10, include_top=False, weights=None, input_shape=SHAPE,
                   block_layout="medicalnet", filters=2, pooling="avg")
    kb.weights.load_weights(trunk, FIXTURES / "medicalnet_resnet10.pth")
    for layer in trunk.layers:
        for a, b in zip(layer.get_weights(), full.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.backend_independent
def test_missing_checkpoint_shard_or_index_is_named(tmp_path):
    for kept, missing in ((".index", ".data-00000-of-00001"), (".data-00000-of-00001", ".index")):
        folder = tmp_path / missing.strip(".")
        folder.mkdir()
        shutil.copy(FIXTURES / f"pyment_v4_multitask{kept}", folder / f"ckpt{kept}")
        with pytest.raises(FileNotFoundError, match=rf"ckpt{missing}.*missing"):
            kb.weights.load_weights(SFCN(weights=None, filters=TINY, input_shape=SHAPE,
                                         head="multitask"), folder / "ckpt")


def test_mismatched_shapes_name_the_tensor():
    model = SFCN(weights=None, filters=(8, 4, 4, 4, 4, 4), input_shape=SHAPE, head="multitask")
    with pytest.raises(ValueError, match=r"layer_with_weights-0/kernel.*block0_conv"):
        kb.weights.load_weights(model, FIXTURES / "pyment_v4_multitask")


@pytest.mark.backend_independent  # error message
def test_densenet_state_dict_for_another_depth_is_refused():
    model = DenseNet121(weights=None, input_shape=SHAPE, classes=1, growth_rate=1,
                        stem_filters=2)
    with pytest.raises(ValueError, match=r"DenseNet201 state dict.*model is DenseNet121"):
        kb.weights.load_weights(model, FIXTURES / "monai_densenet201.pth")


def test_resnet_state_dict_for_another_depth_is_refused():
    model = ResNet(10, weights=None, input_shape=SHAPE, classes=3, block_layout="medicalnet",
                   filters=2)
    with pytest.raises(ValueError, match=r"ResNet18 state dict; the model is ResNet10"):
        kb.weights.load_weights(model, FIXTURES / "medicalnet_resnet18.pth")


@pytest.mark.backend_independent
def test_registry_entries_are_complete():
    for key in ("multi-2025", "multi-2025-no-abcd", "reg-2025", "synthba-g", "synthba-u"):
        spec = registry.get_spec(key)
        assert spec.license and spec.citation and spec.trained_for and spec.source
        for file_spec in spec.files:
            assert len(file_spec.git_blob_sha1) == 40
            int(file_spec.git_blob_sha1, 16)
    assert [f.filename for f in registry.get_spec("multi-2025").files] == [
        "multi-2025.index", "multi-2025.data-00000-of-00001"]
    for depth in (10, 18, 34, 50, 101, 152, 200):
        spec = registry.get_spec("medicalnet", architecture=f"resnet{depth}")
        assert spec.key == f"medicalnet:resnet{depth}"
        assert spec.verification == "SHA-256 pinned on first download"
        assert spec.config["block_layout"] == "medicalnet"
    with pytest.raises(ValueError, match="exist for resnet10.*not 'densenet121'"):
        registry.get_spec("medicalnet", architecture="densenet121")
    names = {row["name"] for row in kb.weights.list_weights(print_fn=None)}
    assert {"multi-2025", "reg-2025", "synthba-g", "medicalnet:resnet50"} <= names


def _blob(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def local_registry(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    return registry


def test_multi_2025_downloads_both_files_converts_and_decodes(keras_home, local_registry):
    names = ("pyment_v4_multitask.index", "pyment_v4_multitask.data-00000-of-00001")
    blobs = {n: (FIXTURES / n).read_bytes() for n in names}
    with serve({f"/{n}": data for n, data in blobs.items()}) as server:
        real = registry.get_spec("multi-2025")
        files = tuple(
            dataclasses.replace(f, url=f"{server.url}/{n}", git_blob_sha1=_blob(blobs[n]))
            for f, n in zip(real.files, names, strict=True)
        )
        registry.register(dataclasses.replace(
            real, files=files, config={**real.config, "filters": TINY, "input_shape": SHAPE}
        ))
        model = SFCN(weights="multi-2025")
        assert len(server.requests) == 2
        SFCN(weights="multi-2025")  # converted once, then reused
        assert len(server.requests) == 2
    cache = keras_home / "models" / "kerasbrain"
    assert (cache / "multi-2025.weights.h5").exists()
    assert model.get_layer("block5_relu").output.shape[-1] == 4
    out = decode_predictions(_outputs(model), weights="multi-2025")
    expected = EXPECTED["pyment_v4_multitask"][0]
    for i, name in enumerate(registry.MULTITASK_OUTPUTS):
        np.testing.assert_allclose(out[name], [expected[i]], atol=1e-5, rtol=1e-5)
    trunk = SFCN(weights="multi-2025", include_top=False, pooling="max")
    np.testing.assert_array_equal(
        trunk.get_layer("block0_conv").get_weights()[0],
        model.get_layer("block0_conv").get_weights()[0],
    )


@pytest.mark.backend_independent  # download + conversion; JAX parity: MedicalNet tests
def test_synthba_registry_weights_predict_years(keras_home, local_registry):
    data = (FIXTURES / "monai_densenet201.pth").read_bytes()
    with serve({"/synthba-g.pth": data}) as server:
        real = registry.get_spec("synthba-g")
        file_spec = dataclasses.replace(
            real.files[0], url=f"{server.url}/synthba-g.pth", git_blob_sha1=_blob(data)
        )
        registry.register(dataclasses.replace(
            real, files=(file_spec,), config={**real.config, "growth_rate": 1, "stem_filters": 2}
        ))
        model = DenseNet201(weights="synthba-g", input_shape=SHAPE, growth_rate=1,
                            stem_filters=2)
    np.testing.assert_allclose(
        _outputs(model), 100 * EXPECTED["monai_densenet201"], atol=1e-3, rtol=1e-5
    )


@pytest.mark.backend_independent
def test_unpublished_hash_is_pinned_on_first_download(keras_home, local_registry, capsys):
    data = b"medicalnet weights" * 1000
    with serve({"/r10.pth": data, "/r10b.pth": data[::-1]}) as server:
        real = registry.get_spec("medicalnet", architecture="resnet10")
        spec = dataclasses.replace(real, files=(dataclasses.replace(
            real.files[0], url=f"{server.url}/r10.pth"),))
        registry.register(spec)
        path = kb.weights.get_file("resnet10", "medicalnet")
        assert "pinned" in capsys.readouterr().out
        pin = pathlib.Path(path + ".sha256-pin").read_text().strip()
        assert pin == hashlib.sha256(data).hexdigest()
        # a different file later is rejected against the pin
        os.remove(path)
        os.remove(path + ".verified")
        registry.register(dataclasses.replace(spec, files=(dataclasses.replace(
            spec.files[0], url=f"{server.url}/r10b.pth"),)))
        with pytest.raises(kb.weights.IntegrityError, match="corrupt"):
            kb.weights.get_file("resnet10", "medicalnet")
        assert not os.path.exists(path)


def test_medicalnet_weights_refuse_a_classifier_top():
    with pytest.raises(ValueError, match="no classifier.*include_top=False"):
        ResNet(10, weights="medicalnet", input_shape=SHAPE)


@pytest.mark.slow
def test_finetuning_from_the_converted_multitask_model_keeps_and_adds_heads():
    pretrained = SFCN(weights=str(FIXTURES / "pyment_v4_multitask"), input_shape=SHAPE)
    tasks = [kb.tasks.Regression("age"), kb.tasks.Binary("diagnosis")]
    model = kb.transfer.finetune(pretrained, tasks, strategy="full", replace_heads=["diagnosis"])
    before = model(VOLUME, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(before["age"]), _outputs(pretrained)["age"], atol=1e-5
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *SHAPE)).astype("float32")
    y = {"age": rng.uniform(40, 80, 4).astype("float32"), "diagnosis": np.array([0, 1, 0, 1])}
    history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert {"age_mae", "diagnosis_auc"} <= set(history.history)
