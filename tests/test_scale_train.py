"""`kerasbrain train` with the scale keys of a config (precision, accumulation, devices)."""

import keras
import numpy as np
import pytest
import yaml

from kerasbrain import cli
from kerasbrain.commands import train as train_command


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def _config(tmp_path, **scale_keys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(4, 32, 32, 32)).astype("float32"),
             age=rng.uniform(40, 80, 4))
    config = {
        "data": {"train": {"npz": str(tmp_path / "train.npz")}, "batch_size": 2},
        "backbone": {"name": "SFCN", "weights": None, "input_shape": [32, 32, 32, 1],
                     "kwargs": {"filters": [2, 2, 2, 2, 2, 2]}},
        "tasks": [{"type": "regression", "name": "age"}],
        "epochs": 1,
        "output": str(tmp_path / "run"),
        **scale_keys,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_config_with_bfloat16_and_accumulation(tmp_path):
    path = _config(tmp_path, precision="mixed_bfloat16", gradient_accumulation_steps=2,
                   distribution={"devices": 1})
    assert cli.main(["train", str(path)]) == 0
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    conv = next(layer for layer in model._flatten_layers() if layer.name == "block0_conv")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    assert all(keras.backend.standardize_dtype(t.dtype) == "float32" for t in model.outputs)
    assert model.optimizer.gradient_accumulation_steps == 2
    # two batches per epoch with accumulation 2: exactly one weight update
    assert int(model.optimizer.iterations) == 1


@pytest.mark.backend_independent
def test_train_config_scale_errors(tmp_path):
    path = _config(tmp_path, precision={"policy": "mixed_float16", "loss_scaling": False})
    with pytest.raises(ValueError, match=r"config.yaml: precision 'mixed_float16' needs loss"):
        train_command.load_config(str(path))
    assert cli.main(["train", str(path)]) == 1
    path = _config(tmp_path, distribution={"devices": 99})
    assert cli.main(["train", str(path)]) == 1
    assert not (tmp_path / "run" / "model.keras").exists()
    path = _config(tmp_path, distribution={"devices": 1, "gpus": 2})
    with pytest.raises(ValueError, match=r"config.yaml: distribution.gpus: unknown key"):
        train_command.load_config(str(path))
