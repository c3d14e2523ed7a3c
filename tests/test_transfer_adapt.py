"""BatchNorm adaptation (AdaBN) and the BatchNorm momentum of SFCN and its heads."""

import warnings

import keras
import numpy as np
import pandas as pd
import pytest

import kerasbrain as kb
from kerasbrain import cli, inference, tasks
from kerasbrain.data import Preprocessor, Volume
from kerasbrain.datasets.synthetic import make_cohort, write_cohort
from kerasbrain.transfer import BatchNormAdaptationWarning, adapt_batchnorm

SHAPE = (32, 32, 32)


def _backbone(**kwargs):
    return kb.applications.SFCN(weights=None, include_top=False, input_shape=(*SHAPE, 1),
                                pooling="avg", filters=(4, 8, 8, 8, 8, 8), **kwargs)


def _volumes(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 0.3, (n, *SHAPE, 1)).astype("float32")
    x[:, 8:24, 8:24, 8:24] += rng.uniform(0, 1, (n, 1, 1, 1, 1)).astype("float32")
    return x


def _values(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.variables}


def _statistics(model):
    layers = sorted(kb.transfer.batchnorm_layers(model), key=lambda layer: layer.name)
    return [np.concatenate([keras.ops.convert_to_numpy(layer.moving_mean),
                            keras.ops.convert_to_numpy(layer.moving_variance)])
            for layer in layers]


def test_adaptation_changes_only_moving_statistics_and_matches_batch_statistics():
    """On a nested, frozen model: every other variable bit-identical; on scans with another
    gain and offset, inference mode after adaptation = training mode with all scans in one batch."""
    backbone = _backbone()
    model = kb.models.multitask(backbone, [tasks.Regression("age")], freeze_backbone=True)
    assert len(kb.transfer.batchnorm_layers(model)) == 6  # found inside the nested backbone
    x = _volumes(12)
    before = _values(model)
    with pytest.warns(BatchNormAdaptationWarning, match="on 12 scans"):
        assert adapt_batchnorm(model, x, batch_size=6, verbose=0) is model  # the "training" site
    after = _values(model)
    assert before.keys() == after.keys()
    for path, value in before.items():
        if path.endswith(("moving_mean", "moving_variance")):
            assert not np.allclose(value, after[path]), path
        else:
            np.testing.assert_array_equal(value, after[path], err_msg=path)

    shifted = 1.7 * x + 0.5  # another scanner: other gain and offset
    reference = kb.transfer.copy_model(backbone)
    for layer in kb.transfer.batchnorm_layers(reference):
        layer.trainable = True  # frozen BatchNorm stays in inference mode
    batch_statistics = np.asarray(reference(shifted, training=True))  # all scans in one batch
    unadapted = np.asarray(backbone(shifted, training=False))
    with pytest.warns(BatchNormAdaptationWarning):
        adapt_batchnorm(model, shifted, batch_size=6, verbose=0)
    adapted = np.asarray(backbone(shifted, training=False))
    scale = np.abs(batch_statistics).max()
    assert np.abs(unadapted - batch_statistics).max() > 0.1 * scale
    np.testing.assert_allclose(adapted, batch_statistics, atol=1e-4 * scale, rtol=0)


