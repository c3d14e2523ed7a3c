import keras
import numpy as np
import pytest

import kerasbrain as kb
from kerasbrain import tasks


def sfcn(**kwargs):
    kwargs.setdefault("include_top", False)
    if not kwargs["include_top"]:
        kwargs.setdefault("pooling", "avg")
    kwargs.setdefault("filters", (4, 4, 4, 4, 4, 4))
    return kb.applications.SFCN(weights=None, input_shape=(32, 32, 32, 1), **kwargs)


def snapshot(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def changed(model, before):
    after = snapshot(model)
    return {path for path in before if not np.array_equal(before[path], after[path])}


X = np.random.default_rng(0).normal(1.0, 1.0, (8, 32, 32, 32, 1)).astype("float32")
Y = {"dx": np.array([0, 1] * 4, "float32")}


@pytest.mark.parametrize("strategy", ["frozen", "partial", "full", "scratch"])
def test_strategy_trains_exactly_its_variables(strategy):
    backbone = sfcn()
    model = kb.transfer.finetune(backbone, [tasks.Binary("dx")], strategy=strategy,
                                 trainable_blocks=2 if strategy == "partial" else None)
    before = snapshot(model)
    pretrained = {v.path: keras.ops.convert_to_numpy(v) for v in backbone.weights}
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    moved = changed(model, before)
    head = {"dx/kernel", "dx/bias"}
    conv = {f"block{i}_conv/kernel" for i in range(6)}
    stats = {f"block{i}_bn/moving_mean" for i in range(6)}
    if strategy == "frozen":
        assert len(model.trainable_weights) == 2 and moved == head  # BN statistics untouched
    elif strategy == "partial":
        assert len(model.trainable_weights) == 2 + 2 * 4  # blocks 4-5: conv kernel/bias, BN gamma/beta
        assert {"block4_conv/kernel", "block5_conv/kernel", "block5_bn/moving_mean"} <= moved
        assert not moved & {f"block{i}_{kind}" for i in range(4) for kind in ("conv/kernel", "bn/moving_mean")}
    else:
        assert len(model.trainable_weights) == 2 + 4 * 6
        assert head | conv | stats <= moved
    start_equal = all(np.array_equal(before[p], pretrained[p]) for p in pretrained if p in before)
    assert start_equal == (strategy != "scratch")  # scratch starts from fresh weights
    for v in backbone.weights:  # the pretrained model is never modified
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), pretrained[v.path])


def test_blocks_from_layer_names():
    names = [name for name, _ in kb.transfer.blocks(sfcn())]
    assert names == [f"block{i}" for i in range(6)]
    assert kb.transfer.blocks.__module__ == "kerasbrain.transfer.blocks"
    from kerasbrain.transfer.blocks import block_name

    assert block_name("conv5_block3_1_conv") == "conv5_block3"
    assert block_name("block_16_expand") == "block_16"
    assert block_name("block6a_expand_conv") == "block6a"
    assert block_name("convnext_tiny_stage_3_block_1_conv") == "stage_3"
    assert block_name("mixed7") == "mixed7" and block_name("stem_conv") is None


def test_two_phase_trains_heads_first():
    model = kb.transfer.finetune(sfcn(), [tasks.Binary("dx")], strategy="full", two_phase=1,
                                 learning_rate=1e-3)
    snapshots = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(snapshot(self.model))

    before = snapshot(model)
    history = model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[Record()])
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
    first = {p for p in before if not np.array_equal(before[p], snapshots[0][p])}
    second = {p for p in before if not np.array_equal(snapshots[0][p], snapshots[1][p])}
    assert first == {"dx/kernel", "dx/bias"}
    assert "block0_conv/kernel" in second and "block0_bn/moving_mean" in second
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-3)


