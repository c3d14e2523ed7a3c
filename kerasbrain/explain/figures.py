"""PNG overlays of attribution maps: three orthogonal slices through the peak of the map and
a maximum-intensity projection, shown in RAS+ display convention."""

import numpy as np

from kerasbrain.data.io import Volume
from kerasbrain.data.preprocess import reorient
from kerasbrain.files import save_figure


def peak(map_):
    """Voxel index of the largest absolute attribution."""
    return np.unravel_index(int(np.argmax(np.abs(map_))), np.shape(map_))


def save_overlay(volume, map_, path, title=None, alpha=0.6):
    """Write a PNG: the map over ``volume`` (a `Volume` on the map's grid).

    Panels: sagittal, coronal and axial slices through the peak of ``|map|``, and the
    axial maximum-intensity projection of ``|map|`` over the mean projection of the volume.
    Positive attributions in red-yellow, negative in blue.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if np.shape(map_) != volume.shape:
        raise ValueError(f"{path}: map shape {np.shape(map_)} != volume shape {volume.shape}")
    ras = reorient(volume, "RAS").array
    m = reorient(Volume(np.asarray(map_, dtype="float32"), volume.affine), "RAS").array
    px, py, pz = peak(m)
    scale = float(np.abs(m).max()) or 1.0
    views = [
        (f"sagittal x={px}", ras[px, :, :].T, m[px, :, :].T, ("P", "A", "I", "S")),
        (f"coronal y={py}", ras[:, py, :].T, m[:, py, :].T, ("L", "R", "I", "S")),
        (f"axial z={pz}", ras[:, :, pz].T, m[:, :, pz].T, ("L", "R", "P", "A")),
        ("axial MIP |map|", ras.mean(axis=2).T, np.abs(m).max(axis=2).T, ("L", "R", "P", "A")),
    ]
    low, high = np.percentile(ras, [0.5, 99.5])
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    for ax, (name, image, overlay, (left, right, bottom, top)) in zip(axes, views, strict=True):
        lo, hi = (low, high) if "MIP" not in name else np.percentile(image, [0.5, 99.5])
        ax.imshow(image, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        shown = np.ma.masked_where(np.abs(overlay) < 0.05 * scale, overlay)
        ax.imshow(shown, origin="lower", cmap="coolwarm", vmin=-scale, vmax=scale, alpha=alpha,
                  interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for x, y, text in ((0.02, 0.5, left), (0.98, 0.5, right), (0.5, 0.02, bottom), (0.5, 0.98, top)):
            ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=9, ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
