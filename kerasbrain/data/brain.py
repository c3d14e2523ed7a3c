"""Brain extraction of a raw T1 head with deepbet's two networks, in Keras.

The steps are deepbet 1.0.2's (``deepbet/bet.py``, Fisch et al. 2024), with the same
arithmetic where it decides voxels (nearest-exact indices, bounding box rounding):

1. reorient to the closest canonical (RAS) axes; NaN/Inf count as 0;
2. resize to 128^3 (nearest-exact); ``low``/``high`` = its 0.5 / 99.5 percentiles;
3. normalise (``linknet.preprocess_input``) and run the localiser (``"deepbet-bbox"``);
   keep its largest 26-connected component of brain probability > 0.5 (an image where
   the localiser is unsure, ``MAX_DOUBT``, is no head: an error, not in deepbet);
4. bounding box of the planes whose mean mask value exceeds 0.02, scaled to the full
   image, grown by 10% per side;
5. resize that crop to 256^3 (nearest-exact), normalise with the same ``low``/``high``,
   run the brain network (``"deepbet"``) and resize its brain probability back;
6. threshold 0.5, largest component and filled holes inside the box;
7. TIV = mask voxels x voxel volume / 1000 (cm^3).

Brain and mask are returned on the input's own voxel grid.
"""

import warnings

import numpy as np
from nibabel import orientations as nio

from kerasbrain.data.io import Volume, VolumeError, load_volume

SMALL_SHAPE = (128, 128, 128)
SHAPE = (256, 256, 256)
BBOX_MARGIN = 0.1
#: a plane belongs to the localiser's box when more than this fraction of it is brain
PLANE_FRACTION = 0.02
#: above this mean 4p(1-p) of the localiser's candidate voxels (p > 0.1), the image is no
#: head: measured 0.012-0.015 on the 50 IXI T1 heads (also skull-stripped or with inverted
#: contrast), 0.05-0.07 on noise, smoothed noise and a box phantom
MAX_DOUBT = 0.035
_MODELS = {}


def extract_brain(volume, threshold=0.5, models=None):
    """Skull-strip a T1-weighted head with deepbet's networks (any Keras backend).

    Args:
        volume: a ``Volume`` (``kerasbrain.data.load_volume``) or the path of a 3D image.
        threshold: brain probability above which a voxel is brain.
        models: ``(localiser, brain_network)`` Keras models mapping ``(1, x, y, z, 1)`` to
            ``(1, x, y, z, 2)`` at 128^3 and 256^3; default ``LinkNet3D`` with the
            ``"deepbet-bbox"`` and ``"deepbet"`` weights (built once, then reused).

    Returns:
        ``(brain, mask, tiv_cm3)``: ``brain`` a float32 ``Volume`` (the input inside the
        mask, 0 outside), ``mask`` a uint8 ``Volume`` (1 = brain), both with the input's
        shape and affine; ``tiv_cm3`` the mask volume in cm^3.

    Raises:
        VolumeError: not a 3D image, a constant image, or no head found in it (the
            message names the file). An image that is already skull-stripped works and
            is reported with a ``UserWarning``.
    """
    if not isinstance(volume, Volume):
        volume = load_volume(volume, check=False)
    where = volume.path or "volume"
    if volume.array.ndim != 3:
        raise VolumeError(f"{where}: expected a 3D image, got shape {volume.array.shape}")
    array = np.asarray(volume.array, dtype="float32")
    bad = ~np.isfinite(array)
    if bad.any():
        warnings.warn(f"{where}: {int(bad.sum())} voxels are NaN or Inf; they count as 0.",
                      stacklevel=2)
        array = np.where(bad, np.float32(0), array)
    localiser, network = models if models is not None else default_models()
    to_ras, from_ras = _orientations(volume.affine)
    canonical = nio.apply_orientation(array, to_ras)
    probability, box = brain_probability(canonical, localiser, network, where)
    mask = probability > threshold
    if not mask[box].any():
        raise VolumeError(f"{where}: no brain found (no voxel of brain probability above "
                          f"{threshold}); is this a T1-weighted head?")
    mask[box] = fill_holes(largest_component(mask[box]))
    _warn_if_stripped(canonical, mask, where)
    mask = np.ascontiguousarray(nio.apply_orientation(mask, from_ras))
    tiv = float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0
    brain = np.where(mask, array, np.float32(0)).astype("float32")
    affine = np.array(volume.affine, dtype="float64")
    return (Volume(brain, affine, volume.path), Volume(mask.astype("uint8"), affine.copy(),
                                                       volume.path), tiv)


def default_models():
    """``(localiser, brain_network)``: ``LinkNet3D`` with deepbet's weights, built once."""
    import keras

    from kerasbrain.applications.linknet import LinkNet3D

    key = keras.backend.backend()
    if key not in _MODELS:
        _MODELS[key] = (LinkNet3D(weights="deepbet-bbox", input_shape=(*SMALL_SHAPE, 1),
                                  name="deepbet_bbox"),
                        LinkNet3D(weights="deepbet", input_shape=(*SHAPE, 1), name="deepbet"))
    return _MODELS[key]


