"""kerasbrain.scale: precision, loss scaling, gradient accumulation, remat, config errors."""

import keras
import numpy as np
import pytest

from kerasbrain import scale
from kerasbrain.scale import distribution as dist_lib


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def _model(head_dtype=None):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(6, name="c0")(inputs)
    x = keras.layers.ReLU(name="r0")(x)
    x = keras.layers.Dense(6, name="c1")(x)
    outputs = keras.layers.Dense(1, dtype=head_dtype, name="head")(x)
    return keras.Model(inputs, outputs)


def _data(n=8):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 8)).astype("float32"),
            rng.normal(size=(n, 1)).astype("float32"))


# ---- precision ---------------------------------------------------------------------------

@pytest.mark.backend_independent
def test_float16_without_loss_scaling_is_an_error():
    with pytest.raises(ValueError, match="mixed_float16' needs loss scaling"):
        scale.configure(precision="mixed_float16", loss_scaling=False)
    with pytest.raises(ValueError, match="needs loss scaling"):
        scale.parse_config({"precision": {"policy": "fp16", "loss_scaling": False}})
    with pytest.raises(ValueError, match="precision must be one of"):
        scale.configure(precision="float8")
    with pytest.raises(ValueError, match="applies to precision 'mixed_float16' only"):
        scale.resolve_precision("mixed_bfloat16", loss_scaling=True)
    assert scale.resolve_precision("bf16") == ("mixed_bfloat16", False)
    assert scale.resolve_precision("fp16") == ("mixed_float16", True)


def test_mixed_bfloat16_sets_policy_and_checks_heads():
    plan = scale.configure(precision="mixed_bfloat16", jit_compile=False)
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    assert plan.compile_kwargs == {"jit_compile": False}
    with plan.scope():
        bad = _model()
        good = _model(head_dtype="float32")
    assert bad.get_layer("c0").compute_dtype == "bfloat16"
    assert bad.get_layer("c0").variable_dtype == "float32"
    with pytest.raises(ValueError, match=r"outputs \['head'\].*dtype='float32'"):
        plan.check(bad)
    plan.check(good)
    x, y = _data(2)
    good.compile(optimizer=plan.optimizer("sgd"), loss="mse", **plan.compile_kwargs)
    assert np.isfinite(good.train_on_batch(x, y))
    assert keras.ops.convert_to_numpy(good(x)).dtype == np.float32


def test_mixed_float16_wraps_optimizer_in_loss_scaling():
    plan = scale.configure(precision="mixed_float16")
    assert plan.loss_scaling
    with plan.scope():
        model = _model(head_dtype="float32")
    optimizer = plan.optimizer({"class_name": "SGD", "config": {"learning_rate": 0.01}})
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    model.compile(optimizer=optimizer, loss="mse")
    plan.check(model)
    x, y = _data(2)
    before = [w.copy() for w in model.get_weights()]
    for _ in range(3):  # the dynamic scale starts high: an overflowing step is skipped
        model.train_on_batch(x, y)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights(), strict=True))
    # a float16 model compiled without loss scaling is refused
    with plan.scope():
        unscaled = _model(head_dtype="float32")
    unscaled.compile(optimizer="sgd", loss="mse", auto_scale_loss=False)
    with pytest.raises(ValueError, match="without loss scaling"):
        plan.check(unscaled)


# ---- gradient accumulation -----------------------------------------------------------------

def test_gradient_accumulation_equals_one_large_batch():
    x, y = _data(4)
    weights = {}
    for steps, batch in ((None, 4), (2, 2)):
        plan = scale.configure(gradient_accumulation_steps=steps)
        keras.utils.set_random_seed(3)
        model = _model()
        optimizer = plan.optimizer({"class_name": "SGD", "config": {"learning_rate": 0.1}})
        assert optimizer.gradient_accumulation_steps == steps
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        weights[steps] = model.get_weights()
    start = _model().get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(start, weights[None], strict=True)) > 1e-3
    for a, b in zip(weights[None], weights[2], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_optimizer_instance_rebuilt_with_accumulation():
    plan = scale.configure(gradient_accumulation_steps=3)
    optimizer = plan.optimizer(keras.optimizers.Adam(learning_rate=2e-4))
    assert optimizer.gradient_accumulation_steps == 3
    assert float(optimizer.learning_rate) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be a positive"):
        scale.configure(gradient_accumulation_steps=0)


# ---- rematerialisation ---------------------------------------------------------------------

def _conv_model():
    inputs = keras.Input((6, 6, 6, 1))
    x = keras.layers.Conv3D(2, 3, padding="same", name="c0")(inputs)
    x = keras.layers.ReLU(name="r0")(x)
    x = keras.layers.Conv3D(2, 3, padding="same", name="c1")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x))


