"""Hostile but fair inputs: every one ends in an error naming the file, row, key or
argument at fault (or in the right result), never in a silent wrong result.

Tiny volumes (16^3); backend-independent (TensorFlow run only) except the predict case.
"""

import copy
import json
import os
import pickle
import re
import subprocess
import sys
import warnings

import keras
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasbrain import cli, inference, tasks
from kerasbrain import training as train_command
from kerasbrain.data import Preprocessor, read_table, tfrecord_dataset, write_tfrecords
from kerasbrain.pretraining import config as pretrain_config
from kerasbrain.tuning import config as tune_config

SHAPE = (16, 16, 16)
MODEL_SHAPE = (32, 32, 32)  # SFCN's smallest input
BI = pytest.mark.backend_independent

TRAIN = {
    "data": {"train": {"npz": "train.npz"}, "batch_size": 2},
    "backbone": {"name": "SFCN", "input_shape": [16, 16, 16, 1],
                 "kwargs": {"filters": [2, 2, 2, 2, 2, 2]}},
    "tasks": [{"type": "regression", "name": "age"}, {"type": "binary", "name": "sex"}],
    "optimizer": {"learning_rate": 1.0e-3},
    "callbacks": {"early_stopping": {"patience": 2}},
    "epochs": 1,
    "output": "run",
}
TUNE = {
    "data": {"arrays": "cohort.npz"}, "backbone": "SFCN", "tasks": [{"type": "binary", "name": "dx"}],
    "tuner": "random", "budget": 2, "folds": 2, "epochs": 1,
    "search_space": {"learning_rate": {"min": 1.0e-4, "max": 1.0e-2, "sampling": "log"}},
    "output": "out",
}


@pytest.fixture(autouse=True)
def _seed_and_clear(request):
    """conftest's fixture, but clearing the Keras session only after tests that built models."""
    keras.utils.set_random_seed(0)
    yield
    if request.node.originalname in _BUILDS_MODELS:
        keras.backend.clear_session()


_BUILDS_MODELS = {"test_bad_weight_files", "test_predict_survives_a_bad_scan",
                  "test_quiet_and_plain_output", "test_train_refuses_one_class_shards"}


def _edit(config, path, value):
    """``config`` with ``path`` ("a.b.c"; list items as digits) set to ``value`` (None: delete)."""
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return config


_DELETE = object()

