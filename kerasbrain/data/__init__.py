"""Brain volumes in, batches out: NIfTI/MGZ I/O, preprocessing, TFRecords, tf.data.

    import kerasbrain as kb
    prep = kb.data.Preprocessor.for_weights("ukb")
    kb.data.write_tfrecords("participants.tsv", "shards/", labels=["age", "sex"], preprocessor=prep)
    train = kb.data.tfrecord_dataset("shards/", batch_size=4, shuffle=True, augment=True, seed=0)

Names are imported on first use, so worker processes that only decode images do not
import TensorFlow.
"""

import importlib

_NAMES = {
    "Volume": "io",
    "VolumeError": "io",
    "load_volume": "io",
    "check_array": "io",
    "collect_inputs": "inputs",
    "merge_table": "inputs",
    "Preprocessor": "preprocess",
    "normalise": "preprocess",
    "reorient": "preprocess",
    "resample": "preprocess",
    "bounding_box": "preprocess",
    "extract_brain": "brain",
    "register": "registration",
    "AffineTransform": "registration",
    "apply_transform": "registration",
    "to_native": "registration",
    "prepare": "pipeline",
    "PRESETS": "presets",
    "get_preset": "presets",
    "list_presets": "presets",
    "Table": "table",
    "LabelSpec": "table",
    "read_table": "table",
    "write_tfrecords": "tfrecords",
    "WriteReport": "tfrecords",
    "read_manifest": "tfrecords",
    "encode_volume": "encoding",
    "tfrecord_dataset": "dataset",
    "volume_dataset": "dataset",
    "label_categories": "dataset",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerasbrain.data' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, "brain", "dataset", "inputs", "io", "pipeline", "preprocess",
                   "presets", "qc", "registration", "table", "template",
                   "tfrecords"])
