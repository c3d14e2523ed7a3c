"""Cross-validation folds for small datasets: stratified by class, grouped by subject or site.

``split_folds`` picks scikit-learn's splitter from what is given:

=============  ==========  =========================
stratify       groups      splitter
=============  ==========  =========================
no             no          ``KFold``
yes            no          ``StratifiedKFold``
no             yes         ``GroupKFold``
yes            yes         ``StratifiedGroupKFold``
=============  ==========  =========================

and checks the data first, so impossible requests fail with a message that says why
instead of a scikit-learn warning deep inside a search.
"""

import numpy as np
from sklearn import model_selection


def split_folds(n_samples, folds=5, *, stratify=None, groups=None, shuffle=True, seed=0):
    """Split ``n_samples`` into ``folds`` train/validation index pairs.

    Args:
        n_samples: number of samples.
        folds: number of folds ``k`` (at least 2).
        stratify: optional ``(n_samples,)`` class labels; each validation fold then keeps
            the class proportions. Missing labels (NaN) form a stratum of their own.
        groups: optional ``(n_samples,)`` group ids (subject, site); a group is never split
            between a training and a validation fold.
        shuffle: shuffle before splitting (``GroupKFold`` is deterministic by design and
            ignores it).
        seed: random seed of the shuffle, so every trial sees the same folds.

    Returns:
        list of ``k`` tuples ``(train_indices, validation_indices)``, int64 arrays. The
        validation folds are disjoint and together cover all samples.

    Raises:
        ValueError: fewer samples, groups or members of a class than folds, or labels
            whose length differs from ``n_samples``.
    """
    n_samples = int(n_samples)
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"folds must be an integer of at least 2, got {folds!r}.")
    folds = int(folds)
    if folds > n_samples:
        raise ValueError(
            f"folds={folds} is more than the number of samples ({n_samples}): each "
            "validation fold needs at least one sample. Use fewer folds."
        )
    index = np.arange(n_samples)
    random_state = seed if shuffle else None

    if groups is not None:
        groups = _as_labels(groups, n_samples, "groups")
        n_groups = len(np.unique(groups))
        if n_groups < folds:
            raise ValueError(
                f"folds={folds} is more than the number of distinct groups ({n_groups}): "
                "a group is never split between folds. Use fewer folds or finer groups."
            )
    if stratify is not None:
        stratify = _as_labels(stratify, n_samples, "stratify")
        classes, counts = np.unique(stratify, return_counts=True)
        too_few = {_plain(c): int(n) for c, n in zip(classes, counts, strict=True) if n < folds}
        if too_few:
            raise ValueError(
                f"Cannot stratify {folds} folds: class(es) {too_few} (label: members) have "
                f"fewer members than folds. Use at most {int(counts.min())} folds, or do not "
                "stratify."
            )

    if stratify is not None and groups is not None:
        splitter = model_selection.StratifiedGroupKFold(
            folds, shuffle=shuffle, random_state=random_state
        )
        splits = splitter.split(index, stratify, groups)
    elif stratify is not None:
        splitter = model_selection.StratifiedKFold(folds, shuffle=shuffle, random_state=random_state)
        splits = splitter.split(index, stratify)
    elif groups is not None:
        splits = model_selection.GroupKFold(folds).split(index, groups=groups)
    else:
        splitter = model_selection.KFold(folds, shuffle=shuffle, random_state=random_state)
        splits = splitter.split(index)
    result = [(np.asarray(train, "int64"), np.asarray(val, "int64")) for train, val in splits]
    for k, (_, val) in enumerate(result):
        if len(val) == 0:
            raise ValueError(
                f"Validation fold {k} is empty: the groups/classes cannot be spread over "
                f"{folds} folds. Use fewer folds."
            )
    return result


def _as_labels(labels, n_samples, name):
    """1D label array with NaN replaced by a stratum of its own."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n_samples:
        raise ValueError(
            f"{name} must have one label per sample ({n_samples}), got shape {labels.shape}."
        )
    if labels.dtype.kind == "f":
        missing = np.isnan(labels)
        if missing.any():
            labels = np.where(missing, "missing", labels.astype(str))
    elif labels.dtype.kind == "O":
        labels = labels.astype(str)
    return labels


def _plain(value):
    return value.item() if hasattr(value, "item") else value
