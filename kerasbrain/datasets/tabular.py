"""Datasets of real scans given as a table or a BIDS folder, loaded into memory.

    from kerasbrain.data import Preprocessor
    from kerasbrain.datasets.tabular import load_dataset
    x, table = load_dataset("ixi/participants.tsv", Preprocessor(spacing=4, shape=(48, 48, 48)))

For datasets larger than memory, write TFRecords instead (``kerasbrain tfrecords``).
"""

import os

import numpy as np


def load_dataset(source, preprocessor=None, path_column="path", labels=None, progress=True):
    """Read every scan of a table / BIDS dataset / folder and preprocess it.

    Args:
        source: a CSV/TSV table with a path column, a BIDS folder (with
            ``participants.tsv``), a folder of images, or a list of those
            (see `kerasbrain.data.inputs.collect_inputs`).
        preprocessor: a `kerasbrain.data.Preprocessor` (or a preset / weight-set name);
            ``None`` reorients to RAS and keeps size and intensities, as
            `kerasbrain.data.write_tfrecords` does.
        path_column: column of image paths in tables.
        labels: with a table ``source``: the label columns to keep, checked as
            `kerasbrain.data.read_table` checks them (a column mixing numbers and text is
            an error naming the rows).
        progress: show a progress bar.

    Returns:
        ``(x, table)``: ``x`` float32 ``(n, x, y, z, 1)``; ``table`` a DataFrame with
        ``id``, ``path`` and the table's columns (missing cells as NaN/None).

    Raises:
        FileNotFoundError / ValueError naming ``source``, the row and the scan: a scan
        that is missing or unreadable, or whose preprocessed shape differs from the first
        one's (give the preprocessor a fixed ``shape``).
    """
    from kerasbrain import progress as progress_lib
    from kerasbrain.data import Preprocessor, read_table
    from kerasbrain.data.inputs import collect_inputs

    if labels is not None:
        table = read_table(source, labels=labels, path_column=path_column).frame
    else:
        table = collect_inputs(source, path_column=path_column)
    if preprocessor is None:
        preprocessor = Preprocessor()
    elif isinstance(preprocessor, str):
        preprocessor = Preprocessor.for_weights(preprocessor)
    where = source if isinstance(source, str | os.PathLike) else "inputs"
    bar = progress_lib.bar(len(table), unit_name="scan") if progress else None
    arrays = []
    for row, path in enumerate(table["path"]):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{where}: row {row}: volume not found: {path}")
        try:
            array = preprocessor(path)
        except Exception as error:  # noqa: BLE001 - nibabel/zlib/EOF errors lack the row
            reason = str(error).removeprefix(f"{path}: ")
            raise ValueError(f"{where}: row {row}: cannot read {path}: {reason}") from None
        if arrays and array.shape != arrays[0].shape:
            raise ValueError(f"{where}: row {row}: {path}: preprocessed shape {array.shape} "
                             f"differs from row 0's {arrays[0].shape}; preprocess the scans "
                             "to one shape (a Preprocessor with a fixed shape)")
        arrays.append(array)
        if bar is not None:
            bar.add(1)
    return np.stack(arrays).astype("float32")[..., None], table
