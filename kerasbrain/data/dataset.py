"""tf.data pipelines of ``(volumes, {label: value}, {label: sample_weight})`` for ``model.fit``.

Volumes come out as ``(batch, x, y, z, 1)`` float32, labels as ``(batch, 1)``
(float32 numbers, or int32 category indices for categorical labels) and sample
weights as ``(batch,)``; a missing label gives value 0 and sample weight 0, so it
adds nothing to that output's loss. Works with ``model.fit`` on every
Keras backend (Keras converts tf.data batches for JAX and PyTorch).
"""

import glob
import os

from kerasbrain.data.preprocess import Preprocessor
from kerasbrain.data.table import read_table
from kerasbrain.data.tfrecords import MANIFEST, _sha256, read_manifest

#: manifests up to this many bytes of shards are checked by sha256 when verify=None
VERIFY_LIMIT = 2 << 30


def tfrecord_dataset(
    pattern_or_manifest, labels=None, batch_size=1, shuffle=False, augment=None, cache=False,
    repeat=False, seed=None, *, shuffle_buffer=None, drop_remainder=False, num_shards=None,
    shard_index=None, input_context=None, verify=None, with_ids=False,
):
    """Stream shards written by `write_tfrecords`.

    Args:
        pattern_or_manifest: the output folder, its ``manifest.json``, a glob of shard
            files (``"out/data-*.tfrecord"``) or a list of shard paths; the manifest must
            sit beside the shards.
        labels: label names to yield (default: all in the manifest); ``[]`` yields
            volumes only.
        batch_size: volumes per batch.
        shuffle: shuffle shard order and records (buffer ``shuffle_buffer``, default all
            records when cached, else 16).
        augment: None/False, True (`kerasbrain.layers.augmentation()`), a Keras layer
            (e.g. a `keras.Sequential` of kerasbrain augmentation layers) or a function
            of one unbatched volume (x, y, z, 1).
        cache: True (memory) or a file path: cache the stored records after reading.
        repeat: False, True (forever) or a number of passes.
        seed: makes shuffling and augmentation reproducible (order deterministic).
        num_shards, shard_index: read only every ``num_shards``-th shard file (or record
            when there are fewer files), for per-worker input in distributed training;
            ``input_context`` (a ``tf.distribute.InputContext``) sets both.
        verify: check each shard against the manifest: True compares sha256, False
            sizes only; None (default) checks sha256 when the shards total at most 2 GiB.
        with_ids: add the scan id (bytes) as a last element of each batch.

    Returns:
        ``tf.data.Dataset`` of ``(volumes, labels, sample_weights)``.

    Raises:
        FileNotFoundError, ValueError: missing manifest or shard, unknown label, or a
            shard truncated/altered since it was written (named in the message).
    """
    import tensorflow as tf

    manifest, folder, files = _resolve(pattern_or_manifest)
    entries = {s["file"]: s for s in manifest["shards"]}
    _verify(folder, files, entries, verify)
    names = _select_labels(manifest, labels)
    specs = [manifest["labels"][n] for n in names]
    shape = tuple(manifest["shape"])
    storage = tf.as_dtype(manifest["dtype"])
    if input_context is not None:
        num_shards, shard_index = input_context.num_input_pipelines, input_context.input_pipeline_id
    per_record_shard = False
    if num_shards and num_shards > 1:
        if len(files) >= num_shards:
            files = files[shard_index::num_shards]
        else:
            per_record_shard = True
    count = sum(entries[f]["count"] for f in files)
    if per_record_shard:
        count = len(range(shard_index, count, num_shards))
    paths = [os.path.join(folder, f) for f in files]

    deterministic = True if seed is not None else None
    compression = manifest.get("compression") or ""
    ds = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(paths), 8) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if per_record_shard:
        ds = ds.shard(num_shards, shard_index)
    feature_spec = {
        "volume": tf.io.FixedLenFeature([], tf.string),
        "scale": tf.io.FixedLenFeature([], tf.float32),
        "offset": tf.io.FixedLenFeature([], tf.float32),
        "id": tf.io.FixedLenFeature([], tf.string),
    }
    for name in names:
        feature_spec[f"label/{name}"] = tf.io.FixedLenFeature([], tf.float32)

    def parse(record):
        example = tf.io.parse_single_example(record, feature_spec)
        volume = tf.reshape(tf.io.decode_raw(example["volume"], storage), shape + (1,))
        volume = tf.cast(volume, tf.float32)
        if storage.is_integer:
            volume = volume * example["scale"] + example["offset"]
        values = tf.stack([example[f"label/{n}"] for n in names]) if names else tf.zeros([0])
        return volume, values, example["id"]

    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
    if shuffle:
        buffer = shuffle_buffer or (count if cache else 16)
        ds = ds.shuffle(max(1, min(buffer, count)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return _finish(ds, count, names, specs, batch_size, augment, repeat, seed, drop_remainder, with_ids)


def volume_dataset(
    paths, labels=None, preprocessor=None, batch_size=1, shuffle=False, augment=None,
    cache=False, repeat=False, seed=None, *, drop_remainder=False,
):
    """Like `tfrecord_dataset`, straight from image files (for small sets).

    Args:
        paths: image paths.
        labels: dict ``{name: values}`` (numbers or strings; None/NaN/"" missing).
        preprocessor: `Preprocessor`, preset name or None (reorient to RAS only; all
            images must then share a shape).
    """
    import tensorflow as tf

    if preprocessor is None:
        preprocessor = Preprocessor()
    elif isinstance(preprocessor, str):
        preprocessor = Preprocessor.for_weights(preprocessor)
    paths = [os.fspath(p) for p in paths]
    labels = dict(labels or {})
    for name, values in labels.items():
        if len(values) != len(paths):
            raise ValueError(f"labels[{name!r}] has {len(values)} values for {len(paths)} paths")
    rows = [{"path": p, "id": str(i), **{k: v[i] for k, v in labels.items()}} for i, p in enumerate(paths)]
    table = read_table(rows, labels=list(labels), root="")
    values = table.encoded_labels()
    names = list(table.labels)
    specs = [table.labels[n].to_json() for n in names]
    shape = preprocessor(paths[0]).shape

    def load(index):
        path = paths[int(index)]
        array = preprocessor(path).astype("float32")
        if array.shape != shape:
            raise ValueError(f"{path}: shape {array.shape} differs from {shape}; set Preprocessor(shape=...)")
        return array[..., None]

    def element(index):
        volume = tf.numpy_function(load, [index], tf.float32, stateful=False)
        volume = tf.ensure_shape(volume, shape + (1,))
        return volume, tf.gather(values, index), tf.strings.as_string(index)

    ds = tf.data.Dataset.range(len(paths))
    if shuffle and not cache:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True if seed is not None else None)
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return _finish(ds, len(paths), names, specs, batch_size, augment, repeat, seed, drop_remainder, False)


def _finish(ds, count, names, specs, batch_size, augment, repeat, seed, drop_remainder, with_ids):
    """Repeat, augment, split labels into dicts with weights, batch, prefetch.

    The number of batches is declared (``count`` volumes), so Keras knows the steps per epoch.
    """
    import tensorflow as tf

    deterministic = True if seed is not None else None
    if repeat:
        ds = ds.repeat(None if repeat is True else int(repeat))
    if augment:
        from kerasbrain.layers.augment import augment_with_seed, augmentation

        layer = augmentation() if augment is True else augment
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        @tf.autograph.experimental.do_not_convert
        def apply(element, s):
            return (augment_with_seed(layer, element[0], s), *element[1:])

        ds = tf.data.Dataset.zip(ds, seeds).map(
            apply,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    categorical = [s["type"] == "categorical" for s in specs]

    def structure(volume, values, id_):
        if not names:
            return (volume, id_) if with_ids else volume
        present = tf.math.is_finite(values)
        filled = tf.where(present, values, tf.zeros_like(values))
        y, w = {}, {}
        for i, name in enumerate(names):
            value = filled[i : i + 1]
            y[name] = tf.cast(value, tf.int32) if categorical[i] else value
            w[name] = tf.cast(present[i], tf.float32)
        return (volume, y, w, id_) if with_ids else (volume, y, w)

    ds = ds.map(structure, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat is not True:
        passes = int(repeat) if repeat else 1
        total = count * passes
        batches = total // batch_size if drop_remainder else -(-total // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(tf.data.AUTOTUNE)


def _resolve(source):
    """(manifest, folder, shard file names in manifest order) for a folder/manifest/glob/list."""
    if isinstance(source, list | tuple):
        matched = [os.fspath(p) for p in source]
    else:
        source = os.fspath(source)
        if os.path.isdir(source) or source.endswith(".json"):
            manifest = read_manifest(source)
            folder = source if os.path.isdir(source) else os.path.dirname(source)
            return manifest, folder, [s["file"] for s in manifest["shards"]]
        matched = sorted(glob.glob(source))
        if not matched:
            raise FileNotFoundError(f"{source}: no shard files match")
    folders = {os.path.dirname(os.path.abspath(p)) for p in matched}
    if len(folders) != 1:
        raise ValueError(f"shards must come from one folder (with its {MANIFEST}), got {sorted(folders)}")
    folder = folders.pop()
    manifest = read_manifest(folder)
    known = {s["file"] for s in manifest["shards"]}
    names = {os.path.basename(p) for p in matched}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"{folder}: shards {unknown} are not listed in {MANIFEST}")
    return manifest, folder, [s["file"] for s in manifest["shards"] if s["file"] in names]


def _verify(folder, files, entries, verify):
    total = sum(entries[f]["bytes"] for f in files)
    full = verify if verify is not None else total <= VERIFY_LIMIT
    for name in files:
        path = os.path.join(folder, name)
        entry = entries[name]
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: shard listed in {MANIFEST} is missing")
        size = os.path.getsize(path)
        if size != entry["bytes"]:
            raise ValueError(
                f"{path}: shard is truncated or altered ({size} bytes, {MANIFEST} says "
                f"{entry['bytes']}); re-run write_tfrecords"
            )
        if full and _sha256(path)[0] != entry["sha256"]:
            raise ValueError(
                f"{path}: shard checksum does not match {MANIFEST} (altered or corrupt); "
                "re-run write_tfrecords"
            )


def _select_labels(manifest, labels):
    available = list(manifest["labels"])
    if labels is None:
        return available
    labels = [labels] if isinstance(labels, str) else list(labels)
    absent = [n for n in labels if n not in available]
    if absent:
        raise ValueError(f"labels {absent} not in the manifest (available: {available})")
    return labels


def label_categories(manifest_or_folder, name):
    """Category strings of a categorical label (index -> string), from a manifest."""
    manifest = manifest_or_folder if isinstance(manifest_or_folder, dict) else read_manifest(manifest_or_folder)
    spec = manifest["labels"][name]
    if spec["type"] != "categorical":
        raise ValueError(f"label {name!r} is numeric")
    return list(spec["categories"])


__all__ = ["tfrecord_dataset", "volume_dataset", "label_categories"]
