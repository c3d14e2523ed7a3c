"""Each published weight set carries its whole preset: preprocessing, tasks, config; the
constructors, preprocessing and decoding read it from there."""

import inspect

import numpy as np
import pytest

import kerasbrain as kb
from kerasbrain.applications import sfcn
from kerasbrain.data.presets import PRESETS, get_preset
from kerasbrain.weights import registry

pytestmark = pytest.mark.backend_independent


def test_every_entry_carries_preprocessing_and_tasks():
    for key, spec in registry.REGISTRY.items():
        assert spec.preprocessing["requires"], key
        assert PRESETS[spec.preprocessing["name"]] == spec.preprocessing, key
        assert get_preset(spec.name) == spec.preprocessing, key
        tasks = [kb.tasks.from_spec(task) for task in spec.tasks]
        if spec.config.get("head") == "multitask":
            assert tuple(t.name for t in tasks) == spec.config["outputs"]
        elif "classes" in spec.config:
            assert len(tasks) == 1, key
    assert [t.name for t in kb.tasks.ukb_tasks()] == list(registry.MULTITASK_OUTPUTS)
    assert list(sfcn.MULTITASK_ACTIVATIONS.values()) == [
        None, "sigmoid", "sigmoid", None, None, None]


def test_sfcn_decoding_follows_the_heads_tasks():
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(40), size=3)
    centres = 42.0 + (np.arange(40) + 0.5)
    np.testing.assert_allclose(sfcn.decode_predictions(soft, "ukb"), soft @ centres)
    ranking = rng.random((3, 91))
    np.testing.assert_allclose(sfcn.decode_predictions(ranking, "brain-age-2022:ranking"),
                               3.0 + np.round(ranking).sum(axis=1))
    np.testing.assert_allclose(sfcn.decode_predictions(np.array([[50.0], [60.0]]), "brain-age-2022"),
                               [50.0, 60.0])
    sex = rng.dirichlet(np.ones(2), size=3)
    np.testing.assert_allclose(sfcn.decode_predictions(sex, "ukb-sex"), sex)
    with pytest.raises(ValueError, match="dict of outputs"):
        sfcn.decode_predictions(soft, "multi-2025")


def test_sfcn_preprocess_input_reads_the_preset():
    rng = np.random.default_rng(1)
    mni = rng.random((182, 218, 182)).astype("float32") + 0.5
    ukb = sfcn.preprocess_input(mni, "ukb")
    np.testing.assert_allclose(ukb[..., 0], (mni / mni.mean())[11:171, 13:205, 11:171], rtol=1e-5)
    pyment = sfcn.preprocess_input(mni[None, ..., None], "brain-age-2022")
    assert pyment.shape == (1, 167, 212, 160, 1)
    np.testing.assert_allclose(pyment[0, ..., 0], mni[6:173, 2:214, 0:160] / 255.0)
    small = rng.random((2, 32, 32, 32, 1)).astype("float32")
    np.testing.assert_array_equal(sfcn.preprocess_input(small, "multi-2025"), small)
    tensor = kb.applications.sfcn.keras.ops.convert_to_tensor(small)
    np.testing.assert_allclose(sfcn.preprocess_input(tensor, "brain-age-2022"), small / 255.0)


def test_one_name_to_constructor_table():
    assert kb.applications.get("densenet201") is kb.applications.DenseNet201
    assert kb.applications.get("ResNet50V2") is kb.applications.ResNet50V2
    for spec in registry.REGISTRY.values():
        assert kb.applications.get(spec.architecture)
    with pytest.raises(ValueError, match="Unknown architecture 'nope'.*SFCN"):
        kb.applications.get("nope")


def test_variants_keep_the_keras_applications_signature():
    parameters = list(inspect.signature(kb.applications.EfficientNetV2B0).parameters)
    assert parameters[:9] == ["include_top", "weights", "input_tensor", "input_shape", "pooling",
                              "classes", "classifier_activation", "include_preprocessing", "name"]
    assert list(inspect.signature(kb.applications.ConvNeXtTiny).parameters)[1] == "include_preprocessing"
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        kb.applications.ResNet18(nope=1)


def test_a_registry_head_that_does_not_fit_is_refused():
    for build, weights, head in ((kb.applications.DenseNet201, "synthba-g", 1),
                                 (kb.applications.SFCN, "ukb", 40)):
        with pytest.raises(ValueError, match=rf"have a head with {head} outputs; got classes=5. "
                                             "Use include_top=False"):
            build(weights=weights, classes=5)


def test_load_weights_needs_the_architecture_of_a_renamed_model(tmp_path):
    model = kb.applications.SFCN(weights=None, input_shape=(32, 32, 32, 1), filters=(2,) * 6,
                                 name="my_net")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"PK")
    with pytest.raises(ValueError, match="pass architecture="):
        kb.weights.load_weights(model, checkpoint)


def test_preprocess_input_has_one_pattern_and_takes_tensors():
    import keras

    x = np.random.default_rng(2).random((2, 8, 8, 8, 1)).astype("float32") * 255
    x[:, :2] = 0
    tensor = keras.ops.convert_to_tensor(x)
    families = ("sfcn", "resnet", "resnet_v2", "densenet", "inception_v3", "mobilenet_v2",
                "efficientnet", "efficientnet_v2", "convnext", "vit")
    for family in families:
        module = getattr(kb.applications, family)
        assert list(inspect.signature(module.preprocess_input).parameters)[:2] == ["x", "weights"]
        weights = "brain-age-2022" if family == "sfcn" else "medicalnet"
        out = module.preprocess_input(tensor, weights=weights)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == x.shape
    brain = kb.applications.resnet.preprocess_input(tensor, "medicalnet")[0]
    expected = kb.data.Preprocessor(orientation="RAS", intensity="zscore")._normalise(x[0], "x")
    np.testing.assert_allclose(brain, expected, atol=1e-5)
    assert np.all(brain[:2] == 0)


def test_predictor_from_weights_reads_the_preset(monkeypatch):
    from kerasbrain import inference

    monkeypatch.setattr(kb.applications, "get", lambda architecture: lambda weights: None)
    expected = {"ukb": ("brain_age", [42.0, 82.0]), "brain-age-2022:ranking": ("brain_age", [3.0, 95.0]),
                "reg-2025": ("brain_age", None), "ukb-sex": ("prediction", None),
                "dementia-2024": ("prediction", None), "synthba-g": ("brain_age", None)}
    for name, (column, output_range) in expected.items():
        predictor = inference.Predictor.from_weights(name)
        assert [d[1] for d in predictor.decoders] == [column], name
        assert predictor.info.get("output_ranges", {}).get(column) == output_range, name
        assert predictor.preprocessor.name == registry.get_spec(name).preprocessing["name"]
    multi = inference.Predictor.from_weights("multi-2025")
    assert [d[1] for d in multi.decoders] == list(registry.MULTITASK_OUTPUTS)
    assert multi.info["brain_age_task"] == "age"
    decode = dict((d[1], d[2]) for d in multi.decoders)["sex"]
    np.testing.assert_allclose(decode(np.array([[0.25], [0.75]])), [0.25, 0.75])
