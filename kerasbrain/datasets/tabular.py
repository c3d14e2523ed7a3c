"""Datasets of real scans given as a table or a BIDS folder, loaded into memory.

    from kerasbrain.data import Preprocessor
    from kerasbrain.datasets.tabular import load_dataset
    x, table = load_dataset("ixi/participants.tsv", Preprocessor(spacing=4, shape=(48, 48, 48)))

For datasets larger than memory, write TFRecords instead (``kerasbrain tfrecords``).
"""

import numpy as np


def load_dataset(source, preprocessor, path_column="path", progress=True):
    """Read every scan of a table / BIDS dataset / folder and preprocess it.

    Args:
        source: a CSV/TSV table with a path column, a BIDS folder (with
            ``participants.tsv``), a folder of images, or a list of those
            (see `kerasbrain.data.inputs.collect_inputs`).
        preprocessor: a `kerasbrain.data.Preprocessor` whose output shape is fixed.
        path_column: column of image paths in tables.
        progress: show a progress bar.

    Returns:
        ``(x, table)``: ``x`` float32 ``(n, x, y, z, 1)``; ``table`` a DataFrame with
        ``id``, ``path`` and the table's columns (missing cells as NaN/None).

    Raises:
        ValueError: a scan's preprocessed shape differs from the others (set the
            preprocessor's ``shape``); errors of reading name the file.
    """
    import keras

    from kerasbrain.data.inputs import collect_inputs

    table = collect_inputs(source, path_column=path_column)
    bar = keras.utils.Progbar(len(table), unit_name="scan") if progress else None
    arrays = []
    for path in table["path"]:
        array = preprocessor(path)
        if arrays and array.shape != arrays[0].shape:
            raise ValueError(f"{path}: preprocessed shape {array.shape} differs from "
                             f"{arrays[0].shape}; give the Preprocessor a fixed shape")
        arrays.append(array)
        if bar is not None:
            bar.add(1)
    return np.stack(arrays).astype("float32")[..., None], table