@pytest.mark.backend_independent
def test_arrays_iterables_and_batch_sizes_give_the_same_statistics():
    import tensorflow as tf

    x = _volumes(9)
    model = _backbone()
    initial = model.get_weights()
    results = []
    sources = [
        (x, 4),
        (x[..., 0], 9),  # one-channel input without the channel axis
        ((volume[..., 0] for volume in x), 2),  # a generator of single volumes
        (tf.data.Dataset.from_tensor_slices((x, np.arange(9))).batch(5), 3),  # (volumes, labels)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchNormAdaptationWarning)
        for volumes, batch_size in sources:
            model.set_weights(initial)
            adapt_batchnorm(model, volumes, batch_size=batch_size, verbose=0)
            results.append(_statistics(model))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # float32 sums in other orders


@pytest.mark.backend_independent
def test_bad_input_errors_and_leaves_the_model_unchanged():
    model = _backbone()
    original = _statistics(model)
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match="'plain' has no BatchNormalization layers"):
        adapt_batchnorm(dense, np.zeros((30, 4)))
    with pytest.raises(ValueError, match="at least 4 scans, got 3"):
        adapt_batchnorm(model, _volumes(3), verbose=0)
    with pytest.raises(ValueError, match="at least 4 scans, got 2"):
        adapt_batchnorm(model, iter(_volumes(2)), verbose=0)
    with pytest.raises(ValueError, match="at least 4 scans, got 0"):
        adapt_batchnorm(model, [], verbose=0)
    with pytest.raises(ValueError, match=r"shape \(5, 32, 32, 16, 1\) does not fit .* \(32, 32, 32, 1\)"):
        adapt_batchnorm(model, _volumes(5)[:, :, :, :16], verbose=0)
    good = list(_volumes(6))
    with pytest.raises(ValueError, match=r"volumes item 4: shape \(32, 32, 30, 1\)"):
        adapt_batchnorm(model, good[:4] + [good[4][:, :, :30]] + good[5:], verbose=0)
    with pytest.warns(BatchNormAdaptationWarning), pytest.raises(ValueError, match="NaN or inf"):
        adapt_batchnorm(model, np.concatenate([_volumes(5), np.full((1, *SHAPE, 1), np.nan, "float32")]),
                        verbose=0)
    for a, b in zip(original, _statistics(model), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        adapt_batchnorm(model, _volumes(5), batch_size=0)


@pytest.mark.backend_independent
def test_momentum_as_trained_survives_save_and_load(tmp_path):
    backbone = _backbone()
    bns = kb.transfer.batchnorm_layers(backbone)
    assert [layer.momentum for layer in bns] == [0.9] * 6
    model = kb.transfer.finetune(backbone, [tasks.Binary("disease")], strategy="full")
    assert [layer.momentum for layer in kb.transfer.batchnorm_layers(model)] == [0.9] * 6
    model.save(tmp_path / "model.keras")
    loaded = kb.models.load_model(tmp_path / "model.keras")
    assert [layer.momentum for layer in kb.transfer.batchnorm_layers(loaded)] == [0.9] * 6
    slow = _backbone(bn_momentum=0.99)
    slow.save(tmp_path / "slow.keras")
    assert {layer.momentum for layer in kb.transfer.batchnorm_layers(
        kb.models.load_model(tmp_path / "slow.keras"))} == {0.99}


@pytest.mark.backend_independent
def test_finetune_and_learning_curve_adapt(tmp_path):
    backbone = _backbone()
    x = _volumes(24, seed=1)
    labels = pd.DataFrame({"high": (x[:, 16, 16, 16, 0] > np.median(x[:, 16, 16, 16, 0])).astype(int)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchNormAdaptationWarning)
        frozen = kb.transfer.finetune(backbone, [tasks.Binary("high")], strategy="frozen",
                                      adapt_batchnorm=x[:8])
        expected = adapt_batchnorm(kb.transfer.copy_model(backbone), x[:8], verbose=0)
        for a, b in zip(_statistics(frozen), _statistics(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(_statistics(backbone)[0], _statistics(frozen)[0])  # a copy adapted
        with pytest.raises(ValueError, match="strategy='scratch'"):
            kb.transfer.finetune(backbone, [tasks.Binary("high")], strategy="scratch", adapt_batchnorm=x)
        table = kb.transfer.learning_curve(
            (x[:16], labels[:16]), [tasks.Binary("high")], sizes=[8], resamples=1,
            strategies=["linear"], test=(x[16:], labels[16:]), backbone=backbone,
            adapt_batchnorm=x[:4], batch_size=4)
    assert list(dict.fromkeys(table.strategy)) == ["linear", "linear-adapted"]
    auc = table[table.metric == "auc"].set_index("strategy")["value"]
    assert auc["linear"] != auc["linear-adapted"]


@pytest.mark.backend_independent
def test_predict_cli_adapts_to_the_scans(tmp_path, capsys):
    spacing = 192.0 / SHAPE[0]
    volumes, table = make_cohort(5, shape=SHAPE, sites=[6], seed=2)
    write_cohort(volumes, table, tmp_path / "scans", spacing=spacing)
    prep = Preprocessor(orientation="RAS", spacing=spacing, shape=SHAPE, intensity="mean")
    backbone = _backbone()
    model = keras.Model(backbone.input, {"age": keras.layers.Dense(1, name="age")(backbone.output)})
    inputs = np.stack([prep(Volume(v, np.diag([spacing] * 3 + [1.0]))) for v in volumes])
    inference.save_model(model, tmp_path / "model.keras", prep)
    outputs = {}
    for flag in ([], ["--adapt"]):
        out = tmp_path / f"out{len(flag)}.csv"
        code = cli.main(["predict", str(tmp_path / "scans"), "--model", str(tmp_path / "model.keras"),
                         "-o", str(out), "--batch-size", "2", *flag])
        assert code == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        assert ("warning: adapting BatchNorm statistics on 5 scans" in err) == bool(flag), err
        outputs[bool(flag)] = pd.read_csv(out)["predicted_age"].to_numpy()
    with pytest.warns(BatchNormAdaptationWarning):
        expected = adapt_batchnorm(model, inputs, verbose=0).predict(inputs[..., None], verbose=0)["age"][:, 0]
    np.testing.assert_allclose(outputs[True], expected, rtol=1e-4, atol=1e-4)
    assert np.abs(outputs[True] - outputs[False]).max() > 1e-3
