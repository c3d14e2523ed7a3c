import json

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasbrain import cli
from kerasbrain.commands import train as train_command


@pytest.fixture
def config_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(8, 32, 32, 32)).astype("float32"),
             age=rng.uniform(40, 80, 8), sex=np.array([0, 1] * 4, "float32"))
    config = {
        "data": {"train": {"npz": str(tmp_path / "train.npz")}, "batch_size": 4},
        "backbone": {"name": "SFCN", "weights": None, "input_shape": [32, 32, 32, 1],
                     "kwargs": {"filters": [4, 4, 4, 4, 4, 4]}},
        "tasks": [{"type": "regression", "name": "age", "standardize": True},
                  {"type": "binary", "name": "sex"}],
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "epochs": 2,
        "output": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_train_is_killed_and_resumes(config_file, tmp_path):
    config = train_command.load_config(str(config_file), "train")
    with pytest.raises(KeyboardInterrupt):
        train_command.run_config(config, extra_callbacks=[Interrupt()])
    run = tmp_path / "run"
    assert (run / "backup").exists() and not (run / "model.keras").exists()
    assert cli.main(["train", str(config_file)]) == 0
    history = pd.read_csv(run / "history.csv")
    assert list(history.epoch) == [0, 1]  # the second run resumed at epoch 1
    assert {"age_mae", "sex_auc"} <= set(history.columns)
    model = keras.models.load_model(run / "model.keras")
    assert [t.name for t in model.tasks] == ["age", "sex"]
    assert (run / "checkpoints" / "best.keras").exists() and not (run / "backup").exists()
    assert json.loads((run / "config.json").read_text())["strategy"] == "full"


@pytest.mark.backend_independent
def test_config_errors(tmp_path, config_file):
    bad = yaml.safe_load(config_file.read_text())
    bad["optimiser"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"bad.yaml: optimiser: unknown key; did you mean optimizer\?"):
        train_command.load_config(str(tmp_path / "bad.yaml"))
    bad.pop("optimiser")
    bad["tasks"][0]["type"] = "survival"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"bad.yaml: tasks\[0\]\.type: 'survival' is not one of"):
        train_command.load_config(str(tmp_path / "bad.yaml"))
    with pytest.raises(ValueError, match="finetune needs pretrained weights"):
        train_command.load_config(str(config_file), "finetune")
    assert cli.main(["train", str(tmp_path / "missing.yaml")]) == 1
