"""`Preprocessor`: orientation, spacing, shape and intensity, applied to one volume.

Steps, in order: reorient -> resample -> mask -> clip percentiles -> normalise
intensity -> crop/pad -> cast. Intensity statistics are taken before cropping (as
in the published pipelines, e.g. UK Biobank SFCN divides by the mean of the whole
182x218x182 image).
"""

import numpy as np
from nibabel import orientations as nio

from kerasbrain.data.io import Volume, VolumeError, check_array, load_volume

INTENSITY = (None, "mean", "zscore", "minmax")


def reorient(volume, orientation="RAS"):
    """Permute/flip the array so its axes point to ``orientation`` (e.g. ``"RAS"``).

    No interpolation: voxels move, values do not change. The affine is updated so
    every voxel keeps its world position.
    """
    codes = tuple(orientation.upper())
    if len(codes) != 3 or sorted(nio.axcodes2ornt(codes)[:, 0].astype(int)) != [0, 1, 2]:
        raise ValueError(f"orientation must be three axis codes such as 'RAS', got {orientation!r}")
    current = nio.io_orientation(volume.affine)
    transform = nio.ornt_transform(current, nio.axcodes2ornt(codes))
    array = nio.apply_orientation(volume.array, transform)
    affine = volume.affine @ nio.inv_ornt_aff(transform, volume.array.shape)
    return Volume(np.ascontiguousarray(array), affine, volume.path)


def resample(volume, spacing, order=1):
    """Resample to voxel size ``spacing`` (mm, scalar or 3 values) keeping the field of view.

    Uses ``scipy.ndimage.affine_transform`` (``order=1``: trilinear). Output voxel
    ``j`` samples input coordinate ``(j + 0.5) * new / old - 0.5`` along each axis,
    so the edges of the field of view stay in place.
    """
    from scipy import ndimage

    target = np.broadcast_to(np.asarray(spacing, dtype="float64"), (3,))
    current = np.asarray(volume.spacing)
    if np.allclose(current, target, rtol=1e-4, atol=1e-4):
        return volume
    ratio = target / current
    shape = tuple(max(1, int(round(n / r))) for n, r in zip(volume.shape, ratio, strict=True))
    offset = 0.5 * ratio - 0.5
    array = ndimage.affine_transform(
        volume.array, ratio, offset=offset, output_shape=shape, order=order, mode="nearest"
    )
    step = np.eye(4)
    step[:3, :3] = np.diag(ratio)
    step[:3, 3] = offset
    return Volume(array.astype(volume.array.dtype, copy=False), volume.affine @ step, volume.path)


def bounding_box(array):
    """(start, stop) per axis of the non-zero voxels."""
    box = []
    for axis in range(array.ndim):
        other = tuple(a for a in range(array.ndim) if a != axis)
        nonzero = np.flatnonzero(np.any(array != 0, axis=other))
        box.append((int(nonzero[0]), int(nonzero[-1]) + 1))
    return box


def window(volume, starts, shape, pad_value=0.0):
    """Cut ``volume[starts : starts + shape]``, padding with ``pad_value`` outside the image."""
    out = np.full(shape, pad_value, dtype=volume.array.dtype)
    src, dst = [], []
    for start, size, n in zip(starts, shape, volume.shape, strict=True):
        lo, hi = max(start, 0), min(start + size, n)
        if hi <= lo:
            src.append(slice(0, 0))
            dst.append(slice(0, 0))
        else:
            src.append(slice(lo, hi))
            dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = volume.array[tuple(src)]
    step = np.eye(4)
    step[:3, 3] = starts
    return Volume(out, volume.affine @ step, volume.path)


def normalise(array, intensity, where="volume"):
    """Scale one volume's intensities: ``None`` (unchanged), ``"mean"`` (divide by the
    mean), ``"zscore"`` (zero mean, unit standard deviation over the non-zero voxels;
    background stays 0), ``"minmax"`` (to [0, 1]) or a number to divide by.

    Raises:
        VolumeError: a mean of zero, or a constant image for ``"minmax"`` (names ``where``).
    """
    if intensity is None:
        return array
    if intensity == "mean":
        mean = float(array.mean(dtype="float64"))
        if mean == 0:
            raise VolumeError(f"{where}: mean intensity is zero, cannot divide by it")
        return array / mean
    if intensity == "zscore":
        brain = array[array != 0]
        if brain.size == 0:
            return np.zeros_like(array)
        std = float(brain.std(dtype="float64"))
        return np.where(array != 0, (array - brain.mean(dtype="float64")) / max(std, 1e-8), 0)
    if intensity == "minmax":
        low, high = float(array.min()), float(array.max())
        if high == low:
            raise VolumeError(f"{where}: constant image, cannot scale to [0, 1]")
        return (array - low) / (high - low)
    return array / float(intensity)