# (key path, value, error pattern): each must name the key path and say what is wrong
TRAIN_CASES = [
    ("optimizer.learnin_rate", 0.5, r"optimizer\.learnin_rate: unknown key; did you mean learning_rate\?"),
    ("data.batch_sise", 2, r"data\.batch_sise: unknown key; did you mean batch_size\?"),
    ("epoch", 1, r"epoch: unknown key; did you mean epochs\?"),
    ("epochs", -3, r"epochs: -3 is out of range; expected >= 1"),
    ("epochs", "ten", r"epochs: expected an integer, got 'ten'"),
    ("epochs", 2.5, r"epochs: expected an integer"),
    ("optimizer.learning_rate", 1.5, r"optimizer\.learning_rate: 1\.5 is out of range; expected a value in \(0, 1\)"),
    ("optimizer.learning_rate", 0, r"optimizer\.learning_rate: 0 is out of range"),
    ("optimizer.learning_rate", "1e-3", r"optimizer\.learning_rate: expected a number.*write 1\.0e-3"),
    ("optimizer.weight_decay", -0.1, r"optimizer\.weight_decay: -0\.1 is out of range; expected >= 0"),
    ("callbacks.early_stopping.patiense", 2, r"callbacks\.early_stopping\.patiense: unknown key; did you mean patience\?"),
    ("callbacks.early_stoping", {}, r"callbacks\.early_stoping: unknown key; did you mean early_stopping\?"),
    ("callbacks.reduce_lr_on_plateau.factor", 2.0, r"callbacks\.reduce_lr_on_plateau\.factor: 2\.0 is out of range"),
    ("data.batch_size", 0, r"data\.batch_size: 0 is out of range; expected > 0"),
    ("data.batch_size", -2, r"data\.batch_size: -2 is out of range"),
    ("data.train.npzz", "x.npz", r"data\.train\.npzz: unknown key; did you mean npz\?"),
    ("data.train.table", "t.csv", r"data\.train: give one of tfrecords, table, npz; got \['table', 'npz'\]"),
    ("tasks.0.type", "regresion", r"tasks\[0\]\.type: 'regresion' is not one of .*did you mean regression\?"),
    ("tasks.0.lossy", "mae", r"tasks\[0\]\.lossy: unknown key; did you mean loss\?"),
    ("tasks.0.loss", "l1", r"tasks\[0\]\.loss: 'l1' is not one of \['mse', 'mae', 'huber'\]"),
    ("tasks.1.name", _DELETE, r"tasks\[1\]\.name: required key missing"),
    ("tasks.1.positiv", "M", r"tasks\[1\]\.positiv: unknown key; did you mean positive\?"),
    ("strategy", "partal", r"strategy: 'partal' is not one of .*did you mean partial\?"),
    ("finetune.dropout", 1.0, r"finetune\.dropout: 1\.0 is out of range; expected a value in \[0, 1\)"),
    ("finetune.trainable_block", 2, r"finetune\.trainable_block: unknown key; did you mean trainable_blocks\?"),
    ("backbone.wieghts", "ukb", r"backbone\.wieghts: unknown key; did you mean weights\?"),
    ("backbone.kwargs.filtres", [2] * 6, r"backbone\.kwargs\.filtres: not an argument of SFCN; did you mean filters\?"),
    ("backbone.name", "SFCNN", r"backbone\.name: .*SFCN"),
    ("backbone.input_shape", [16, 16, 0, 1], r"backbone\.input_shape\[2\]: 0 is out of range; expected > 0"),
    ("distribution.gpus", 2, r"distribution\.gpus: unknown key"),
    ("output", _DELETE, r"output: required key missing"),
    ("tasks", "age", r"tasks: expected a list, got 'age'"),
    ("tasks.1", {"type": "categorical", "name": "site", "classes": 1},
     r"tasks\[1\]\.classes: 1 is out of range; expected >= 2"),
]
TUNE_CASES = [
    ("search_space.learnig_rate", [1.0e-3], r"search_space\.learnig_rate: unknown key; did you mean learning_rate\?"),
    ("epoch", 1, r"epoch: unknown key; did you mean epochs\?"),
    ("tuner", "bayes", r"tuner: 'bayes' is not one of .*did you mean bayesian\?"),
    ("folds", 1, r"folds: 1 is out of range; expected >= 2"),
    ("search_space.learning_rate.smapling", "log", r"search_space\.learning_rate\.smapling: unknown key; did you mean sampling\?"),
    ("budget", 0, r"budget: 0 is out of range; expected > 0"),
    ("data.arays", "c.npz", r"data\.arays: unknown key; did you mean arrays\?"),
    ("backbone_kwargs", {"dropuot": 0.2}, r"backbone_kwargs\.dropuot: not an argument of SFCN; did you mean dropout\?"),
]

PRETRAIN = {
    "data": {"train": {"npz": "volumes.npz"}, "batch_size": 2},
    "backbone": {"name": "SFCN", "input_shape": [32, 32, 32, 1], "kwargs": {"filters": [2, 2, 2, 2, 2, 2]}},
    "epochs": 1, "output": "ssl",
}
PRETRAIN_CASES = [
    ("data.batch_sise", 2, r"data\.batch_sise: unknown key; did you mean batch_size\?"),
    ("data.batch_size", 1, r"data\.batch_size: 1 is out of range; expected >= 2"),
    ("contrastive.temprature", 0.2, r"contrastive\.temprature: unknown key; did you mean temperature\?"),
    ("contrastive.temperature", 0, r"contrastive\.temperature: 0 is out of range; expected > 0"),
    ("masked.mask_ratio", 1.5, r"masked\.mask_ratio: 1\.5 is out of range"),
    ("augmentation.flip_axes", [3], r"augmentation\.flip_axes\[0\]: 3 is not one of"),
    ("method", "simclr", r"method: 'simclr' is not one of"),
    ("backbone.kwargs", {"filtres": [2] * 6}, r"backbone\.kwargs\.filtres: not an argument of SFCN; did you mean filters\?"),
]

