"""In-memory data for cross-validated tuning: small datasets fit in memory, and folds are
index arrays into them."""

import numpy as np


def load_arrays(manifest, labels=None, groups=None, batch_size=16):
    """Read a kerasbrain TFRecord folder into NumPy arrays.

    Args:
        manifest: the TFRecord folder written by ``kerasbrain.data.write_tfrecords`` (or
            its ``manifest.json``).
        labels: label names to read (default: all in the manifest).
        groups: optional label name holding subject or site ids, returned separately.
        batch_size: records decoded at a time.

    Returns:
        ``(x, y, groups)``: volumes ``(n, x, y, z, 1)`` float32, ``{label: (n,)}``
        float32 with NaN where a label is missing, and the group ids ``(n,)`` (or
        ``None``).
    """
    from kerasbrain import data

    names = list(labels) if labels is not None else None
    wanted = None if names is None else list(dict.fromkeys(names + ([groups] if groups else [])))
    dataset = data.tfrecord_dataset(manifest, labels=wanted, batch_size=batch_size)
    volumes, values, weights = [], {}, {}
    for batch_x, batch_y, batch_w in dataset.as_numpy_iterator():
        volumes.append(batch_x)
        for name, value in batch_y.items():
            values.setdefault(name, []).append(np.asarray(value, dtype="float32").reshape(-1))
            weights.setdefault(name, []).append(np.asarray(batch_w[name]).reshape(-1))
    if not volumes:
        raise ValueError(f"{manifest}: the TFRecord folder holds no records.")
    x = np.concatenate(volumes)
    y = {}
    for name in values:
        value = np.concatenate(values[name])
        present = np.concatenate(weights[name]) > 0
        y[name] = np.where(present, value, np.nan).astype("float32")
    group_ids = None
    if groups:
        if groups not in y:
            raise ValueError(f"{manifest}: no label {groups!r} for groups; labels: {sorted(y)}.")
        group_ids = y.pop(groups) if names is None or groups not in names else y[groups].copy()
        if np.isnan(group_ids).any():
            raise ValueError(f"{manifest}: label {groups!r} (groups) is missing for some records.")
    return x, y, group_ids