class Preprocessor:
    """Turn an image into the array a model expects.

    Args:
        orientation: axis codes of the output (``"RAS"``, nibabel's canonical, ``"LAS"``
            for FSL's MNI152 images, ``"LIA"`` for FreeSurfer/FastSurfer conformed).
        spacing: target voxel size in mm (scalar or 3 values); None keeps the input's.
        shape: output shape (x, y, z); None keeps the shape.
        crop: ``"center"`` (crop/pad around the centre of the image), ``"bbox"``
            (around the centre of the non-zero bounding box; the box must fit in
            ``shape``), or explicit ``((x0, x1), (y0, y1), (z0, z1))`` slices.
        pad_value: value for voxels outside the image: a number or ``"min"``.
        intensity: ``None``, ``"mean"`` (divide by the mean), ``"zscore"`` (over
            non-zero voxels), ``"minmax"`` (to [0, 1]) or a number to divide by.
        clip_percentiles: ``(low, high)`` percentiles of non-zero voxels to clip to.
        input_shape: shape required after reorientation/resampling (e.g. (182, 218, 182)
            for MNI152 1 mm); a different shape raises `VolumeError`.
        order: spline order for resampling (1: trilinear).
        dtype: output dtype.
        requires: text describing what must be done to the image *before*
            (registration, skull stripping); shown in errors and docs.
    """

    def __init__(
        self,
        orientation="RAS",
        spacing=None,
        shape=None,
        crop="center",
        pad_value=0.0,
        intensity=None,
        clip_percentiles=None,
        input_shape=None,
        order=1,
        dtype="float32",
        requires=None,
        name=None,
    ):
        if isinstance(crop, str):
            if crop not in ("center", "bbox"):
                raise ValueError(f"crop must be 'center', 'bbox' or slices, got {crop!r}")
        else:
            crop = tuple((int(a), int(b)) for a, b in crop)
            if len(crop) != 3 or any(b <= a for a, b in crop):
                raise ValueError(f"crop slices must be three (start, stop) pairs, got {crop!r}")
            implied = tuple(b - a for a, b in crop)
            if shape is not None and tuple(shape) != implied:
                raise ValueError(f"shape {tuple(shape)} does not match crop slices {crop}")
            shape = implied
        if not (intensity in INTENSITY or isinstance(intensity, int | float)):
            raise ValueError(f"intensity must be one of {INTENSITY} or a number, got {intensity!r}")
        if not (pad_value == "min" or isinstance(pad_value, int | float)):
            raise ValueError(f"pad_value must be a number or 'min', got {pad_value!r}")
        self.orientation = orientation.upper()
        reorient(Volume(np.zeros((1, 1, 1)), np.eye(4)), self.orientation)  # validates codes
        self.spacing = None if spacing is None else tuple(
            float(s) for s in np.broadcast_to(np.asarray(spacing, dtype="float64"), (3,))
        )
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.crop = crop
        self.pad_value = pad_value
        self.intensity = intensity
        self.clip_percentiles = None if clip_percentiles is None else tuple(clip_percentiles)
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.order = int(order)
        self.dtype = np.dtype(dtype).name
        self.requires = requires
        self.name = name

    @classmethod
    def for_weights(cls, name):
        """The preprocessing a published weight set was trained with (see `PRESETS`)."""
        from kerasbrain.data.presets import get_preset

        return cls(**get_preset(name))

    def get_config(self):
        crop = self.crop if isinstance(self.crop, str) else [list(c) for c in self.crop]
        return {
            "orientation": self.orientation,
            "spacing": None if self.spacing is None else list(self.spacing),
            "shape": None if self.shape is None else list(self.shape),
            "crop": crop,
            "pad_value": self.pad_value,
            "intensity": self.intensity,
            "clip_percentiles": None if self.clip_percentiles is None else list(self.clip_percentiles),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "order": self.order,
            "dtype": self.dtype,
            "requires": self.requires,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"Preprocessor({args})"

    def __call__(self, image, mask=None):
        """Preprocess ``image`` (path or `Volume`); returns the array (x, y, z)."""
        return self.transform(image, mask=mask).array

    def transform(self, image, mask=None):
        """Preprocess ``image`` (path or `Volume`) -> `Volume` with the updated affine.

        ``mask`` (path or `Volume`, same grid as ``image``) multiplies the image first,
        e.g. FastSurfer's ``mask.mgz`` for the ``multi-2025`` preset.
        """
        volume = image if isinstance(image, Volume) else load_volume(image)
        where = volume.path or "volume"
        if mask is not None:
            mask = mask if isinstance(mask, Volume) else load_volume(mask, check=False)
            if mask.shape != volume.shape:
                raise VolumeError(f"{where}: mask shape {mask.shape} != image shape {volume.shape}")
            volume = Volume(volume.array * (mask.array > 0), volume.affine, volume.path)
            check_array(volume.array, where)
        volume = reorient(volume, self.orientation)
        if self.spacing is not None:
            volume = resample(volume, self.spacing, order=self.order)
        if self.input_shape is not None and volume.shape != self.input_shape:
            hint = f" ({self.requires})" if self.requires else ""
            raise VolumeError(
                f"{where}: expected shape {self.input_shape} after reorientation to "
                f"{self.orientation}, got {volume.shape}{hint}"
            )
        array = volume.array.astype("float32", copy=False)
        if self.clip_percentiles is not None:
            low, high = np.percentile(array[array != 0], self.clip_percentiles)
            array = np.clip(array, low, high)
        array = self._normalise(array, where)
        volume = Volume(array, volume.affine, volume.path)
        volume = self._crop(volume, where)
        return Volume(volume.array.astype(self.dtype, copy=False), volume.affine, volume.path)

    def _normalise(self, array, where):
        return normalise(array, self.intensity, where)

    def _crop(self, volume, where):
        if self.shape is None:
            return volume
        pad = float(volume.array.min()) if self.pad_value == "min" else self.pad_value
        if isinstance(self.crop, tuple):
            starts = [a for a, _ in self.crop]
        elif self.crop == "center":
            starts = [(n - s) // 2 for n, s in zip(volume.shape, self.shape, strict=True)]
        else:
            box = bounding_box(volume.array)
            size = tuple(b - a for a, b in box)
            if any(b > s for b, s in zip(size, self.shape, strict=True)):
                raise VolumeError(
                    f"{where}: brain bounding box {size} is larger than the target shape "
                    f"{self.shape}; use a larger shape or crop='center'"
                )
            starts = [(a + b - s) // 2 for (a, b), s in zip(box, self.shape, strict=True)]
        return window(volume, starts, self.shape, pad)
