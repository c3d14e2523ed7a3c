"""Synthetic T1-weighted head volumes with known effects of age, sex, disease and site.

These are **synthetic** images, not real MRI. They exist so that the whole
transfer-learning workflow (pretraining, fine-tuning, learning curves, prediction) can
be run and tested in minutes without access to restricted data, and so that its results
can be checked against a ground truth. Anatomy is a cartoon: nested ellipsoids with
random shape perturbations (scalp, skull, extra-axial CSF, cortex with folds, white
matter, lateral ventricles, deep grey matter, medial temporal "hippocampi").

Ground-truth effects (all deterministic given ``seed``):

- age: the brain shrinks inside a fixed skull (wider extra-axial CSF), the cortex
  thins, sulci widen, the ventricles grow, the hippocampi shrink slightly;
- sex: head (and brain) size, males about 7% larger in each dimension;
- disease (``disease`` column, 0/1): accelerated ageing of the whole pattern
  (``disease_years`` extra years of atrophy) plus its own regional atrophy of the
  hippocampi and enlarged temporal horns;
- site: tissue contrast, intensity scale (scanner units), smooth bias field, noise and
  blur; parameters depend only on the site id, so the same site looks the same in every
  cohort, and a site id absent from the training cohort is an unseen scanner.

Volumes are generated in RAS+ orientation on a grid covering ``fov_mm`` (default
192 mm, so ``shape=(48, 48, 48)`` gives 4 mm voxels).

Example::

    from kerasbrain.datasets.synthetic import make_cohort
    volumes, table = make_cohort(200, shape=(40, 40, 40), sites=3, seed=0)
    table = make_cohort(20, sites=[7], seed=1, out_dir="small", orientation="PSR")
"""

import os

import numpy as np
import pandas as pd

from kerasbrain.files import atomic_write, write_text

#: T1-like tissue intensities (relative to white matter) before site effects.
TISSUES = {"wm": 1.0, "gm": 0.62, "deep_gm": 0.78, "csf": 0.18, "skull": 0.08, "scalp": 0.85}

_BRAIN_RADII = np.array([64.0, 80.0, 58.0])  # mm, x (L-R), y (P-A), z (I-S) at size 1
_BRAIN_CENTRE = np.array([0.0, 0.0, 8.0])


def site_parameters(site):
    """Scanner properties of a site id (deterministic in the id).

    Returns:
        dict with ``gm``, ``csf``, ``deep_gm`` (contrast relative to white matter),
        ``scale`` (intensity units of white matter), ``bias`` (bias-field strength),
        ``noise`` (noise SD relative to white matter), ``blur`` (Gaussian sigma, mm).
    """
    rng = np.random.default_rng([20240917, int(site)])
    return {
        "gm": float(rng.uniform(0.52, 0.72)),
        "csf": float(rng.uniform(0.10, 0.30)),
        "deep_gm": float(rng.uniform(0.70, 0.86)),
        "scale": float(rng.choice([1.0, 3.0, 100.0, 400.0]) * rng.uniform(0.8, 1.25)),
        "bias": float(rng.uniform(0.05, 0.3)),
        "noise": float(rng.uniform(0.01, 0.06)),
        "blur": float(rng.uniform(0.0, 3.0)),
    }


