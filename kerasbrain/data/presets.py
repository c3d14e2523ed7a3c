"""Preprocessing presets: what each published weight set was trained on.

The presets live with the weight sets they belong to (`kerasbrain.weights.presets`): a
preset name (``"ukb"``, ``"brain-age-2022"``, ``"multi-2025"``, ``"synthba"``,
``"medicalnet"``) or any weight-registry name gives the `Preprocessor` arguments and
``requires``, what must be done to the image *before*; `kerasbrain.data.prepare` does it
from a raw T1 head (brain extraction and affine registration to MNI152).
"""

import copy

from kerasbrain.weights.presets import PREPROCESSING as PRESETS

__all__ = ["PRESETS", "get_preset", "list_presets"]


def get_preset(name):
    """Preprocessor keyword arguments for a preset or weight-registry name."""
    from kerasbrain.weights import registry

    if name in PRESETS:
        return copy.deepcopy(PRESETS[name])
    try:
        spec = registry.get_spec(name)
    except ValueError:
        raise ValueError(f"unknown preprocessing preset {name!r}; known: "
                         f"{', '.join(list_presets())}") from None
    return copy.deepcopy(spec.preprocessing)


def list_presets():
    """Names accepted by `Preprocessor.for_weights`: presets and weight-registry names."""
    from kerasbrain.weights import registry

    return sorted({*PRESETS, *(spec.name for spec in registry.REGISTRY.values())})