def test_rerange_sfcn_age_bins_and_errors():
    top = sfcn(include_top=True, classes=40)  # 42-82 in 1-year bins
    task = tasks.SoftClassification("age", bin_range=(18, 90), bins=72)
    model = kb.transfer.finetune(top, [task], rerange={"age": (42, 82)})
    kernel, bias = model.get_layer("age").get_weights()
    old_kernel, old_bias = top.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel[:, 24:64], old_kernel)  # centres 42.5 ... 81.5
    np.testing.assert_array_equal(bias[24:64], old_bias)
    assert bias[0] == pytest.approx(old_bias[0] - 24)  # 24 bins below the old range
    # same features: the pretrained prediction is kept inside the old range
    p_old = top.predict(X[:2], verbose=0)
    p_new = model.predict(X[:2], verbose=0)["age"]
    np.testing.assert_allclose(p_new[:, 24:64] / p_new[:, 24:64].sum(1, keepdims=True), p_old, rtol=1e-4)
    with pytest.raises(ValueError, match="cannot reuse or re-range a head for task 'age'.*no heads"):
        kb.transfer.finetune(sfcn(), [task], rerange={"age": (42, 82)})
    with pytest.raises(ValueError, match="unknown strategy 'linear-probe'"):
        kb.transfer.finetune(sfcn(), [task], strategy="linear-probe")
    with pytest.raises(ValueError, match="needs trainable_blocks"):
        kb.transfer.finetune(sfcn(), [task], strategy="partial")
    with pytest.raises(ValueError, match="trainable_blocks=9 but the backbone has 6 blocks"):
        kb.transfer.finetune(sfcn(), [task], strategy="partial", trainable_blocks=9)


def test_keep_pretrained_heads_of_a_multitask_model():
    pretrained = kb.models.multitask(sfcn(), [tasks.Regression("age", standardize=(60.0, 10.0)),
                                              tasks.Binary("sex")])
    new_tasks = [tasks.Binary("sex"), tasks.Binary("dx"), tasks.Regression("age", standardize=(50.0, 5.0))]
    model = kb.transfer.finetune(pretrained, new_tasks, replace_heads=False, strategy="frozen")
    out_old = pretrained.predict(X[:3], verbose=0)
    out_new = model.predict(X[:3], verbose=0)
    np.testing.assert_allclose(out_new["sex"], out_old["sex"], rtol=1e-5)  # copied
    np.testing.assert_allclose(out_new["age"], out_old["age"], rtol=1e-4)  # re-standardised
    assert [t.name for t in model.tasks] == ["sex", "dx", "age"]
    dropped = kb.transfer.finetune(pretrained, [tasks.Binary("sex")], replace_heads=False)
    assert list(dropped.output) == ["sex"]
    with pytest.raises(ValueError, match="Binary but the pretrained head is Regression"):
        kb.transfer.finetune(pretrained, [tasks.Binary("age")], replace_heads=False)


def _cohort(n, seed):
    """Noisy volumes whose central sphere's brightness is a latent value in [0, 1]."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 1, n).astype("float32")
    grid = np.stack(np.meshgrid(*[np.arange(32) - 15.5] * 3, indexing="ij"), -1)
    sphere = (np.linalg.norm(grid, axis=-1) < 8).astype("float32")
    volume = latent[:, None, None, None] * sphere + rng.normal(0, 0.3, (n, 32, 32, 32))
    return volume[..., None].astype("float32"), latent


@pytest.mark.slow
def test_pretrained_then_finetuned_beats_scratch():
    """Pretraining on a large source cohort to regress the latent value gives features
    that make a small target task (latent > 0.5) learnable within the same short budget
    where training from scratch is not."""
    x_source, latent_source = _cohort(96, 1)
    pretrained = kb.models.multitask(sfcn(), [tasks.Regression("latent", standardize=(0.5, 0.3))],
                                     learning_rate=1e-2, dropout=0.0)
    pretrained.fit(x_source, {"latent": latent_source}, batch_size=16, epochs=6, verbose=0)
    x_train, latent_train = _cohort(12, 2)
    x_test, latent_test = _cohort(48, 3)
    target = [tasks.Binary("high")]
    scores = {}
    for strategy in ("frozen", "scratch"):
        keras.utils.set_random_seed(0)
        model = kb.transfer.finetune(pretrained, target, strategy=strategy, learning_rate=3e-2,
                                     dropout=0.0)
        model.fit(x_train, {"high": (latent_train > 0.5).astype("float32")}, batch_size=12,
                  epochs=15, verbose=0)
        probability = model.predict(x_test, batch_size=48, verbose=0)["high"]
        scores[strategy] = kb.transfer.score(target[0], probability[:, 0], latent_test > 0.5)["auc"]
    assert scores["frozen"] > 0.9, scores
    assert scores["frozen"] > scores["scratch"] + 0.1, scores