def _write(tmp_path, config, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


@BI
@pytest.mark.parametrize("key,value,pattern", TRAIN_CASES, ids=[c[0] + "=" + repr(c[1])[:12] for c in TRAIN_CASES])
def test_train_config(tmp_path, key, value, pattern):
    path = _write(tmp_path, _edit(TRAIN, key, value))
    with pytest.raises(ValueError, match=f"config.yaml: {pattern}"):
        train_command.load_config(path, "train")


@BI
@pytest.mark.parametrize("key,value,pattern", TUNE_CASES, ids=[c[0] for c in TUNE_CASES])
def test_tune_config(tmp_path, key, value, pattern):
    path = _write(tmp_path, _edit(TUNE, key, value))
    with pytest.raises(ValueError, match=f"config.yaml: {pattern}"):
        tune_config.read_config(path)
    assert cli.main(["tune", path]) == 1  # the command stops before any search


@BI
@pytest.mark.parametrize("key,value,pattern", PRETRAIN_CASES, ids=[c[0] for c in PRETRAIN_CASES])
def test_pretrain_config(tmp_path, key, value, pattern):
    path = _write(tmp_path, _edit(PRETRAIN, key, value))
    with pytest.raises(ValueError, match=f"config.yaml: {pattern}"):
        pretrain_config.load_config(path)
    assert cli.main(["pretrain", path]) == 1  # the command stops before reading any volume

@BI
def test_tune_accepts_task_loss_weights(tmp_path):
    config = _edit(TUNE, "search_space.loss_weight_dx", {"min": 0.1, "max": 1.0})
    assert tune_config.read_config(_write(tmp_path, config))["search_space"]["loss_weight_dx"]


@BI
@pytest.mark.parametrize("text,pattern", [
    ("data: [unclosed", r"config.yaml: not valid YAML"),
    ("- a\n- b\n", r"config.yaml: the config must be a mapping"),
])
def test_unreadable_config(tmp_path, text, pattern):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match=pattern):
        train_command.load_config(str(tmp_path / "config.yaml"))


