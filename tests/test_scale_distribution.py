"""Data-parallel training on two virtual CPU devices matches one device.

Each backend runs in a fresh interpreter (this file as a script), because the device count
must be fixed before the backend starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
for JAX, two logical CPU devices for TensorFlow.

BatchNorm: a replica of ``MirroredStrategy`` normalises with the statistics of its own
slice of the batch, so a model with BatchNorm does not reproduce the single-device run
(whose statistics cover the whole batch) unless ``synchronized=True``. On JAX the
``DataParallel`` step is one program over the global, sharded batch, so its statistics
are global already. The parity check therefore uses a model without BatchNorm, and the
BatchNorm cases are checked for exactly this behaviour.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 4


def _run_parity():
    backend = keras.backend.backend()
    cmd = [sys.executable, os.path.abspath(__file__)]
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parity():
    return _run_parity()


def test_two_devices_match_one_device(parity):
    assert parity["replicas"] == {"1": 1, "2": 2}
    assert parity["variables_on_devices"] == 2
    # a few SGD steps of the same global batch: same weights up to float rounding
    assert parity["plain"]["max_abs_diff"] < 1e-5, parity
    assert parity["plain"]["max_abs_change"] > 1e-3, "training did not move the weights"


def test_batchnorm_statistics_per_replica(parity):
    if keras.backend.backend() == "jax":
        # one SPMD program over the global batch: global statistics, same result
        assert parity["batchnorm"]["max_abs_diff"] < 1e-5, parity
    else:
        # each replica normalises its own half batch: the runs differ ...
        assert parity["batchnorm"]["max_abs_diff"] > 1e-4, parity
        # ... unless BatchNorm synchronises its statistics across replicas
        assert parity["batchnorm_synchronized"]["max_abs_diff"] < 1e-5, parity


def test_indivisible_global_batch_on_two_devices(parity):
    assert "not divisible by the 2 replicas" in parity["indivisible_error"]


def _model(batchnorm=False, synchronized=False):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 16, 1))
    x = keras.layers.Conv3D(4, 3, padding="same")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(synchronized=synchronized)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling3D(2)(x)
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling3D()(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


def _train(plan, x, y, **model_kwargs):
    import numpy as np

    with plan.scope():
        model = _model(**model_kwargs)
        before = [np.array(w) for w in model.get_weights()]
        model.compile(optimizer=plan.optimizer({"class_name": "SGD",
                                                "config": {"learning_rate": 0.05}}),
                      loss="mse", **plan.compile_kwargs)
        model.fit(x, y, batch_size=plan.per_worker_batch_size(GLOBAL_BATCH), epochs=1,
                  shuffle=False, verbose=0)
        after = [np.array(w) for w in model.get_weights()]
    return model, before, after


def _diff(a, b):
    return max(float(abs(p - q).max()) for p, q in zip(a, b, strict=True))


def main():
    import numpy as np

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from kerasbrain import scale

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 16, 1)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    out = {"replicas": {}}
    runs = {}
    for devices in (1, 2):
        plan = scale.configure(distribution={"devices": devices})
        out["replicas"][str(devices)] = plan.num_replicas
        for name, kwargs in [("plain", {}), ("batchnorm", {"batchnorm": True}),
                             ("batchnorm_synchronized", {"batchnorm": True, "synchronized": True})]:
            if name == "batchnorm_synchronized" and keras.backend.backend() == "jax":
                continue
            model, before, after = _train(plan, x, y, **kwargs)
            runs[(name, devices)] = (before, after)
            if devices == 2 and name == "plain":
                variable = model.trainable_variables[0].value
                if keras.backend.backend() == "jax":
                    out["variables_on_devices"] = len(variable.sharding.device_set)
                else:
                    out["variables_on_devices"] = len(variable.values)  # MirroredVariable
        if devices == 2:
            try:
                plan.per_worker_batch_size(3)
            except ValueError as error:
                out["indivisible_error"] = str(error)
    for name in ("plain", "batchnorm", "batchnorm_synchronized"):
        if (name, 1) in runs:
            one, two = runs[(name, 1)], runs[(name, 2)]
            out[name] = {"max_abs_diff": _diff(one[1], two[1]),
                         "start_diff": _diff(one[0], two[0]),
                         "max_abs_change": _diff(one[0], one[1])}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
