"""Writing preprocessed volumes and labels to sharded TFRecords with a JSON manifest.

Each shard is written to ``<name>.tmp``, fsynced and renamed, so a file with a final
name is always complete; its sha256 and a fingerprint of its inputs (paths, sizes,
mtimes, labels, preprocessing, storage dtype) are recorded, and a re-run skips shards
whose fingerprint and checksum still match. The manifest is written last, atomically:
a directory without ``manifest.json`` is an unfinished run.

Record features: ``volume`` (raw bytes, C order, storage dtype), ``id`` (bytes),
``scale``/``offset`` (float: ``value = stored * scale + offset``), ``label/<name>``
(float32: a number or a category index, NaN where missing).
"""

import dataclasses
import datetime
import hashlib
import json
import math
import multiprocessing
import os
import shutil

import numpy as np

from kerasbrain.data.encoding import DecodedRows
from kerasbrain.data.io import VolumeError
from kerasbrain.data.preprocess import Preprocessor
from kerasbrain.data.table import read_table
from kerasbrain.files import atomic_write, write_json

MANIFEST = "manifest.json"
FORMAT = "kerasbrain-tfrecords"
FORMAT_VERSION = 1
DTYPES = ("float32", "float16", "uint8", "int16")
COMPRESSION = (None, "GZIP", "ZLIB")
_PROGRESS_DIR = ".kerasbrain-partial"


@dataclasses.dataclass
class WriteReport:
    """What `write_tfrecords` did: the manifest, shards written/reused, skipped rows."""

    manifest: dict
    manifest_path: str
    written: list
    reused: list
    skipped: list  # (row, file, reason)

    def __repr__(self):
        return (
            f"WriteReport({self.manifest['count']} volumes in {len(self.manifest['shards'])} "
            f"shards at {self.manifest_path!r}; written {len(self.written)}, reused "
            f"{len(self.reused)}, skipped rows {len(self.skipped)})"
        )


