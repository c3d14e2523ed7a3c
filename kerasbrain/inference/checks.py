"""Does an input look like the training data, and do the outputs stay in range?

What `save_model` records about the training inputs (`describe_training_inputs`) and what
`Predictor` checks each scan and each prediction column against.
"""

import itertools
import warnings

import numpy as np

from kerasbrain.data.preprocess import reorient

TEMPLATE_SIZE = 16


class InputWarning(UserWarning):
    """An input scan does not look like what the model was trained on."""


class OutputRangeWarning(UserWarning):
    """Predictions pile up at the edge of a task's output range."""


def small(volume, size=TEMPLATE_SIZE):
    """Down-sample ``(x, y, z)`` to ``size^3`` (trilinear, after block averaging)."""
    from scipy import ndimage

    volume = np.asarray(volume, dtype="float32")
    factors = [size / n for n in volume.shape]
    sigma = [max(0.0, 0.5 / f - 0.5) for f in factors]
    return ndimage.zoom(ndimage.gaussian_filter(volume, sigma), factors, order=1)[:size, :size, :size]


def describe_training_inputs(volumes):
    """Intensity percentiles, a 16^3 mean template and how closely the training inputs
    match it, from a sample of preprocessed volumes ``(n, x, y, z[, 1])``."""
    volumes = np.asarray(volumes, dtype="float32").reshape(len(volumes), *np.shape(volumes)[1:4])
    info = {"intensity_percentiles": [float(v) for v in np.percentile(volumes, [1, 99])]}
    reduced = [small(v) for v in volumes]
    template = np.mean(reduced, axis=0)
    info["template"] = np.round(template, 4).ravel().tolist()
    if len(reduced) >= 5:  # how closely training inputs resemble their mean
        r = [_correlation(v, template) for v in reduced]
        info["template_correlation"] = [float(v) for v in np.percentile(r, [1, 50])]
    return info


def check_raw(raw, codes, info):
    """Problems visible in a scan as loaded: field of view unlike the training inputs', oblique affine."""
    problems = []
    canonical = reorient(raw, codes)
    fov = np.asarray(canonical.shape) * np.asarray(canonical.spacing)
    expected = info.get("field_of_view_mm")
    if expected is not None:
        ratio = fov / np.asarray(expected)
        if np.any(ratio < 0.6) or np.any(ratio > 1.67):
            problems.append(
                f"field of view {np.round(fov).astype(int).tolist()} mm ({codes} axes) differs "
                f"from the training inputs' {np.round(expected).astype(int).tolist()} mm: wrong "
                "shape or voxel size in the header, or not a whole head?")
    affine = raw.affine[:3, :3] / np.asarray(raw.spacing)
    if np.max(np.abs(np.abs(affine) - np.round(np.abs(affine)))) > 0.1:
        problems.append("oblique affine: reorientation only snaps to the closest axes")
    return problems


def check_preprocessed(array, info):
    """Problems visible after preprocessing: intensity range, orientation, unlike any training scan."""
    problems = []
    percentiles = info.get("intensity_percentiles")
    if percentiles is not None:
        high = float(np.percentile(array, 99))
        if not 0.5 * percentiles[1] <= high <= 2.0 * percentiles[1]:
            problems.append(
                f"intensity 99th percentile {high:.3g} after preprocessing; the training inputs "
                f"had {percentiles[1]:.3g}")
    template = info.get("template")
    if template is not None:
        template = np.asarray(template, dtype="float32").reshape((TEMPLATE_SIZE,) * 3)
        best, best_r, identity_r = _best_orientation(small(array), template)
        gain = best_r - identity_r  # a left-right flip of a symmetric head gains ~0
        floor = info.get("template_correlation", [None])[0]
        if best != "identity" and gain > 0.02 and gain > 0.4 * (1.0 - identity_r):
            problems.append(
                f"looks {best} relative to the training inputs (correlation with the mean "
                f"training image {identity_r:.2f} as stored, {best_r:.2f} after that change): "
                "check the orientation in the header")
        elif floor is not None and identity_r < floor - 0.1:
            problems.append(
                f"does not look like the training inputs: correlation with their mean image "
                f"{identity_r:.2f}, where training scans had {floor:.2f} or more (other contrast, "
                "head coverage, skull stripping or registration?); predictions are not "
                "meaningful until the scan is prepared like the training data")
    return problems


def check_ranges(result, info):
    """Warn (`OutputRangeWarning`) where half the ``predicted_<task>`` values sit at an edge."""
    for column, (low, high) in info.get("output_ranges", {}).items():
        name = f"predicted_{column}"
        if name not in result or len(result) < 1:
            continue
        values = result[name].to_numpy(dtype="float64")
        margin = 0.02 * (high - low)
        at_edge = np.mean((values <= low + margin) | (values >= high - margin))
        if at_edge >= 0.5:
            warnings.warn(
                f"{at_edge:.0%} of {name} lie at the edge of the output range [{low:g}, {high:g}]: "
                "the inputs may be out of the model's domain (preprocessing, intensity, age range)",
                OutputRangeWarning, stacklevel=3)


_ORIENTATION_CHANGES = None


def _orientation_changes():
    """Name -> function for every axis permutation and flip of a cube (48, identity first)."""
    global _ORIENTATION_CHANGES
    if _ORIENTATION_CHANGES is None:
        changes = {}
        for perm in itertools.permutations(range(3)):
            for flips in itertools.product((False, True), repeat=3):
                parts = []
                if perm != (0, 1, 2):
                    parts.append(f"axes permuted to {perm}")
                parts += [f"flipped along axis {a}" for a in range(3) if flips[a]]

                def change(v, perm=perm, flips=flips):
                    v = np.transpose(v, perm)
                    return v[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]

                changes[", ".join(parts) or "identity"] = change
        _ORIENTATION_CHANGES = changes
    return _ORIENTATION_CHANGES


def _correlation(a, b):
    """Pearson correlation of two arrays of the same shape."""
    a = (a - a.mean()) / (a.std() + 1e-8)
    return float(np.mean(a * (b - b.mean()) / (b.std() + 1e-8)))


def _best_orientation(small, template):
    """Which axis permutation/flip of ``small`` correlates best with ``template``."""
    scores = {name: _correlation(change(small), template) for name, change in _orientation_changes().items()}
    best = max(scores, key=scores.get)
    return best, scores[best], scores["identity"]

