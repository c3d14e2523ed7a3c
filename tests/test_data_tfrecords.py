"""kerasbrain.data: TFRecord writing (manifest, atomic shards, re-runs, bad rows) and reading."""

import json
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from kerasbrain.data import (
    Preprocessor,
    VolumeError,
    read_manifest,
    read_table,
    tfrecord_dataset,
    volume_dataset,
    write_tfrecords,
)
from kerasbrain.data.encoding import encode_volume

pytestmark = pytest.mark.backend_independent

SHAPE = (12, 14, 10)


def make_cohort(folder, n=6, seed=0):
    rng = np.random.default_rng(seed)
    rows, arrays = [], {}
    for i in range(n):
        array = (rng.random(SHAPE) * 100 + 1).astype("float32")
        path = folder / f"sub-{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
        arrays[f"sub-{i:02d}"] = array
        rows.append({
            "id": f"sub-{i:02d}",
            "path": path.name,
            "age": "" if i == 2 else str(20.0 + i),
            "group": [None, "AD", "CN"][i % 3] if i else "CN",
        })
    table = folder / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return str(table), arrays


def read_all(folder, **kwargs):
    out = {}
    for x, y, w, ids in tfrecord_dataset(folder, with_ids=True, **kwargs):
        for b, id_ in enumerate(ids.numpy()):
            out[id_.decode()] = (x[b].numpy(), {k: v[b, 0].numpy() for k, v in y.items()},
                                 {k: v[b].numpy() for k, v in w.items()})
    return out


@pytest.mark.parametrize("dtype,tolerance", [("float32", 0), ("float16", 1e-3), ("uint8", 0.5 / 255), ("int16", 0.5 / 65535)])
def test_round_trip_voxels_and_labels(tmp_path, dtype, tolerance):
    table, arrays = make_cohort(tmp_path)
    report = write_tfrecords(table, tmp_path / "out", labels=["age", "group"], dtype=dtype,
                             shards=2, workers=1, progress=False, compression="GZIP" if dtype == "int16" else None)
    assert report.skipped == [] and len(report.written) == 2
    got = read_all(tmp_path / "out", batch_size=4)
    assert sorted(got) == sorted(arrays)
    for id_, (x, y, w) in got.items():
        assert x.shape == (*SHAPE, 1) and x.dtype == np.float32
        span = arrays[id_].max() - arrays[id_].min()
        np.testing.assert_allclose(x[..., 0], arrays[id_], rtol=tolerance, atol=tolerance * span + 1e-6)
        i = int(id_[-2:])
        if i == 2:  # missing age: value 0, weight 0
            assert (y["age"], w["age"]) == (0.0, 0.0)
        else:
            assert (y["age"], w["age"]) == (20.0 + i, 1.0)
        group = [None, "AD", "CN"][i % 3] if i else "CN"
        assert w["group"] == (group is not None)
        if group:
            assert y["group"] == ["AD", "CN"].index(group) and y["group"].dtype == np.int32


