"""benchmarks/gpu_sfcn.py: the CPU smoke mode runs end to end and its models are SFCN."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_sfcn.py")


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_sfcn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_torch():
    return importlib.util.find_spec("torch") is not None


@pytest.mark.backend_independent
def test_cpu_tiny_run_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, SCRIPT, "--cpu-tiny", "--batches", "2", "--warmup", "1", "--steps",
           "1", "--repeats", "1", "--keras-settings", "mixed_bfloat16",
           "--torch-settings", "amp_bf16", "--json", str(out)]
    if not _has_torch():
        cmd.append("--no-torch")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "| framework | setting | batch | volumes/s |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["shape"] == [32, 32, 32] and report["mode"] == "cpu-tiny"
    rows = {(r["framework"], r["setting"]): r for r in report["results"]}
    expected = {("keras-jax", "mixed_bfloat16")}
    if _has_torch():
        expected.add(("torch", "amp_bf16"))
    assert set(rows) == expected
    for row in rows.values():
        assert row["status"] == "ok" and row["volumes_per_s"] > 0 and np.isfinite(row["loss"])
    if _has_torch():
        c = report["comparison"]
        assert c["batch"] == 2
        assert c["speedup"] == pytest.approx(
            c["keras_bf16_volumes_per_s"] / c["torch_amp_bf16_volumes_per_s"])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="graph definitions only: checked once, on the TensorFlow run")
def test_benchmark_models_are_sfcn():
    from kerasbrain.applications import SFCN

    bench = _bench()
    filters = (4, 4, 8, 8, 8, 4)
    reference = SFCN(weights=None, input_shape=(32, 32, 32, 1), filters=filters, classes=40,
                     classifier_activation=None, bn_epsilon=1e-5)
    plain = bench.keras_sfcn((32, 32, 32), filters)
    keras_pool = bench.keras_sfcn((32, 32, 32), filters, maxpool3d=True)
    assert plain.count_params() == reference.count_params() == keras_pool.count_params()
    plain.set_weights(reference.get_weights())
    keras_pool.set_weights(reference.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 32, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(x)), expected, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_pool(x)), expected, atol=1e-6)
    if _has_torch():
        torch_model = bench.torch_sfcn(filters)
        params = sum(p.numel() for p in torch_model.parameters())
        stats = sum(b.numel() for n, b in torch_model.named_buffers() if "running" in n)
        assert params + stats == reference.count_params()  # Keras counts BN moving stats