def test_remat_list_of_layers_gives_the_same_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 6, 1)).astype("float32")
    y = rng.normal(size=(2, 1)).astype("float32")
    grads = {}
    for remat in (None, {"mode": "list_of_layers", "layer_names": ["c0", "r0", "c1"]}):
        plan = scale.configure(remat=remat)
        with plan.scope():
            keras.utils.set_random_seed(5)
            model = _conv_model()
        plan.check(model)
        assert (model.get_layer("c0")._remat_mode is not None) == (remat is not None)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        before = model.get_weights()
        model.train_on_batch(x, y)
        grads[remat is None] = [a - b for a, b in zip(before, model.get_weights(), strict=True)]
    for a, b in zip(grads[True], grads[False], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_remat_of_layers_with_training_argument_is_refused():
    plan = scale.configure(remat="full")
    with plan.scope():
        inputs = keras.Input((8, 8, 8, 1))
        x = keras.layers.Conv3D(2, 3, name="conv")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        model = keras.Model(inputs, keras.layers.GlobalAveragePooling3D()(x))
    with pytest.raises(ValueError, match=r"remat: layers \[.*'bn'.*training"):
        plan.check(model)


@pytest.mark.backend_independent
def test_remat_config_errors():
    with pytest.raises(ValueError, match="remat.mode must be one of"):
        scale.parse_config({"remat": "everything"})
    with pytest.raises(ValueError, match="needs layer_names"):
        scale.parse_config({"remat": {"mode": "list_of_layers"}})
    assert scale.parse_config({"remat": True})["remat"] == {"mode": "full"}


# ---- distribution config -------------------------------------------------------------------

def test_more_devices_than_exist_is_an_error():
    available = len(scale.local_devices())
    with pytest.raises(ValueError, match=f"asks for {available + 1} devices but this host has "
                                         f"{available}"):
        scale.configure(distribution={"devices": available + 1})
    plan = scale.configure(distribution={"devices": "all"})
    assert plan.num_devices == available


@pytest.mark.backend_independent
def test_batch_split_and_shard_arguments():
    plan = scale.ScalePlan(num_devices=2, hosts=dist_lib.Hosts(("a:1", "b:1", "c:1"), 1))
    assert plan.num_replicas == 6
    assert plan.data_kwargs(12) == {"batch_size": 4, "num_shards": 3, "shard_index": 1}
    with pytest.raises(ValueError, match="batch_size 8 .* not divisible by the 6 replicas"):
        plan.per_worker_batch_size(8)
    assert scale.ScalePlan().data_kwargs(5) == {"batch_size": 5}


@pytest.mark.backend_independent
def test_distribution_config_errors():
    with pytest.raises(ValueError, match="unknown keys \\['gpus'\\]"):
        scale.parse_config({"distribution": {"gpus": 2}})
    with pytest.raises(ValueError, match="'all' or a positive number"):
        dist_lib.resolve_devices(0, available=["cpu:0"])
    with pytest.raises(ValueError, match="host:port"):
        dist_lib.parse_hosts({"addresses": ["10.0.0.1"], "index": 0})
    with pytest.raises(ValueError, match="index must be this host's position"):
        dist_lib.parse_hosts({"addresses": ["10.0.0.1:1", "10.0.0.2:1"], "index": 2})
    hosts = dist_lib.parse_hosts({"addresses": "10.0.0.1:1,10.0.0.2:1", "index": 1})
    assert (hosts.count, hosts.index) == (2, 1)
    with pytest.raises(ValueError, match="jit_compile must be"):
        scale.parse_config({"jit_compile": "yes"})


@pytest.mark.backend_independent
def test_tensorflow_cluster_spec_from_hosts(monkeypatch):
    import json

    monkeypatch.delenv("TF_CONFIG", raising=False)
    hosts = dist_lib.parse_hosts({"addresses": ["10.0.0.1:2222", "10.0.0.2:2222"], "index": 1})
    dist_lib.initialize_hosts(hosts)
    config = json.loads(__import__("os").environ["TF_CONFIG"])
    assert config == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                      "task": {"type": "worker", "index": 1}}
    assert dist_lib.parse_hosts("env") == dist_lib.Hosts(
        ("10.0.0.1:2222", "10.0.0.2:2222"), 1, from_env=True)
