"""Feature spaces of pretrained models: extract features, relate them to phenotypes,
and draw a 2D embedding."""


import numpy as np

from kerasbrain.files import save_figure
from kerasbrain.transfer import heads as heads_lib


def extract_features(model, data, batch_size=8, verbose=0):
    """Features of ``data`` from ``model``'s backbone.

    Args:
        model: a backbone, a model with heads (its backbone is used) or a
            ``MultiTaskModel``. 5D feature maps are averaged over space.
        data: volumes ``(n, x, y, z, c)`` or a ``tf.data.Dataset`` / iterable yielding
            ``x`` or ``(x, ...)`` batches.
        batch_size: batch size for arrays.

    Returns:
        float32 array ``(n, d)``.
    """
    backbone, _, _ = heads_lib.split(model)
    if isinstance(data, np.ndarray):
        features = backbone.predict(data, batch_size=batch_size, verbose=verbose)
    else:
        features = backbone.predict(data, verbose=verbose)
    features = np.asarray(features, dtype="float32")
    if features.ndim == 5:
        features = features.mean(axis=(1, 2, 3))
    if features.ndim != 2:
        raise ValueError(f"features must be (n, d) or a 5D map; the backbone gives {features.shape}.")
    return features


def _residualize(values, covariate):
    """Residuals of ``values`` ``(n, k)`` after least squares on ``[1, covariate]``."""
    design = np.column_stack([np.ones(len(covariate)), covariate])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def feature_associations(features, phenotypes, residualize=None):
    """Pearson correlation of every feature with every phenotype.

    Args:
        features: ``(n, d)``.
        phenotypes: pandas DataFrame or dict ``{name: (n,)}`` of numeric phenotypes
            (NaN = missing; each correlation uses the subjects that have the phenotype).
        residualize: optional covariate ``(n,)`` or the name of a phenotype column (e.g.
            ``"age"``) regressed out of both features and phenotypes first; that
            phenotype itself is then skipped.

    Returns:
        DataFrame with columns ``phenotype, feature, r, n`` sorted by ``|r|`` descending.
    """
    import pandas as pd

    features = np.asarray(features, dtype="float64")
    table = pd.DataFrame(phenotypes)
    if len(table) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(table)} phenotype rows.")
    covariate = None
    if isinstance(residualize, str):
        if residualize not in table:
            raise KeyError(f"residualize={residualize!r} is not a phenotype column: {list(table)}.")
        covariate = table.pop(residualize).to_numpy(dtype="float64")
    elif residualize is not None:
        covariate = np.asarray(residualize, dtype="float64").reshape(-1)
    rows = []
    for name in table.columns:
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype="float64")
        keep = np.isfinite(values)
        if covariate is not None:
            keep &= np.isfinite(covariate)
        if keep.sum() < 3:
            raise ValueError(f"phenotype {name!r} has fewer than 3 usable values.")
        x, y = features[keep], values[keep]
        if covariate is not None:
            x = _residualize(x, covariate[keep])
            y = _residualize(y[:, None], covariate[keep])[:, 0]
        x = x - x.mean(0)
        y = y - y.mean()
        denominator = np.sqrt((x**2).sum(0) * (y**2).sum())
        r = np.divide(x.T @ y, denominator, out=np.zeros(x.shape[1]), where=denominator > 0)
        rows.extend({"phenotype": name, "feature": j, "r": float(r[j]), "n": int(keep.sum())}
                    for j in range(x.shape[1]))
    out = pd.DataFrame(rows)
    return out.reindex(out["r"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def embed(features, method="pca", seed=0):
    """2D embedding ``(n, 2)`` of standardised features by PCA or t-SNE."""
    from sklearn.preprocessing import StandardScaler

    features = StandardScaler().fit_transform(np.asarray(features, dtype="float64"))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(features) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, random_state=seed,
                    init="pca").fit_transform(features)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}.")


def plot_embedding(features, color=None, path=None, method="pca", title=None, seed=0):
    """Scatter the 2D embedding of ``features`` coloured by a phenotype; save a PNG.

    Args:
        features: ``(n, d)``.
        color: optional ``(n,)`` phenotype values (numeric or labels).
        path: PNG path (written atomically), or ``None`` for no file.
        method: ``"pca"`` or ``"tsne"``.

    Returns:
        The embedding ``(n, 2)``.
    """
    points = embed(features, method, seed)
    if path is None:
        return points
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4.5))
    if color is not None:
        color = np.asarray(color)
        if color.dtype.kind in "fiub":
            scatter = axis.scatter(points[:, 0], points[:, 1], c=color, s=12, cmap="viridis")
            figure.colorbar(scatter, ax=axis)
        else:
            for label in sorted({str(c) for c in color}):
                mask = np.array([str(c) == label for c in color])
                axis.scatter(points[mask, 0], points[mask, 1], s=12, label=label)
            axis.legend()
    else:
        axis.scatter(points[:, 0], points[:, 1], s=12)
    axis.set_xlabel(f"{method.upper()} 1")
    axis.set_ylabel(f"{method.upper()} 2")
    axis.set_title(title or f"feature space ({method.upper()})")
    figure.tight_layout()
    save_figure(figure, path)
    return points

