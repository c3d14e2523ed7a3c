"""Tables of scans and labels: CSV/TSV files, BIDS ``participants.tsv``, DataFrames.

A table has one row per scan: an image path, an id, and any number of label columns.
Labels are numeric or string categories; empty cells, ``n/a`` and NaN are missing.
"""

import dataclasses
import glob
import os

import numpy as np
import pandas as pd

MISSING = ["", "n/a", "N/A", "NA", "nan", "NaN", "None"]


@dataclasses.dataclass
class LabelSpec:
    """How a label is stored: ``numeric`` values or ``categorical`` indices into ``categories``."""

    name: str
    type: str
    categories: list | None = None

    def to_json(self):
        out = {"type": self.type}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json(cls, name, data):
        return cls(name, data["type"], data.get("categories"))


@dataclasses.dataclass
class Table:
    """A parsed table: ``frame`` with columns ``id``, ``path`` and the labels."""

    frame: pd.DataFrame
    labels: dict  # name -> LabelSpec
    source: str

    def __len__(self):
        return len(self.frame)

    def encoded_labels(self):
        """(rows, labels) float32: numeric values or category indices, NaN where missing."""
        return encode_labels(self.frame, list(self.labels.values()))


def read_table(table, labels=None, path_column="path", id_column=None, root=None,
               categorical=()):
    """Read a table of scans.

    Args:
        table: CSV/TSV path (``.tsv`` and ``participants.tsv`` are tab separated), a
            `pandas.DataFrame` or a list of dicts.
        labels: label columns to keep; None keeps every column except id and path.
        path_column: column with image paths, relative to ``root``. Without it, a
            BIDS table finds ``<root>/<participant_id>/[ses-*/]anat/*_T1w.nii[.gz]``.
        id_column: column with unique ids (default ``participant_id`` or ``id`` when
            present, else the row number).
        root: folder that relative paths start from (default: the table's folder).
        categorical: label columns to store as categories even where their values
            look numeric (a column that is numeric except for a few cells is an error
            otherwise).

    Raises:
        ValueError: a label, id or path column is absent, a label column has no
            values, a numeric column has non-numeric cells, or ids are duplicated
            (the message names the column and rows).
    """
    if isinstance(table, str | os.PathLike):
        source = os.fspath(table)
        if not os.path.exists(source):
            raise FileNotFoundError(f"{source}: no such table")
        sep = "\t" if source.endswith((".tsv", ".tsv.gz")) else ","
        frame = pd.read_csv(source, sep=sep, dtype=str, keep_default_na=False, na_values=MISSING)
        root = root if root is not None else os.path.dirname(os.path.abspath(source))
    else:
        source = "table"
        frame = table.copy() if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
        root = root if root is not None else os.getcwd()
    frame = frame.reset_index(drop=True)
    columns = list(frame.columns)

    if id_column is None:
        id_column = next((c for c in ("participant_id", "id") if c in columns), None)
    elif id_column not in columns:
        raise ValueError(f"{source}: id column {id_column!r} not found (columns: {columns})")
    ids = (
        frame[id_column].astype(str)
        if id_column is not None
        else pd.Series([str(i) for i in range(len(frame))])
    )
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        groups = duplicated.groupby(duplicated).groups
        detail = "; ".join(f"{k!r} in rows {list(v)}" for k, v in groups.items())
        raise ValueError(f"{source}: duplicate ids: {detail}")

    if path_column in columns:
        paths = [_resolve(p, root) for p in frame[path_column]]
    elif id_column == "participant_id":
        paths = [_bids_t1(root, pid) for pid in ids]
    else:
        raise ValueError(f"{source}: path column {path_column!r} not found (columns: {columns})")

    reserved = {path_column, id_column}
    if labels is None:  # every other column that holds a value
        labels = [c for c in columns if c not in reserved
                  and not all(_missing(v) for v in frame[c])]
    else:
        labels = [labels] if isinstance(labels, str) else list(labels)
        absent = [name for name in labels if name not in columns]
        if absent:
            raise ValueError(f"{source}: label column(s) {absent} not found (columns: {columns})")
    out = pd.DataFrame({"id": ids.values, "path": paths})
    specs = {}
    categorical = [categorical] if isinstance(categorical, str) else list(categorical or ())
    absent = [name for name in categorical if name not in labels]
    if absent:
        raise ValueError(f"{source}: categorical column(s) {absent} are not among the labels {labels}")
    for name in labels:
        values, spec = _parse_label(frame[name], name, source, name in categorical)
        out[name] = values
        specs[name] = spec
    return Table(out, specs, source)


def _resolve(path, root):
    if not isinstance(path, str) or not path:
        return ""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(root, path)


def _bids_t1(root, participant):
    for pattern in ("anat/*_T1w.nii*", "ses-*/anat/*_T1w.nii*"):
        found = sorted(glob.glob(os.path.join(root, participant, pattern)))
        if found:
            return found[0]
    return os.path.join(root, participant, "anat", f"{participant}_T1w.nii.gz")


def _parse_label(column, name, source="table", categorical=False):
    """Values for storage (numeric floats or category strings) and the label's spec."""
    present = column[[not _missing(v) for v in column]]
    if len(present) == 0:
        raise ValueError(f"{source}: label column {name!r} has no values (every cell is empty "
                         "or n/a); leave it out of the labels")
    if categorical:
        values = [None if _missing(v) else str(v).strip() for v in column]
        categories = sorted({v for v in values if v is not None})
        return np.array(values, dtype=object), LabelSpec(name, "categorical", categories)
    if pd.api.types.is_bool_dtype(column):
        column = column.astype(float)
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64").values, LabelSpec(name, "numeric")
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all():
        return pd.to_numeric(column, errors="coerce").astype("float64").values, LabelSpec(
            name, "numeric"
        )
    text, numbers = present[numeric.isna()], present[numeric.notna()]
    if len(numbers):  # a mix: typos in a numeric column, or numbers among categories
        odd, what = (text, "is numeric except") if len(numbers) >= len(text) else (
            numbers, "holds categories but has numbers in")
        cells = ", ".join(f"row {i}: {v!r}" for i, v in list(odd.items())[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        raise ValueError(f"{source}: label column {name!r} {what} {cells}{more}; fix those "
                         "cells, mark them missing (n/a), or declare the column categorical")
    values = [None if _missing(v) else str(v).strip() for v in column]
    categories = sorted({v for v in values if v is not None})
    return np.array(values, dtype=object), LabelSpec(name, "categorical", categories)


def _missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() in MISSING


def encode_labels(frame, specs):
    """(rows, len(specs)) float32: numbers or category indices, NaN where missing."""
    out = np.full((len(frame), len(specs)), np.nan, dtype="float32")
    for j, spec in enumerate(specs):
        column = frame[spec.name]
        if spec.type == "numeric":
            out[:, j] = pd.to_numeric(column, errors="coerce").astype("float32")
        else:
            index = {c: i for i, c in enumerate(spec.categories)}
            for i, value in enumerate(column):
                if not _missing(value):
                    if value not in index:
                        raise ValueError(
                            f"label {spec.name!r}: unknown category {value!r} in row {i} "
                            f"(known: {spec.categories})"
                        )
                    out[i, j] = index[value]
    return out
