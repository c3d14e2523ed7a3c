"""The registry of published pretrained weights: look a weight set up by name, list them,
register more. The entries themselves are in `kerasbrain.weights.presets`.
"""

from kerasbrain.weights.presets import (  # noqa: F401  (names of the registry's API)
    DEFAULT_VARIANTS,
    GITHUB_RAW_HEADERS,
    HEAD_VARIANTS,
    MULTITASK_OUTPUTS,
    MULTITASK_TASKS,
    PUBLISHED,
)
from kerasbrain.weights.spec import FileSpec, WeightSpec

__all__ = ["REGISTRY", "FileSpec", "WeightSpec", "get_spec", "list_weights", "register"]

REGISTRY = {}


def register(spec):
    """Add a ``WeightSpec`` (a later entry with the same key replaces the earlier one)."""
    REGISTRY[spec.key] = spec
    return spec


for _spec in PUBLISHED:
    register(_spec)


def get_spec(weights, architecture=None, head=None):
    """The ``WeightSpec`` for a registry name (``"name"`` or ``"name:variant"``).

    Args:
        weights: registry key.
        architecture: if given, the entry must be for this family.
        head: for names with several heads (``brain-age-2022``), picks the variant.

    Raises:
        ValueError: unknown name (the message lists the known ones) or a name that
            belongs to another architecture.
    """
    if isinstance(weights, WeightSpec):
        return weights
    key = str(weights)
    if ":" not in key and key in HEAD_VARIANTS and head in HEAD_VARIANTS[key]:
        key = f"{key}:{HEAD_VARIANTS[key][head]}"
    elif ":" not in key and key in DEFAULT_VARIANTS:
        key = f"{key}:{DEFAULT_VARIANTS[key]}"
    if key not in REGISTRY and ":" not in key and architecture is not None:
        for spec in REGISTRY.values():
            if spec.name == key and spec.architecture == architecture:
                key = spec.key
                break
        else:
            families = sorted(s.architecture for s in REGISTRY.values() if s.name == key)
            if families:
                raise ValueError(
                    f"Weights {weights!r} exist for {', '.join(families)}, not {architecture!r}."
                )
    if key not in REGISTRY:
        known = sorted({s.name for s in REGISTRY.values()} | set(REGISTRY))
        raise ValueError(
            f"Unknown weights {weights!r}. Known: {', '.join(known)}; or pass None or the "
            "path to a weights file."
        )
    spec = REGISTRY[key]
    if architecture is not None and spec.architecture != architecture:
        raise ValueError(
            f"Weights {weights!r} are for {spec.architecture!r}, not {architecture!r}."
        )
    return spec


LIST_COLUMNS = (
    ("name", "name"),
    ("architecture", "architecture"),
    ("trained for", "trained_for"),
    ("license", "license"),
    ("reported error", "reported_error"),
    ("input shape", "input_shape"),
    ("verified by", "verification"),
)


def list_weights(architecture=None, print_fn=print):
    """Print the registry as a table and return its rows.

    Args:
        architecture: only entries for this family (e.g. ``"sfcn"``).
        print_fn: where the table goes (``None`` prints nothing).

    Returns:
        list of dicts with keys ``name`` (full key, ``name:variant``), ``architecture``,
        ``trained_for``, ``license``, ``reported_error``, ``input_shape``, ``citation``,
        ``source``, ``training_size``.
    """
    rows = []
    for spec in REGISTRY.values():
        if architecture is not None and spec.architecture != architecture:
            continue
        rows.append({
            "name": spec.key,
            "architecture": spec.architecture,
            "trained_for": spec.trained_for,
            "license": spec.license,
            "reported_error": spec.reported_error,
            "input_shape": "x".join(str(n) for n in spec.input_shape[:3]),
            "citation": spec.citation,
            "source": spec.source,
            "training_size": spec.training_size,
            "verification": spec.verification,
        })
    if print_fn is not None and rows:
        widths = [max(len(title), *(len(str(r[key])) for r in rows)) for title, key in LIST_COLUMNS]
        line = "  ".join(title.ljust(w) for (title, _), w in zip(LIST_COLUMNS, widths, strict=True))
        print_fn(line)
        print_fn("  ".join("-" * w for w in widths))
        for row in rows:
            print_fn("  ".join(str(row[key]).ljust(w) for (_, key), w in zip(LIST_COLUMNS, widths, strict=True)))
    return rows
