"""``kerasbrain pretrain``: npz / TFRecords / table inputs, outputs, resumption, config errors."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasbrain import cli
from kerasbrain.datasets.synthetic import make_cohort
from kerasbrain.pretraining import config as pretrain_config

BACKBONE = {"name": "SFCN", "input_shape": [32, 32, 32, 1], "kwargs": {"filters": [2, 2, 2, 2, 2, 2]}}


def write(path, **config):
    path.write_text(yaml.safe_dump(config))
    return str(path)


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.backend_independent
def test_pretrain_npz_outputs_and_resumes(tmp_path):
    x, table = make_cohort(8, (32, 32, 32), sites=2, seed=0)
    ages = table["age"].to_numpy("float32")
    ages[:2] = np.nan
    np.savez(tmp_path / "train.npz", x=x, age=ages)
    path = write(tmp_path / "c.yaml", data={"train": {"npz": str(tmp_path / "train.npz")}, "batch_size": 4},
                 backbone=BACKBONE, contrastive={"projection_dim": 8, "kernel": ["age", 5.0]},
                 epochs=3, output=str(tmp_path / "run"))
    config = pretrain_config.load_config(path)
    with pytest.raises(KeyboardInterrupt):
        pretrain_config.run_config(config, extra_callbacks=[StopAfter(1)])
    assert cli.main(["pretrain", path]) == 0  # resumes at epoch 2
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]
    backbone = keras.saving.load_model(tmp_path / "run" / "backbone.keras")
    assert backbone.output.shape == (None, 2)
    pretrainer = keras.saving.load_model(tmp_path / "run" / "pretrainer.keras")
    assert pretrainer.kernel == ("age", 5.0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == "contrastive"


@pytest.mark.slow
@pytest.mark.backend_independent
def test_pretrain_tfrecords_and_table(tmp_path):
    from kerasbrain import data

    table = make_cohort(6, (32, 32, 32), sites=2, seed=0, out_dir=tmp_path / "scans")
    table.loc[0, "age"] = np.nan
    table.to_csv(tmp_path / "scans" / "table.csv", index=False)
    data.write_tfrecords(tmp_path / "scans" / "table.csv", tmp_path / "shards", labels=["age"], progress=False)
    for name, source, method in (("tf", {"tfrecords": str(tmp_path / "shards")}, "contrastive"),
                                 ("table", {"table": str(tmp_path / "scans" / "table.csv")}, "masked")):
        path = write(tmp_path / f"{name}.yaml", method=method, data={"train": source, "batch_size": 3},
                     backbone=BACKBONE, contrastive={"projection_dim": 4, "kernel": ["age", 5.0]},
                     masked={"patch_size": 8}, epochs=1, output=str(tmp_path / name))
        assert cli.main(["pretrain", path]) == 0
        assert (tmp_path / name / "backbone.keras").exists()


@pytest.mark.backend_independent
def test_pretrain_config_errors(tmp_path, capsys):
    np.savez(tmp_path / "v.npz", x=np.zeros((4, 32, 32, 32), "float32"))
    base = {"data": {"train": {"npz": str(tmp_path / "v.npz")}}, "backbone": BACKBONE,
            "output": str(tmp_path / "o")}
    cases = [({"method": "rotation"}, "method: 'rotation' is not one of"),
             ({"lr": 1}, "lr: unknown key"),
             ({"data": {"train": {"npz": str(tmp_path / "v.npz")}, "batch_sise": 2}},
              "data.batch_sise: unknown key; did you mean batch_size?"),
             ({"augmentation": {"crop_scal": [0.5, 1.0]}}, "augmentation.crop_scal: unknown key; did you mean crop_scale?"),
             ({"optimizer": {"learnin_rate": 0.1}}, "optimizer.learnin_rate: unknown key; did you mean learning_rate?"),
             ({"data": {"train": {"npz": "a.npz", "table": "b.csv"}}}, "data.train: give one of"),
             ({"contrastive": {"kernel": ["age", -1]}}, "contrastive.kernel: expected [label name, sigma > 0]"),
             ({"backbone": {**BACKBONE, "name": "SFCM"}}, "backbone.name"),
             ({"epochs": 0}, "epochs: 0 is out of range"),
             ({"contrastive": {"kernel": ["age", 5.0]}}, "kernel label 'age' is not among the arrays"),
             ({"masked": {"mask_ratio": 1.0}, "method": "masked"}, "masked.mask_ratio: 1.0 is out of range")]
    for extra, message in cases:
        assert cli.main(["pretrain", write(tmp_path / "bad.yaml", **{**base, **extra})]) == 1
        err = capsys.readouterr().err
        assert message in err and ("bad.yaml" in err or "v.npz" in err), (message, err)