def brain_probability(canonical, localiser, network, where="volume"):
    """deepbet's ``run_model``: the brain probability of a canonical (RAS) array.

    Returns:
        ``(probability, box)``: float32 array of ``canonical``'s shape (0 outside the box)
        and the box, a tuple of 3 slices.
    """
    from kerasbrain.applications.linknet import preprocess_input

    small = resize_nearest(canonical, SMALL_SHAPE)
    low, high = np.quantile(small, (0.005, 0.995))
    if not high > low:
        raise VolumeError(f"{where}: the image is (nearly) constant: no head in it.")
    small_probability = _predict(localiser, preprocess_input(small, low=low, high=high))
    small_mask = small_probability > 0.5
    if not small_mask.any():
        raise VolumeError(f"{where}: no head found: the localiser marks no brain voxel.")
    candidates = small_probability[small_probability > 0.1]
    doubt = float(np.mean(4 * candidates * (1 - candidates)))
    if doubt > MAX_DOUBT:
        raise VolumeError(
            f"{where}: no head found: the localiser is unsure of its brain voxels (mean "
            f"4p(1-p) {doubt:.3f} where p > 0.1; T1 heads, skull-stripped or not, give "
            f"0.012-0.015, noise and phantoms 0.05-0.07)."
        )
    try:
        box = bounding_box(largest_component(small_mask), canonical.shape, BBOX_MARGIN)
    except ValueError as error:
        raise VolumeError(f"{where}: no head found: {error}.") from None
    crop = resize_nearest(canonical[box], SHAPE)
    brain = _predict(network, preprocess_input(crop, low=low, high=high))
    probability = np.zeros(canonical.shape, dtype="float32")
    probability[box] = resize_nearest(brain, canonical[box].shape)
    return probability, box


def _predict(model, x):
    out = model.predict(x[None, ..., None], verbose=0)
    return np.asarray(out[0, ..., 1], dtype="float32")


def _orientations(affine):
    """(to RAS, back from RAS) orientation transforms (nibabel's closest canonical)."""
    current = nio.io_orientation(affine)
    ras = nio.axcodes2ornt("RAS")
    return nio.ornt_transform(current, ras), nio.ornt_transform(ras, current)


def nearest_exact_indices(size_in, size_out):
    """Source index of each output voxel in PyTorch's ``mode="nearest-exact"``:
    ``min(floor(float32((j + 0.5) * float32(size_in / size_out))), size_in - 1)``."""
    scale = np.float32(size_in) / np.float32(size_out)
    product = ((np.arange(size_out, dtype="float64") + 0.5) * np.float64(scale))
    index = np.floor(product.astype("float32")).astype("int64")
    return np.minimum(index, size_in - 1)


def resize_nearest(array, shape):
    """Resize a 3D array to ``shape`` by nearest-exact sampling (no interpolation)."""
    index = [nearest_exact_indices(n, m) for n, m in zip(array.shape, shape, strict=True)]
    return array[np.ix_(*index)]


def largest_component(mask):
    """The largest 26-connected component of a boolean array (all False if empty)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask):
    """Fill the background regions of a 3D mask that do not touch its border."""
    from scipy import ndimage

    return ndimage.binary_fill_holes(mask)


def bounding_box(small_mask, shape, margin=BBOX_MARGIN):
    """deepbet's box: planes of ``small_mask`` more than 2% brain, scaled to ``shape``,
    ``margin`` added per side (float32 arithmetic, rounding half to even).

    Returns:
        a tuple of 3 slices into an array of ``shape``.
    """
    centre, size = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        planes = np.flatnonzero(small_mask.mean(axis=others) > PLANE_FRACTION)
        if planes.size == 0:
            raise ValueError("too little brain in the localiser's mask for a bounding box")
        centre.append((planes.max() + 1 + planes.min()) / 2)
        size.append(planes.max() + 1 - planes.min())
    scale = np.asarray(shape, "float32") / np.asarray(small_mask.shape, "float32")
    centre = np.round(scale * np.asarray(centre, "float32"))
    size = np.round(np.float32(1 + 2 * np.float32(margin)) * (scale * np.asarray(size, "float32")))
    return tuple(
        slice(max(0, int(c - s / 2)), min(n, int(c + s / 2)))
        for c, s, n in zip(centre, size, shape, strict=True)
    )


def _warn_if_stripped(canonical, mask, where):
    """Say so when the head around the mask is already (nearly) all zero."""
    from scipy import ndimage

    shell = ndimage.binary_dilation(mask, iterations=3) & ~mask
    if not shell.any():
        return
    reference = np.median(canonical[mask]) if mask.any() else 0.0
    if np.mean(np.abs(canonical[shell]) <= 0.01 * abs(reference)) > 0.9:
        warnings.warn(f"{where}: looks already skull-stripped (the voxels around the brain "
                      "are empty); the mask is deepbet's on this brain.", stacklevel=3)

