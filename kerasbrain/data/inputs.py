"""Finding the scans to process: image files, folders, BIDS datasets and tables -> one table.

    from kerasbrain.data.inputs import collect_inputs, merge_table
    scans = collect_inputs(["bids/", "extra/sub-99_T1w.nii.gz"])    # id, path, table columns
    scans = merge_table(scans, "labels.csv")                        # + labels joined by id
"""

import os

import pandas as pd

from kerasbrain.data.io import SUFFIXES

TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


def collect_inputs(inputs, path_column="path"):
    """Turn NIfTI/MGZ files, folders, BIDS datasets and tables into one table of scans.

    Args:
        inputs: paths. A file with an image suffix is one scan; a ``.csv``/``.tsv`` is a
            table with a ``path_column`` (or a BIDS ``participants.tsv``); a folder holding
            ``participants.tsv`` is a BIDS/table dataset; any other folder is searched
            recursively for images.
        path_column: column of image paths in tables.

    Returns:
        DataFrame with ``id``, ``path`` and the tables' other columns.

    Raises:
        FileNotFoundError: an input does not exist. ValueError: no scans found, or an
        id appears twice.
    """
    from kerasbrain.data.table import read_table

    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    frames = []
    for item in inputs:
        item = os.fspath(item)
        if not os.path.exists(item):
            raise FileNotFoundError(f"{item}: no such file or folder")
        participants = os.path.join(item, "participants.tsv")
        if os.path.isdir(item) and os.path.exists(participants):
            frames.append(read_table(participants, path_column=path_column).frame)
        elif os.path.isdir(item):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(item)
                for name in names
                if name.endswith(SUFFIXES) and not name.startswith(".")
            )
            frames.append(pd.DataFrame({"id": [_scan_id(p) for p in found], "path": found}))
        elif item.endswith(TABLE_SUFFIXES):
            frames.append(read_table(item, path_column=path_column).frame)
        elif item.endswith(SUFFIXES):
            frames.append(pd.DataFrame({"id": [_scan_id(item)], "path": [item]}))
        else:
            raise ValueError(f"{item}: not an image ({', '.join(SUFFIXES)}), a table "
                             f"({', '.join(TABLE_SUFFIXES)}) or a folder")
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if table.empty:
        raise ValueError(f"no scans found in {', '.join(map(str, inputs))}")
    repeated = table["id"][table["id"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"scan ids appear more than once: {repeated[:5]}")
    return table


def _scan_id(path):
    name = os.path.basename(path)
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def merge_table(scans, table, id_column=None):
    """Add the columns of ``table`` (CSV/TSV path or DataFrame) to ``scans`` by id.

    A table id matches a scan id that equals it or starts with ``<id>_`` (BIDS
    file names such as ``sub-01_T1w``).
    """
    if not isinstance(table, pd.DataFrame):
        sep = "\t" if str(table).endswith((".tsv", ".tsv.gz")) else ","
        table = pd.read_csv(table, sep=sep, na_values=["n/a", ""])
    id_column = id_column or next((c for c in ("participant_id", "id") if c in table.columns), None)
    if id_column is None:
        raise ValueError(f"--table needs a participant_id or id column; columns: {list(table.columns)}")
    lookup = {str(k): i for i, k in enumerate(table[id_column])}
    rows = []
    for scan_id in scans["id"].astype(str):
        key = scan_id if scan_id in lookup else scan_id.split("_")[0]
        rows.append(lookup.get(key))
    extra = table.drop(columns=[id_column]).reindex(rows).reset_index(drop=True)
    extra = extra[[c for c in extra.columns if c not in scans.columns]]
    return pd.concat([scans.reset_index(drop=True), extra], axis=1)
