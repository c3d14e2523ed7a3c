"""From a raw T1-weighted head to a published model's input: `prepare`.

    import kerasbrain as kb
    x = kb.data.prepare("sub-01_T1w.nii.gz", weights="ukb")       # (160, 192, 160) float32
    x, details = kb.data.prepare("sub-01_T1w.nii.gz", weights="ukb", return_details=True)
    details["tiv_cm3"], details["dice"], details["transform"].save("sub-01.json")

Steps: `extract_brain` (deepbet in Keras) -> `register` (affine to MNI152, SimpleITK)
-> the weight set's grid -> ``Preprocessor.for_weights(weights)``.
"""

import warnings

import numpy as np

from kerasbrain.data.io import Volume, VolumeError, load_volume

#: registered-mask Dice with the template mask below which a scan is flagged
MIN_DICE = 0.9
#: usual total intracranial volume of adults (cm^3); outside is flagged
TIV_RANGE = (1000.0, 2000.0)
#: correlation with the T1 template below which the contrast is reported as not T1-like
MIN_T1_CORRELATION = 0.1


class ContrastWarning(UserWarning):
    """The registered brain does not correlate with the T1 template like a T1 does."""


def template_correlation(registered, grid="ukb"):
    """Pearson correlation of a registered brain with the MNI152 T1 template in its mask.

    Real T1-weighted brains give about 0.3-0.6 (scanner contrast differs from the template's);
    T2-weighted and other contrasts give about zero or below.
    """
    from kerasbrain.data.registration import template_on_grid
    from kerasbrain.data.template import MASK_THRESHOLD

    template = template_on_grid(grid)
    inside = template.array > MASK_THRESHOLD
    a = np.asarray(registered.array, "float64")[inside]
    b = np.asarray(template.array, "float64")[inside]
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def prepare(path, weights="ukb", return_details=False):
    """Raw T1 head -> the input array of the ``weights`` model.

    Args:
        path: a 3D T1-weighted head (path or `Volume`), any orientation and voxel size.
        weights: weight-set or preset name (``"ukb"``, ``"brain-age-2022"``, ...): the
            output grid and the preprocessing (`Preprocessor.for_weights`).
        return_details: also return a dict of the intermediate results.

    Returns:
        The array (x, y, z) that ``Preprocessor.for_weights(weights)`` gives for the
        registered brain; with ``return_details``, ``(array, details)`` where details
        holds ``brain`` and ``mask`` (`Volume` on the native grid), ``registered`` and
        ``registered_mask`` (`Volume` on the weight set's grid), ``transform``
        (`AffineTransform`), ``tiv_cm3``, ``dice`` (registered mask vs template mask)
        and ``template_correlation``.

    Raises:
        VolumeError: not a 3D image, or no head in it (the message names the file).

    Warns:
        ContrastWarning: the brain correlates with the T1 template less than
        ``MIN_T1_CORRELATION`` (T2, FLAIR, ... or a failed registration).
    """
    from kerasbrain.data.brain import extract_brain
    from kerasbrain.data.preprocess import Preprocessor
    from kerasbrain.data.registration import apply_transform, register, registration_overlap

    volume = path if isinstance(path, Volume) else load_volume(path, check=False)
    where = volume.path or "volume"
    preprocessor = Preprocessor.for_weights(weights)
    brain, mask, tiv = extract_brain(volume)
    registered, transform = register(brain, grid=weights)
    registered_mask = apply_transform(mask, transform, grid=weights, order=1)
    registered_mask = Volume((registered_mask.array > 0.5).astype("uint8"),
                             registered_mask.affine, where)
    correlation = template_correlation(registered, grid=weights)
    if correlation < MIN_T1_CORRELATION:
        warnings.warn(f"{where}: correlation with the MNI152 T1 template is {correlation:.2f} "
                      f"(T1-weighted brains: about 0.3-0.6): not a T1-weighted scan, or the "
                      "registration failed", ContrastWarning, stacklevel=2)
    try:
        array = preprocessor(registered)
    except VolumeError as error:
        raise VolumeError(f"{where}: {error}") from None
    if not return_details:
        return array
    return array, {
        "brain": brain, "mask": mask, "tiv_cm3": tiv, "transform": transform,
        "registered": registered, "registered_mask": registered_mask,
        "dice": registration_overlap(registered_mask, grid=weights),
        "template_correlation": correlation,
    }


def flags(tiv_cm3, dice, correlation):
    """Reasons a prepared scan needs a look (empty list: within the usual ranges)."""
    reasons = []
    if dice < MIN_DICE:
        reasons.append(f"registration overlap {dice:.3f} < {MIN_DICE}")
    if not TIV_RANGE[0] <= tiv_cm3 <= TIV_RANGE[1]:
        reasons.append(f"TIV {tiv_cm3:.0f} cm3 outside {TIV_RANGE[0]:.0f}-{TIV_RANGE[1]:.0f}")
    if correlation < MIN_T1_CORRELATION:
        reasons.append(f"T1 template correlation {correlation:.2f} < {MIN_T1_CORRELATION}")
    return reasons