def make_cohort(
    n,
    shape=(48, 48, 48),
    sites=3,
    seed=0,
    *,
    age_range=(20.0, 90.0),
    disease_prevalence=0.3,
    disease_years=20.0,
    fov_mm=192.0,
    out_dir=None,
    orientation="RAS",
    id_prefix="sub-",
    dtype="float32",
    batch_size=32,
):
    """Generate a synthetic multi-site cohort of T1-like head volumes.

    Args:
        n: number of subjects.
        shape: grid ``(x, y, z)`` in voxels.
        sites: number of sites (ids ``0 .. sites-1``) or a sequence of site ids;
            subjects are spread evenly over them.
        seed: random seed; the same arguments give the same volumes and table.
        age_range: ``(low, high)`` years; ages are uniform over it.
        disease_prevalence: probability that a subject has the disease.
        disease_years: extra years of age-like atrophy that the disease adds.
        fov_mm: field of view per axis in mm (a number or 3 numbers); voxel size is
            ``fov_mm / shape``.
        out_dir: if given, write ``<out_dir>/<participant_id>_T1w.nii.gz`` files and a
            BIDS-style ``participants.tsv`` (with a ``path`` column relative to
            ``out_dir``) and return only the table.
        orientation: axis codes of the stored NIfTI files, e.g. ``"RAS"`` or ``"PSR"``
            (the arrays returned in memory are always RAS+).
        id_prefix: prefix of the participant ids.
        dtype: dtype of the volumes.
        batch_size: subjects generated at once (memory vs speed).

    Returns:
        ``(volumes, table)``: volumes ``(n, x, y, z)`` in RAS+ and a ``pandas.DataFrame``
        with columns participant_id, age (years), sex ("F"/"M"), site (int), disease
        (0/1), head_size (scale factor), brain_volume_ml, ventricle_volume_ml,
        hippocampus_volume_ml (ground truth, from the partial-volume maps);
        with ``out_dir``: the table only, with a ``path`` column.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"make_cohort: n must be at least 1, got {n}.")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"make_cohort: shape must be 3 sizes of at least 8, got {shape}.")
    site_ids = list(range(sites)) if np.isscalar(sites) else [int(s) for s in sites]
    if not site_ids:
        raise ValueError("make_cohort: sites must name at least one site.")
    fov = np.broadcast_to(np.asarray(fov_mm, dtype=float), (3,))
    spacing = fov / np.asarray(shape)

    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "participant_id": [f"{id_prefix}{i:04d}" for i in range(n)],
            "age": np.round(rng.uniform(*age_range, size=n), 1),
            "sex": np.where(rng.random(n) < 0.5, "F", "M"),
            "site": np.asarray(site_ids)[np.arange(n) % len(site_ids)],
            "disease": (rng.random(n) < disease_prevalence).astype(int),
        }
    )
    male = (table["sex"] == "M").to_numpy()
    table["head_size"] = np.round(np.where(male, 1.035, 0.965) + rng.normal(0, 0.02, n), 4)
    subject_seeds = rng.integers(0, 2**31, size=n)

    volumes = np.empty((n, *shape), dtype=dtype)
    measures = np.empty((n, 3))
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        vol, meas = _render(table.iloc[start:stop], subject_seeds[start:stop], shape, spacing,
                            disease_years)
        volumes[start:stop] = vol
        measures[start:stop] = meas
    voxel_ml = float(np.prod(spacing)) / 1000.0
    for j, name in enumerate(["brain_volume_ml", "ventricle_volume_ml", "hippocampus_volume_ml"]):
        table[name] = np.round(measures[:, j] * voxel_ml, 2)

    if out_dir is None:
        return volumes, table
    return write_cohort(volumes, table, out_dir, spacing=spacing, orientation=orientation)


def write_cohort(volumes, table, out_dir, spacing=(4.0, 4.0, 4.0), orientation="RAS"):
    """Write RAS+ volumes as NIfTI files in ``orientation`` plus ``participants.tsv``.

    Files are written under temporary names and renamed when complete.

    Returns:
        The table with a ``path`` column (relative to ``out_dir``).
    """
    import nibabel as nib

    os.makedirs(out_dir, exist_ok=True)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    target = nib.orientations.axcodes2ornt(tuple(orientation.upper()))
    transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), target)
    table = table.copy()
    paths = []
    for volume, pid in zip(volumes, table["participant_id"], strict=True):
        shape = np.asarray(volume.shape)
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = -spacing * (shape - 1) / 2.0  # world origin at the grid centre
        image = nib.Nifti1Image(np.asarray(volume, dtype="float32"), affine)
        image = image.as_reoriented(transform)
        image.set_qform(image.affine, code=1)
        image.set_sform(image.affine, code=1)
        name = f"{pid}_T1w.nii.gz"
        _atomic_save(image, os.path.join(out_dir, name))
        paths.append(name)
    table["path"] = paths
    tsv = os.path.join(out_dir, "participants.tsv")
    write_text(tsv, table.to_csv(sep="\t", index=False, na_rep="n/a"))
    return table


def _atomic_save(image, path):
    import nibabel as nib

    with atomic_write(path) as tmp:
        nib.save(image, tmp)


# ---------------------------------------------------------------------------------------
# Rendering: partial-volume tissue maps from signed distances, then site effects.


def _ramp(d, width):
    """Fraction of a voxel inside a surface at signed distance ``d`` (negative = inside)."""
    return np.clip(0.5 - d / width, 0.0, 1.0)


def _ellipsoid_distance(p, centre, radii):
    """Approximate signed distance (mm) to an ellipsoid.

    ``p`` is a tuple of 3 coordinate arrays (mm); ``radii`` 3 numbers or arrays that
    broadcast against them.
    """
    q2 = sum(((c - c0) / r) ** 2 for c, c0, r in zip(p, centre, radii, strict=True))
    return (np.sqrt(q2) - 1.0) * np.minimum(np.minimum(radii[0], radii[1]), radii[2])


def _col(values):
    """Per-subject values as a float32 ``(n, 1, 1, 1)`` column for broadcasting."""
    return np.asarray(values, dtype="float32").reshape(-1, 1, 1, 1)


def _render(table, seeds, shape, spacing, disease_years):
    n = len(table)
    grid = [((np.arange(s) - (s - 1) / 2.0) * sp).astype("float32")
            for s, sp in zip(shape, spacing, strict=True)]
    xyz = np.meshgrid(*grid, indexing="ij", sparse=True)  # RAS mm
    width = float(np.mean(spacing))

    rngs = [np.random.default_rng(int(s)) for s in seeds]
    age = table["age"].to_numpy(float)
    disease = table["disease"].to_numpy(float)
    size = _col(table["head_size"])
    dis = _col(disease)
    a = _col((np.clip(age + disease_years * disease, 18.0, None) - 20.0) / 70.0)  # 0: 20 y, 1: 90 y

    # Per-subject pose: small rotation and shift, applied to the coordinates.
    rot = _rotations(np.array([r.normal(0, 0.05, 3) for r in rngs]))  # (n, 3, 3)
    shift = np.array([r.normal(0, 3.0, 3) for r in rngs])
    pts = tuple(
        sum(_col(rot[:, i, j]) * xyz[j] for j in range(3)) - _col(shift[:, i]) for i in range(3)
    )

    # Brain outline with a low-frequency shape perturbation.
    q = [(c - c0) / (r0 * size) for c, c0, r0 in zip(pts, _BRAIN_CENTRE, _BRAIN_RADII, strict=True)]
    r = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2) + 1e-6
    theta = np.arctan2(q[1], q[0])
    phi = np.arccos(np.clip(q[2] / r, -1.0, 1.0))
    del q

    def per_subject(draw):
        return _col([draw(rg) for rg in rngs])

    wobble = 0.0
    for k, (m1, m2) in enumerate([(2, 1), (3, 2), (1, 3)]):
        amp = per_subject(lambda rg: rg.normal(0, 0.015))
        ph = per_subject(lambda rg: rg.uniform(0, 2 * np.pi))
        wobble = wobble + amp * np.cos(m1 * theta + ph) * np.sin(m2 * phi + k)
    # Distance from the (young) brain surface in mm, negative inside.
    depth = (r * (1.0 + wobble) - 1.0) * (float(np.mean(_BRAIN_RADII)) * size)
    del r, wobble

    shrink = 1.0 + 5.5 * a  # mm the brain surface retreats from the skull
    thickness = 7.0 - 2.5 * a  # cortical thickness, mm
    skull_in, skull_out, scalp_out = 3.0, 9.0, 15.0
    head = _ramp(depth - scalp_out, width)
    inside_skull_out = _ramp(depth - skull_out, width)
    inside_skull_in = _ramp(depth - skull_in, width)
    brain = _ramp(depth + shrink, width)
    wm = _ramp(depth + shrink + thickness, width)
    del depth

    # Sulci: CSF-filled grooves along the zero set of a per-subject folding pattern,
    # widening with age.
    fold = 0.0
    for m1, m2 in [(5, 4), (7, 3), (4, 7)]:
        ph1 = per_subject(lambda rg: rg.uniform(0, 2 * np.pi))
        ph2 = per_subject(lambda rg: rg.uniform(0, 2 * np.pi))
        fold = fold + np.sin(m1 * theta + ph1) * np.sin(m2 * phi + ph2)
    del theta, phi
    sulcus = np.clip(1.0 - np.abs(fold) / (0.18 + 0.45 * a), 0.0, 1.0)
    cortex = np.clip(brain - wm, 0.0, 1.0)
    sulcal_csf = cortex * sulcus
    gm = cortex - sulcal_csf
    del fold, sulcus

    # Lateral ventricles grow with atrophy; the disease enlarges the temporal horns.
    vscale = (0.55 + 1.1 * a) * size
    hscale = (0.4 + 0.5 * a + 0.6 * dis) * size
    hsize = (1.0 - 0.12 * a - 0.30 * dis) * size
    ventricles = deep = hippo = 0.0
    for side in (-1.0, 1.0):
        d = _ellipsoid_distance(pts, (side * 9.0, 2.0, 18.0), (6.0 * vscale, 22.0 * vscale, 9.0 * vscale))
        ventricles = np.maximum(ventricles, _ramp(d, width))
        d = _ellipsoid_distance(pts, (side * 27.0, -8.0, -10.0), (4.0 * hscale, 12.0 * hscale, 4.0 * hscale))
        ventricles = np.maximum(ventricles, _ramp(d, width))
        d = _ellipsoid_distance(pts, (side * 14.0, -6.0, 8.0), (9.0 * size, 13.0 * size, 9.0 * size))
        deep = np.maximum(deep, _ramp(d, width))
        d = _ellipsoid_distance(pts, (side * 24.0, -4.0, -14.0), (6.0 * hsize, 17.0 * hsize, 6.0 * hsize))
        hippo = np.maximum(hippo, _ramp(d, width))
    ventricles = ventricles * wm
    deep = deep * wm * (1.0 - ventricles)
    hippo = hippo * brain * (1.0 - ventricles)

    wm_only = np.clip(wm - ventricles - deep - hippo, 0.0, None)
    gm_total = gm + hippo
    csf = np.clip(inside_skull_in - brain, 0.0, None) + sulcal_csf + ventricles
    skull = np.clip(inside_skull_out - inside_skull_in, 0.0, None)
    scalp = np.clip(head - inside_skull_out, 0.0, None)

    measures = np.stack(
        [(wm + gm - ventricles).sum(axis=(1, 2, 3)),
         ventricles.sum(axis=(1, 2, 3)),
         hippo.sum(axis=(1, 2, 3))], axis=-1)

    volumes = np.empty((n, *shape), dtype="float32")
    for site in np.unique(table["site"]):
        idx = np.flatnonzero(table["site"].to_numpy() == site)
        p = site_parameters(site)
        img = (wm_only[idx] * TISSUES["wm"] + gm_total[idx] * p["gm"]
               + deep[idx] * p["deep_gm"] + csf[idx] * p["csf"]
               + skull[idx] * TISSUES["skull"] + scalp[idx] * TISSUES["scalp"])
        img = _blur(img, p["blur"] / spacing)
        img = img * _bias_field(xyz, p["bias"], [rngs[i] for i in idx])
        noise = np.stack([rngs[i].standard_normal(shape, dtype="float32") for i in idx])
        img = np.abs(img + p["noise"] * noise)  # magnitude images: Rician-like floor
        volumes[idx] = img * p["scale"]
    return volumes, measures


def _rotations(angles):
    """Rotation matrices ``(n, 3, 3)`` from small angles about x, y, z (radians)."""
    cx, cy, cz = np.cos(angles).T
    sx, sy, sz = np.sin(angles).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def _bias_field(xyz, strength, rngs):
    """Smooth multiplicative fields ``exp(linear + quadratic)`` with random directions."""
    fields = []
    for rng in rngs:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        u = sum(float(w) * c for w, c in zip(direction, xyz, strict=True)) / 100.0
        fields.append(np.exp(strength * (u + 0.5 * rng.normal() * u * u)))
    return np.stack(fields).astype("float32")


def _blur(volumes, sigma_vox):
    """Gaussian blur of ``(n, x, y, z)`` volumes via the FFT (``sigma_vox`` per axis)."""
    sigma_vox = np.asarray(sigma_vox, dtype=float)
    if np.all(sigma_vox < 0.1):
        return volumes
    shape = volumes.shape[1:]
    transfer = np.ones(1)
    for axis, (size, s) in enumerate(zip(shape, sigma_vox, strict=True)):
        freq = np.fft.rfftfreq(size) if axis == 2 else np.fft.fftfreq(size)
        g = np.exp(-2.0 * (np.pi * freq * s) ** 2)
        transfer = np.multiply.outer(transfer, g) if axis else g
    spectrum = np.fft.rfftn(volumes, axes=(1, 2, 3)) * transfer
    return np.fft.irfftn(spectrum, s=shape, axes=(1, 2, 3)).astype("float32")
