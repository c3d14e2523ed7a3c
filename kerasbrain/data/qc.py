"""Quality control of prepared scans: one PNG per scan and one self-contained HTML report.

The PNG shows, in RAS display convention (subject's right on the right, superior up),
the native scan with the brain mask's outline (top row) and the registered brain with
the template's edges (bottom row): a bad mask or a bad registration is visible at a
glance. The report (fMRIPrep/MRIQC style) holds every scan's PNG (base64, no external
file), its TIV, registration overlap and T1 template correlation, worst first, flagged
when outside the usual ranges.
"""

import base64
import html
import io

import numpy as np

from kerasbrain.data.preprocess import reorient

_VIEWS = ("sagittal", "coronal", "axial")


def _slices(array, centre):
    x, y, z = centre
    return [array[x, :, :].T, array[:, y, :].T, array[:, :, z].T]


def _centre(mask):
    points = np.argwhere(mask)
    if not len(points):
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(round(c)) for c in points.mean(axis=0))


def overlay_png(native, mask, registered, template, title=None, dpi=50):
    """PNG bytes of the two-row QC figure.

    Args:
        native, mask: the raw scan and its brain mask (`Volume`, same grid).
        registered, template: the registered brain and the template (`Volume`, same grid).
        title: text above the figure.
        dpi: resolution (50 gives about 70 kB for 1 mm heads).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = []
    for image, outline, levels, colour in ((native, mask, [0.5], "red"),
                                           (registered, template, [0.2, 0.6], "cyan")):
        image, outline = reorient(image, "RAS").array, reorient(outline, "RAS").array
        centre = _centre(outline > levels[0])
        rows.append((_slices(image, centre), _slices(outline, centre), levels, colour,
                     np.percentile(image[image != 0], [1, 99.5]) if np.any(image) else (0, 1)))
    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.0))
    for row, (images, outlines, levels, colour, (low, high)) in zip(axes, rows, strict=True):
        for ax, image, outline, name in zip(row, images, outlines, _VIEWS, strict=True):
            ax.imshow(image, origin="lower", cmap="gray", vmin=low, vmax=high,
                      interpolation="nearest")
            if np.ptp(outline) > 0:
                ax.contour(outline, levels=levels, colors=colour, linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
    axes[0, 0].set_ylabel("native + mask", fontsize=8)
    axes[1, 0].set_ylabel("registered + template", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def write_png(data, path):
    """Write PNG bytes atomically."""
    from kerasbrain.files import write_text

    write_text(path, data)


_STYLE = """
body{font-family:sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;
vertical-align:top}tr.flagged{background:#fde2e2}img{max-width:560px}.ok{color:#1a7f37}
.bad{color:#b42318;font-weight:bold}
"""


def report_html(scans, title="kerasbrain prepare"):
    """A self-contained HTML page for a list of scans.

    Args:
        scans: dicts with ``id``, ``png`` (bytes), ``tiv_cm3``, ``dice``,
            ``template_correlation`` and ``flags`` (list of reasons, empty when fine).

    Returns:
        The page (str): flagged scans first, then by increasing registration overlap.
    """
    order = sorted(scans, key=lambda s: (not s["flags"], s["dice"], str(s["id"])))
    flagged = sum(bool(s["flags"]) for s in order)
    rows = []
    for scan in order:
        image = base64.b64encode(scan["png"]).decode("ascii")
        status = ("<span class='bad'>" + "<br>".join(html.escape(f) for f in scan["flags"])
                  + "</span>") if scan["flags"] else "<span class='ok'>ok</span>"
        rows.append(
            f"<tr class='{'flagged' if scan['flags'] else 'ok'}' id='{html.escape(str(scan['id']))}'>"
            f"<td>{html.escape(str(scan['id']))}</td><td>{scan['tiv_cm3']:.0f}</td>"
            f"<td>{scan['dice']:.3f}</td><td>{scan['template_correlation']:.2f}</td>"
            f"<td>{status}</td><td><img alt='{html.escape(str(scan['id']))}' "
            f"src='data:image/png;base64,{image}'></td></tr>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(order)} scans, {flagged} flagged. Worst first. Overlap: Dice of the "
        "registered brain mask with the MNI152 brain mask; top row: native scan and brain "
        "mask (red); bottom row: registered brain and template edges (cyan).</p>"
        "<table><tr><th>scan</th><th>TIV (cm<sup>3</sup>)</th><th>overlap</th>"
        "<th>T1 correlation</th><th>status</th><th>overlays</th></tr>"
        + "".join(rows) + "</table></body></html>")


def write_report(scans, path, title="kerasbrain prepare"):
    """Write `report_html` to ``path`` (atomically)."""
    from kerasbrain.files import write_text

    write_text(path, report_html(scans, title))