def test_manifest_records_what_was_written(tmp_path):
    table, _ = make_cohort(tmp_path)
    prep = Preprocessor(shape=(10, 10, 10), intensity="mean")
    report = write_tfrecords(table, tmp_path / "out", preprocessor=prep, shards=3, workers=1, progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert manifest == report.manifest
    assert manifest["count"] == 6 and manifest["shape"] == [10, 10, 10] and manifest["dtype"] == "float16"
    assert manifest["spacing"] == [1.0, 1.0, 1.0] and manifest["orientation"] == "RAS"
    assert manifest["labels"] == {"age": {"type": "numeric"}, "group": {"type": "categorical", "categories": ["AD", "CN"]}}
    assert manifest["preprocessing"] == prep.get_config()
    assert [s["count"] for s in manifest["shards"]] == [2, 2, 2]
    assert sorted(os.listdir(tmp_path / "out")) == [
        "data-00000-of-00003.tfrecord", "data-00001-of-00003.tfrecord", "data-00002-of-00003.tfrecord", "manifest.json",
    ]
    import hashlib

    first = manifest["shards"][0]
    data = (tmp_path / "out" / first["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == first["sha256"] and len(data) == first["bytes"]
    assert first["ids"] == ["sub-00", "sub-01"]


def test_rerun_skips_finished_shards_and_rewrites_changed_ones(tmp_path):
    table, _ = make_cohort(tmp_path)
    out = tmp_path / "out"
    write_tfrecords(table, out, shards=3, workers=1, progress=False)
    stamps = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    again = write_tfrecords(table, out, shards=3, workers=1, progress=False)
    assert again.written == [] and len(again.reused) == 3
    assert all(os.stat(out / f).st_mtime_ns == stamps[f] for f in stamps if f.endswith(".tfrecord"))
    # change one label: only its shard is rewritten
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    frame.loc[4, "age"] = "99"
    frame.to_csv(table, index=False)
    third = write_tfrecords(table, out, shards=3, workers=1, progress=False)
    assert third.written == ["data-00002-of-00003.tfrecord"] and len(third.reused) == 2
    assert read_all(out)["sub-04"][1]["age"] == 99.0


def test_rerun_with_fewer_shards_removes_the_old_ones(tmp_path):
    table, _ = make_cohort(tmp_path)
    out = tmp_path / "out"
    write_tfrecords(table, out, shards=3, workers=1, progress=False)
    (out / "notes.txt").write_text("mine")
    write_tfrecords(table, out, shards=2, workers=1, progress=False)
    assert sorted(os.listdir(out)) == [
        "data-00000-of-00002.tfrecord", "data-00001-of-00002.tfrecord", "manifest.json", "notes.txt",
    ]
    assert len(read_all(str(out / "data-*.tfrecord"))) == 6


def test_interrupted_run_leaves_only_complete_shards(tmp_path):
    table, _ = make_cohort(tmp_path)
    os.remove(tmp_path / "sub-03.nii.gz")  # row 3 is in the second of three shards
    out = tmp_path / "out"
    with pytest.raises(VolumeError, match=r"row 3 \(id 'sub-03'\): .*sub-03.nii.gz: no such file"):
        write_tfrecords(table, out, shards=3, workers=1, progress=False)
    files = [f for f in os.listdir(out) if not f.startswith(".")]
    assert files == ["data-00000-of-00003.tfrecord"]  # no .tmp, no manifest
    with pytest.raises(FileNotFoundError, match="no manifest"):
        tfrecord_dataset(out)
    nib.save(nib.Nifti1Image(np.ones(SHAPE, dtype="float32"), np.eye(4)), str(tmp_path / "sub-03.nii.gz"))
    resumed = write_tfrecords(table, out, shards=3, workers=1, progress=False)
    assert resumed.reused == ["data-00000-of-00003.tfrecord"] and len(resumed.written) == 2
    assert len(read_all(out)) == 6


def test_bad_rows_are_skipped_with_a_report(tmp_path):
    table, _ = make_cohort(tmp_path, n=8)
    folder = tmp_path
    (folder / "sub-01.nii.gz").write_bytes(b"\x1f\x8b truncated")
    os.remove(folder / "sub-02.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, dtype="float32"), np.eye(4)), str(folder / "sub-03.nii.gz"))
    nan = np.ones(SHAPE, dtype="float32")
    nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(folder / "sub-04.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((12, 14), dtype="float32"), np.eye(4)), str(folder / "sub-05.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((*SHAPE, 2), dtype="float32"), np.eye(4)), str(folder / "sub-06.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), dtype="float32"), np.eye(4)), str(folder / "sub-07.nii.gz"))
    report = write_tfrecords(table, tmp_path / "out", on_error="skip", shards=2, workers=1, progress=False)
    reasons = {row: (os.path.basename(path), why) for row, path, why in report.skipped}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "cannot read image" in reasons[1][1] and reasons[1][0] == "sub-01.nii.gz"
    assert "no such file" in reasons[2][1]
    assert "all voxels are zero" in reasons[3][1]
    assert "NaN or Inf" in reasons[4][1]
    assert "expected a 3D image" in reasons[5][1] and "(12, 14)" in reasons[5][1]
    assert "expected a 3D image" in reasons[6][1] and "(12, 14, 10, 2)" in reasons[6][1]
    assert "differs from (12, 14, 10)" in reasons[7][1]
    assert report.manifest["count"] == 1 and len(report.manifest["skipped"]) == 7
    assert list(read_all(tmp_path / "out")) == ["sub-00"]


def test_table_errors_name_the_column_or_rows(tmp_path):
    table, _ = make_cohort(tmp_path)
    with pytest.raises(ValueError, match=r"label column\(s\) \['sex'\] not found"):
        write_tfrecords(table, tmp_path / "out", labels=["age", "sex"], progress=False)
    rows = [{"id": "a", "path": "x.nii"}, {"id": "b", "path": "y.nii"}, {"id": "a", "path": "z.nii"}]
    with pytest.raises(ValueError, match=r"duplicate ids: 'a' in rows \[0, 2\]"):
        read_table(rows)
    assert not (tmp_path / "out").exists()


def test_bids_participants_table(tmp_path):
    for pid in ("sub-01", "sub-02"):
        (tmp_path / pid / "anat").mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.ones(SHAPE, dtype="float32"), np.eye(4)), str(tmp_path / pid / "anat" / f"{pid}_T1w.nii.gz"))
    (tmp_path / "participants.tsv").write_text("participant_id\tage\tsex\nsub-01\t31\tF\nsub-02\tn/a\tM\n")
    table = read_table(tmp_path / "participants.tsv")
    assert list(table.frame["path"]) == [str(tmp_path / p / "anat" / f"{p}_T1w.nii.gz") for p in ("sub-01", "sub-02")]
    np.testing.assert_array_equal(table.encoded_labels(), [[31, 0], [np.nan, 1]])


def test_truncated_or_altered_shard_is_detected(tmp_path):
    table, _ = make_cohort(tmp_path)
    out = tmp_path / "out"
    write_tfrecords(table, out, shards=2, workers=1, progress=False)
    shard = out / "data-00001-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="data-00001-of-00002.tfrecord: shard checksum does not match"):
        tfrecord_dataset(out)
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(ValueError, match="data-00001-of-00002.tfrecord: shard is truncated or altered"):
        tfrecord_dataset(out, verify=False)
    with pytest.raises(ValueError, match=r"labels \['nope'\] not in the manifest"):
        tfrecord_dataset(out / "data-00000-of-00002.tfrecord", labels=["nope"])


def test_seeded_shuffle_and_augmentation_are_reproducible(tmp_path):
    table, _ = make_cohort(tmp_path, n=8)
    write_tfrecords(table, tmp_path / "out", shards=4, workers=1, progress=False)

    def run(seed):
        ds = tfrecord_dataset(str(tmp_path / "out" / "data-*.tfrecord"), batch_size=3, shuffle=True,
                              augment=True, seed=seed, repeat=2, with_ids=True)
        return [(ids.numpy().tolist(), x.numpy()) for x, _, _, ids in ds]

    first, second, other = run(3), run(3), run(4)
    assert [i for i, _ in first] == [i for i, _ in second]
    for (_, a), (_, b) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [i for i, _ in first] != [i for i, _ in other]
    ids = sum([i for i, _ in first], [])
    assert len(ids) == 16 and sorted(ids[:8]) == sorted(ids[8:])  # two full passes
    assert ids[:8] != ids[8:]  # reshuffled each pass


def test_parallel_workers_and_sharding_for_distributed_input(tmp_path):
    table, arrays = make_cohort(tmp_path, n=6)
    report = write_tfrecords(table, tmp_path / "out", shards=3, workers=2, progress=False)
    assert len(report.written) == 3
    parts = [set(read_all(tmp_path / "out", num_shards=3, shard_index=i)) for i in range(3)]
    assert set().union(*parts) == set(arrays) and sum(len(p) for p in parts) == 6


def test_volume_dataset_reads_images_directly(tmp_path):
    table, arrays = make_cohort(tmp_path, n=3)
    paths = [str(tmp_path / f"sub-{i:02d}.nii.gz") for i in range(3)]
    ds = volume_dataset(paths, labels={"age": [30, None, 50], "sex": ["F", "M", ""]}, batch_size=3)
    x, y, w = next(iter(ds))
    np.testing.assert_allclose(x[1, ..., 0], arrays["sub-01"])
    np.testing.assert_array_equal(y["age"], [[30], [0], [50]])
    np.testing.assert_array_equal(w["age"], [1, 0, 1])
    np.testing.assert_array_equal(y["sex"], [[0], [1], [0]])
    np.testing.assert_array_equal(w["sex"], [1, 1, 0])


def test_encode_volume_quantisation():
    array = np.linspace(-3, 5, 1000, dtype="float32")
    for dtype, qmax in (("uint8", 255), ("int16", 65535)):
        data, scale, offset = encode_volume(array, dtype)
        restored = np.frombuffer(data, dtype).astype("float32") * scale + offset
        assert np.abs(restored - array).max() <= 0.5 * 8 / qmax + 1e-6
    with pytest.raises(VolumeError, match="overflow float16"):
        encode_volume(np.array([1e6], dtype="float32"), "float16")


def test_cli_writes_shards(tmp_path, capsys):
    from kerasbrain.cli import main

    table, _ = make_cohort(tmp_path, n=4)
    code = main(["tfrecords", table, str(tmp_path / "out"), "--labels", "age", "--shape", "8,8,8",
                 "--intensity", "mean", "--dtype", "uint8", "--shards", "2", "--workers", "1", "--quiet"])
    assert code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["count"] == 4 and manifest["shape"] == [8, 8, 8] and list(manifest["labels"]) == ["age"]
    assert "4 volumes in 2 shards" in capsys.readouterr().out
    assert main(["tfrecords", table, str(tmp_path / "out2"), "--labels", "nope", "--quiet"]) == 1
    assert "label column(s) ['nope'] not found" in capsys.readouterr().err
