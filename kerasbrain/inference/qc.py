"""Quality-control images: the three central slices of a preprocessed scan as a PNG."""

import numpy as np

from kerasbrain.data.preprocess import reorient
from kerasbrain.files import save_figure


def save_qc_png(volume, path, title=None):
    """Write the three central slices of a preprocessed `Volume` as a PNG.

    Slices are shown in RAS+ display convention (the subject's right on the right of the
    axial and coronal views, superior up), with the axis letters on the edges, so an
    orientation or registration mistake is visible at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ras = reorient(volume, "RAS").array
    cx, cy, cz = (s // 2 for s in ras.shape)
    views = [
        ("sagittal", ras[cx, :, :].T, ("P", "A", "I", "S")),
        ("coronal", ras[:, cy, :].T, ("L", "R", "I", "S")),
        ("axial", ras[:, :, cz].T, ("L", "R", "P", "A")),
    ]
    low, high = np.percentile(ras, [0.5, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (name, image, (left, right, bottom, top)) in zip(axes, views, strict=True):
        ax.imshow(image, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for x, y, text in ((0.02, 0.5, left), (0.98, 0.5, right), (0.5, 0.02, bottom), (0.5, 0.98, top)):
            ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=9,
                    ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