def write_tfrecords(
    table,
    out_dir,
    labels=None,
    preprocessor=None,
    *,
    categorical=(),
    path_column="path",
    id_column=None,
    root=None,
    dtype="float16",
    compression=None,
    shards=None,
    shard_size=32,
    workers=None,
    on_error="raise",
    prefix="data",
    progress=True,
):
    """Preprocess every image of ``table`` into sharded TFRecords plus ``manifest.json``.

    Args:
        table: CSV/TSV path, BIDS ``participants.tsv``, DataFrame or list of dicts
            (see `read_table`).
        out_dir: output folder (created).
        labels: label columns (default: all but id and path). A label column without
            values, or numeric but for a few cells, is an error naming it and the cells.
        categorical: label columns stored as categories even if they look numeric.
        preprocessor: a `Preprocessor`, a preset/weights name, or None (reorient to RAS
            only; all volumes must then share a shape).
        dtype: storage dtype, one of ``float32``, ``float16``, ``uint8``, ``int16``
            (integer types store each volume linearly rescaled to the full range, with
            its scale and offset).
        compression: None, ``"GZIP"`` or ``"ZLIB"``.
        shards: number of shards; default ``ceil(rows / shard_size)``.
        shard_size: volumes per shard when ``shards`` is None.
        workers: processes decoding images (default ``min(cpu count, shards)``); they
            are spawned, so a calling script needs an ``if __name__ == "__main__":`` guard.
        on_error: ``"raise"`` (stop at the first bad row; finished shards stay valid)
            or ``"skip"`` (leave the row out; see `WriteReport.skipped`).
        prefix: shard file prefix: ``<prefix>-00000-of-00004.tfrecord``.
        progress: show a progress bar.

    Returns:
        `WriteReport`.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned worker re-running an unguarded script: leave quietly before touching
        # out_dir; the parent sees the pool break and decodes in its own process
        raise SystemExit(1)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if compression not in COMPRESSION:
        raise ValueError(f"compression must be one of {COMPRESSION}, got {compression!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if preprocessor is None:
        preprocessor = Preprocessor()
    elif isinstance(preprocessor, str):
        preprocessor = Preprocessor.for_weights(preprocessor)
    parsed = read_table(table, labels=labels, path_column=path_column, id_column=id_column,
                        root=root, categorical=categorical)
    if len(parsed) == 0:
        raise ValueError(f"{parsed.source}: no rows")
    values = parsed.encoded_labels()
    specs = parsed.labels
    frame = parsed.frame

    rows = len(frame)
    count = int(shards) if shards is not None else math.ceil(rows / int(shard_size))
    if count < 1:
        raise ValueError(f"shards must be at least 1, got {count}")
    count = min(count, rows)
    bounds = np.linspace(0, rows, count + 1).round().astype(int)
    names = [f"{prefix}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]

    os.makedirs(out_dir, exist_ok=True)
    partial = os.path.join(out_dir, _PROGRESS_DIR)
    os.makedirs(partial, exist_ok=True)
    _manifest_to_sidecars(out_dir, partial)

    config = preprocessor.get_config()
    common = {
        "format": [FORMAT, FORMAT_VERSION],
        "preprocessing": config,
        "dtype": dtype,
        "compression": compression,
        "labels": {k: v.to_json() for k, v in specs.items()},
    }
    plan, entries, reused = [], {}, []
    for i, name in enumerate(names):
        span = range(bounds[i], bounds[i + 1])
        fingerprint = _fingerprint(common, frame, values, span)
        entry = _finished(out_dir, partial, name, fingerprint)
        if entry is not None:
            entries[name] = entry
            reused.append(name)
        else:
            plan.append((i, name, span, fingerprint))

    bar = _progress_bar(rows, progress)
    if bar is not None:
        bar.update(sum(e["count"] + len(e["skipped"]) for e in entries.values()))
    todo = [(name, r) for _, name, span, _ in plan for r in span]
    n_workers = workers or min(os.cpu_count() or 1, max(len(plan), 1))
    written = []
    shape = list(preprocessor.shape) if preprocessor.shape else next(
        (e["shape"] for e in entries.values() if e["shape"] is not None), None
    )
    results = DecodedRows(todo, frame, config, dtype, n_workers)
    try:
        for _, name, span, fingerprint in plan:
            entry = _write_shard(
                out_dir, name, span, fingerprint, results, frame, values, specs,
                compression, on_error, bar, shape,
            )
            shape = entry["shape"] or shape
            write_json(os.path.join(partial, name + ".json"), entry)
            entries[name] = entry
            written.append(name)
    finally:
        results.close()

    shards_meta = [entries[n] for n in names]
    shapes = {tuple(e["shape"]) for e in shards_meta if e["shape"] is not None}
    if len(shapes) > 1:
        raise ValueError(
            f"{out_dir}: shards hold different volume shapes {sorted(shapes)}; delete the "
            "folder or set Preprocessor(shape=...)"
        )
    skipped = [tuple(s) for e in shards_meta for s in e["skipped"]]
    first = next((e for e in shards_meta if e["shape"] is not None), None)
    from kerasbrain import __version__

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kerasbrain_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": parsed.source,
        "count": sum(e["count"] for e in shards_meta),
        "shape": None if first is None else first["shape"],
        "spacing": None if first is None else first["spacing"],
        "orientation": preprocessor.orientation,
        "dtype": dtype,
        "compression": compression,
        "labels": common["labels"],
        "label_counts": _label_counts(values, specs),
        "preprocessing": config,
        "shards": [{"file": n, **{k: v for k, v in e.items() if k not in ("shape", "spacing")}}
                   for n, e in zip(names, shards_meta, strict=True)],
        "skipped": [{"row": r, "file": f, "reason": why} for r, f, why in skipped],
    }
    manifest_path = os.path.join(out_dir, MANIFEST)
    write_json(manifest_path, manifest)
    shutil.rmtree(partial, ignore_errors=True)
    _remove_stale_shards(out_dir, prefix, names)
    return WriteReport(manifest, manifest_path, written, reused, skipped)


def _label_counts(values, specs):
    """``{label: {"present": rows with a value, "distinct": distinct values}}``."""
    out = {}
    for j, name in enumerate(specs):
        present = values[:, j][~np.isnan(values[:, j])]
        out[name] = {"present": int(present.size), "distinct": int(np.unique(present).size)}
    return out


def _write_shard(out_dir, name, span, fingerprint, results, frame, values, specs,
                 compression, on_error, bar, shape):
    """Write rows ``span`` to shard ``name``; volumes must have ``shape`` (None: the first's)."""
    import tensorflow as tf

    options = tf.io.TFRecordOptions(compression_type=compression or "")
    ids, skipped, spacing = [], [], None
    with atomic_write(os.path.join(out_dir, name)) as tmp:
        with tf.io.TFRecordWriter(tmp, options) as writer:
            for r in span:
                path = frame["path"][r]
                encoded, error = results.get()
                if error is None and shape is not None and encoded[3] != shape:
                    error = (
                        f"{path}: shape {tuple(encoded[3])} after preprocessing differs from "
                        f"{tuple(shape)}; set Preprocessor(shape=...)"
                    )
                if error is not None:
                    if on_error == "raise":
                        raise VolumeError(f"row {r} (id {frame['id'][r]!r}): {error}")
                    skipped.append((int(r), path, error))
                else:
                    data, scale, offset, shape, spacing = encoded
                    writer.write(_example(frame["id"][r], data, scale, offset, values[r], specs))
                    ids.append(frame["id"][r])
                if bar is not None:
                    bar.add(1)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        digest, size = _sha256(tmp)
    return {
        "count": len(ids), "sha256": digest, "bytes": size, "fingerprint": fingerprint,
        "ids": ids, "skipped": skipped, "shape": shape, "spacing": spacing,
    }


def _example(id_, data, scale, offset, labels, specs):
    import tensorflow as tf

    feature = {
        "volume": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(id_).encode()])),
        "scale": tf.train.Feature(float_list=tf.train.FloatList(value=[scale])),
        "offset": tf.train.Feature(float_list=tf.train.FloatList(value=[offset])),
    }
    for name, value in zip(specs, labels, strict=True):
        feature[f"label/{name}"] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _fingerprint(common, frame, values, span):
    items = []
    for r in span:
        path = frame["path"][r]
        try:
            stat = os.stat(path)
            stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            stamp = None
        items.append([frame["id"][r], path, stamp, [None if np.isnan(v) else float(v) for v in values[r]]])
    text = json.dumps({**common, "rows": items}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _finished(out_dir, partial, name, fingerprint):
    """The record of a finished shard still valid for ``fingerprint``, else None."""
    sidecar = os.path.join(partial, name + ".json")
    try:
        with open(sidecar) as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    path = os.path.join(out_dir, name)
    if entry.get("fingerprint") != fingerprint or not os.path.exists(path):
        return None
    if os.path.getsize(path) != entry.get("bytes") or _sha256(path)[0] != entry.get("sha256"):
        return None
    entry["skipped"] = [tuple(s) for s in entry["skipped"]]
    return entry


def _remove_stale_shards(out_dir, prefix, names):
    """Delete ``<prefix>-*-of-*.tfrecord`` files of an earlier run that the manifest no longer lists."""
    keep = set(names)
    for name in os.listdir(out_dir):
        stale = name.startswith(prefix + "-") and "-of-" in name and name.endswith(".tfrecord")
        if stale and name not in keep:
            os.remove(os.path.join(out_dir, name))


def _manifest_to_sidecars(out_dir, partial):
    """Move a previous manifest's shard records to sidecars (candidates for reuse)."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return
    try:
        with open(path) as handle:
            old = json.load(handle)
        for shard in old.get("shards", []):
            entry = {k: v for k, v in shard.items() if k != "file"}
            entry["shape"], entry["spacing"] = old.get("shape"), old.get("spacing")
            sidecar = os.path.join(partial, shard["file"] + ".json")
            if not os.path.exists(sidecar):
                write_json(sidecar, entry)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    os.remove(path)


def _sha256(path):
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _progress_bar(total, progress):
    if not progress:
        return None
    from kerasbrain import progress as progress_lib

    return progress_lib.bar(total, unit_name="volume")


def read_manifest(path):
    """Load ``manifest.json`` (a path to it or to its folder)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no manifest (the TFRecord folder is incomplete: re-run write_tfrecords)"
        )
    with open(path) as handle:
        try:
            manifest = json.load(handle)
        except ValueError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); re-run write_tfrecords") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kerasbrain TFRecord manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {manifest['format_version']} is newer than this kerasbrain")
    return manifest