@BI
def test_cli_reports_config_errors(tmp_path, capsys):
    path = _write(tmp_path, TRAIN)
    assert cli.main(["train", path, "--epochs", "-3"]) == 1
    assert "config.yaml: epochs: -3 is out of range" in capsys.readouterr().err
    assert cli.main(["finetune", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: no such config file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- labels ------------------------------------------------------------------------------


def _scans(folder, n=4, bad=(), shape=SHAPE):
    """``n`` tiny NIfTI scans in ``folder``; rows in ``bad`` are truncated files."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"sub-{i:02d}.nii.gz")
        array = np.random.default_rng(i).random(shape, dtype="float32") + 0.5
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
        if i in bad:
            data = open(path, "rb").read()
            open(path, "wb").write(data[: len(data) // 3])
        paths.append(path)
    return paths


def _table(tmp_path, **columns):
    paths = _scans(tmp_path / "scans", len(next(iter(columns.values()))))
    frame = pd.DataFrame({"path": paths, **columns})
    frame.to_csv(tmp_path / "table.csv", index=False)
    return str(tmp_path / "table.csv")


LABEL_CASES = [
    ({"age": ["", "n/a", "", ""]}, ["age"], r"table.csv: label column 'age' has no values"),
    ({"age": ["40", "forty", "52", "61"]}, ["age"], r"table.csv: label column 'age' is numeric except row 1: 'forty'"),
    ({"age": ["40", "4O", "52", "sixty"], "sex": ["M"] * 4}, None,
     r"column 'age' is numeric except row 1: '4O', row 3: 'sixty'"),
    ({"site": ["A", "B", "3", "A"]}, None, r"column 'site' holds categories but has numbers in row 2: '3'"),
    ({"age": ["40", "50", "52", "61"]}, ["agee"], r"table.csv: label column\(s\) \['agee'\] not found"),
]


@BI
@pytest.mark.parametrize("columns,labels,pattern", LABEL_CASES, ids=["empty", "forty", "two-typos", "number-among-categories", "absent"])
def test_label_columns_before_writing(tmp_path, columns, labels, pattern):
    table = _table(tmp_path, **columns)
    with pytest.raises(ValueError, match=pattern):
        write_tfrecords(table, tmp_path / "out", labels=labels, workers=1, progress=False)
    assert not (tmp_path / "out").exists()  # nothing written


@BI
def test_declared_categorical_is_kept(tmp_path):
    table = _table(tmp_path, grade=["1", "2", "x", "2"], notes=["", "", "", ""])
    parsed = read_table(table, categorical=["grade"])
    assert parsed.labels["grade"].categories == ["1", "2", "x"] and "notes" not in parsed.labels


TASK_CASES = [
    (tasks.Binary("sex", positive="M"), ["M", "M", None, "M"], r"task 'sex': column 'sex' holds one class only \('M'"),
    (tasks.Categorical("site", classes=3), [2, 2, 2, 2], r"task 'site': column 'site' holds one class only"),
    (tasks.Regression("age"), [None, np.nan, None, None], r"task 'age': all 4 labels are missing \(column 'age'"),
    (tasks.Regression("age"), [40, "forty", 50, 60], r"task 'age' \(Regression\) needs numeric labels; row 1 has 'forty'"),
    (tasks.Binary("dx"), [0, 1, 2, 1], r"task 'dx' is Binary but its labels have 3 classes"),
]


@BI
@pytest.mark.parametrize("task,labels,pattern", TASK_CASES, ids=["one-sex", "one-site", "no-age", "forty", "binary-2"])
def test_task_labels_before_training(task, labels, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        tasks.encode_labels([task], {task.name: np.array(labels, dtype=object)})


TRAIN_DATA_CASES = {
    "table-forty": r"table\.csv: label column 'age' is numeric except row 1: 'forty'",
    "table-truncated": r"table\.csv: row 1: cannot read .*sub-01\.nii\.gz",
    "npz-one-class": r"train\.npz: task 'sex': column 'sex' holds one class only",
    "npz-no-age": r"train\.npz: task 'age': all 4 labels are missing",
    "npz-corrupt": r"train\.npz: not a readable NumPy archive",
    "npz-no-x": r"train\.npz: needs an array 'x' of volumes",
}


@BI
@pytest.mark.parametrize("case", list(TRAIN_DATA_CASES))
def test_train_data(tmp_path, capsys, case):
    x = np.zeros((4, *SHAPE), "float32")
    age, sex = np.array([40.0, 50, 60, 70]), np.array([0.0, 1, 0, 1])
    if case.startswith("table"):
        paths = _scans(tmp_path / "scans", 4, bad=(1,) if case == "table-truncated" else ())
        ages = ["40", "forty" if case == "table-forty" else "45", "52", "61"]
        pd.DataFrame({"path": paths, "age": ages, "sex": [0, 1, 0, 1]}).to_csv(tmp_path / "table.csv")
        source = {"table": str(tmp_path / "table.csv")}
    else:
        source = {"npz": str(tmp_path / "train.npz")}
        if case == "npz-corrupt":
            (tmp_path / "train.npz").write_bytes(b"PK\x03\x04 not really a zip")
        else:
            arrays = {"x": x, "age": np.full(4, np.nan) if case == "npz-no-age" else age,
                      "sex": np.ones(4) if case == "npz-one-class" else sex}
            if case == "npz-no-x":
                arrays["volumes"] = arrays.pop("x")
            np.savez(tmp_path / "train.npz", **arrays)
    config = _edit(_edit(TRAIN, "data.train", source), "output", str(tmp_path / "run"))
    assert cli.main(["train", _write(tmp_path, config)]) == 1
    assert re.search(TRAIN_DATA_CASES[case], capsys.readouterr().err)
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    paths = _scans(root / "scans", 4)
    table = pd.DataFrame({"path": paths, "age": [40, 50, 60, 70], "sex": ["F"] * 4})
    write_tfrecords(table, root / "out", shards=2, workers=1, progress=False)
    return root / "out"


@BI
def test_train_refuses_one_class_shards(shards, tmp_path):
    config = _edit(TRAIN, "data.train", {"tfrecords": str(shards)})
    config = _edit(config, "tasks.1.positive", "F")
    with pytest.raises(ValueError, match=r"out: label 'sex' holds one class only in all 4"):
        train_command.run_config(train_command.load_config(_write(tmp_path, config)))
    assert not (tmp_path / "run" / "model.keras").exists()


def _copy_shards(shards, tmp_path):
    import shutil

    return shutil.copytree(shards, tmp_path / "copy")


@BI
@pytest.mark.parametrize("damage,pattern", [
    ("shape", r"data-00000-of-00002\.tfrecord: records hold 4096 voxels but .*manifest\.json says shape \[8, 8, 8\]"),
    ("json", r"manifest\.json: not valid JSON"),
    ("no-manifest", r"copy/manifest\.json: no manifest"),
    ("truncated", r"data-00001-of-00002\.tfrecord: shard is truncated"),
    ("missing-shard", r"data-00000-of-00002\.tfrecord: shard listed in manifest\.json is missing"),
    ("label", r"manifest\.json: labels \['dx'\] not in the manifest"),
])
def test_damaged_shards(shards, tmp_path, damage, pattern):
    folder = _copy_shards(shards, tmp_path)
    manifest = folder / "manifest.json"
    labels = None
    if damage == "shape":
        data = json.loads(manifest.read_text())
        data["shape"] = [8, 8, 8]
        manifest.write_text(json.dumps(data))
    elif damage == "json":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "no-manifest":
        manifest.unlink()
    elif damage == "truncated":
        shard = folder / "data-00001-of-00002.tfrecord"
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "missing-shard":
        (folder / "data-00000-of-00002.tfrecord").unlink()
    else:
        labels = ["dx"]
    with pytest.raises((ValueError, FileNotFoundError), match=pattern):
        tfrecord_dataset(str(folder), labels=labels)


@BI
@pytest.mark.parametrize("problem,pattern", [
    ("truncated", r"sub-01\.nii\.gz"),
    ("missing", r"sub-01\.nii\.gz"),
])
def test_bad_scans_when_writing(tmp_path, problem, pattern):
    paths = _scans(tmp_path / "scans", 3, bad=(1,) if problem == "truncated" else ())
    if problem == "missing":
        os.remove(paths[1])
    table = pd.DataFrame({"path": paths, "age": [40, 50, 60]})
    with pytest.raises((ValueError, OSError), match=pattern):
        write_tfrecords(table, tmp_path / "out", workers=1, progress=False)
    report = write_tfrecords(table, tmp_path / "out", workers=1, progress=False, on_error="skip")
    assert report.manifest["count"] == 2 and report.skipped[0][1] == paths[1]


# -- weights ----------------------------------------------------------------------------


def _backbone():
    from kerasbrain.applications import SFCN

    return SFCN(weights=None, include_top=False, input_shape=(*MODEL_SHAPE, 1), pooling="avg",
                filters=(2, 2, 2, 2, 2, 2))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@BI
@pytest.mark.parametrize("kind", ["text.weights.h5", "truncated.weights.h5", "text.h5", "garbage.pth",
                                  "evil.pth", "missing.weights.h5"])
def test_bad_weight_files(tmp_path, kind):
    from kerasbrain.applications import SFCN

    path = tmp_path / kind
    if kind.startswith("text"):
        path.write_text("not weights at all\n")
    elif kind.startswith("truncated"):
        _backbone().save_weights(path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind.startswith("garbage"):
        path.write_bytes(os.urandom(300))
    elif kind.startswith("evil"):
        path.write_bytes(pickle.dumps({"state_dict": _Evil()}))
    with pytest.raises((ValueError, OSError, FileNotFoundError), match=kind.replace(".", r"\.")):
        SFCN(weights=str(path), include_top=False, input_shape=(*MODEL_SHAPE, 1), pooling="avg",
             filters=(2, 2, 2, 2, 2, 2))


@BI
@pytest.mark.parametrize("kind", ["junk.keras", "truncated.keras", "missing.keras"])
def test_bad_model_files(tmp_path, capsys, kind):
    path = tmp_path / kind
    if kind == "junk.keras":
        path.write_text("junk")
    elif kind == "truncated.keras":
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "good.keras")
        path.write_bytes((tmp_path / "good.keras").read_bytes()[:300])
    scans = _scans(tmp_path / "scans", 1)
    out = tmp_path / "out.csv"
    assert cli.main(["predict", scans[0], "--model", str(path), "-o", str(out)]) == 1
    assert f"{path}: " in capsys.readouterr().err and not out.exists()


# -- predict ----------------------------------------------------------------------------


def test_predict_survives_a_bad_scan(tmp_path, capsys):
    paths = _scans(tmp_path / "scans", 3, bad=(1,), shape=MODEL_SHAPE)
    backbone = _backbone()
    model = keras.Model(backbone.input, {"age": keras.layers.Dense(1, name="age")(backbone.output)})
    inference.save_model(model, tmp_path / "model.keras", Preprocessor(shape=MODEL_SHAPE, intensity="mean"))
    out, qc = tmp_path / "out.csv", tmp_path / "qc"
    code = cli.main(["predict", str(tmp_path / "scans"), "--model", str(tmp_path / "model.keras"),
                     "-o", str(out), "--qc", str(qc)])
    assert code == 3
    err = capsys.readouterr().err
    assert "1 of 3 scan(s) failed" in err and paths[1] in err
    result = pd.read_csv(out, keep_default_na=False)
    assert list(result["path"]) == paths
    assert result["error"][0] == "" and paths[1] in result["error"][1] and result["error"][2] == ""
    assert result["predicted_age"][1] == "" and all(np.isfinite(result["predicted_age"][[0, 2]].astype(float)))
    good = Preprocessor(shape=MODEL_SHAPE, intensity="mean")
    expected = model.predict(np.stack([good(paths[0]), good(paths[2])])[..., None], verbose=0)["age"]
    np.testing.assert_allclose(result["predicted_age"][[0, 2]].astype(float), expected[:, 0], rtol=1e-4)
    assert sorted(os.listdir(qc)) == ["sub-00.png", "sub-02.png"]  # none for the failed scan


# -- noise ------------------------------------------------------------------------------


@BI
def test_quiet_and_plain_output(tmp_path, capfd):
    paths = _scans(tmp_path / "scans", 2)
    table = pd.DataFrame({"path": paths, "age": [40.0, 50.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        write_tfrecords(table, tmp_path / "out", preprocessor=Preprocessor(spacing=0.5, shape=MODEL_SHAPE),
                        workers=1)
    out = capfd.readouterr().out
    assert "2/2 volumes (100%)" in out and "\x1b" not in out and "\b" not in out
    x = np.random.default_rng(0).random((4, *MODEL_SHAPE, 1), dtype="float32")
    dataset = tfrecord_dataset(tmp_path / "out", batch_size=2)
    from kerasbrain import models

    model = models.multitask(_backbone(), [tasks.Regression("age")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.run_eagerly = True  # tiny model: no graph to compile
        model.fit(dataset, epochs=1, verbose=0)
    assert model.predict(x, verbose=0)["age"].shape == (4, 1)


@BI
@pytest.mark.slow
def test_unguarded_script_falls_back_to_one_process(tmp_path):
    paths = _scans(tmp_path / "scans", 2)
    pd.DataFrame({"path": paths, "age": [40.0, 50.0]}).to_csv(tmp_path / "t.csv", index=False)
    script = tmp_path / "unguarded.py"
    script.write_text("from kerasbrain.data import write_tfrecords\n"
                      "write_tfrecords('t.csv', 'out', shards=2, workers=2, progress=False)\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("worker processes could not start") == 1 and "Traceback" not in run.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["count"] == 2
