"""The registry of published pretrained weights: where each file lives, how to verify it,
what it was trained for, its license, and the architecture it needs.

Every entry keeps its own license; non-commercial weights (CC BY-NC 4.0) are downloaded by
the user from the authors' source and never redistributed by kerasbrain.
"""

import dataclasses

PENG_COMMIT = "4e56dc1522ac89caadc5c6fc779799ee58c23adc"
PENG_RAW = f"https://raw.githubusercontent.com/ha-ha-ha-han/UKBiobank_deep_pretrain/{PENG_COMMIT}"
PYMENT_BLOB = "https://api.github.com/repos/estenhl/pyment-public/git/blobs/{sha}"
GITHUB_RAW_HEADERS = (("Accept", "application/vnd.github.raw"),)

PENG_CITATION = (
    "Peng H, Gong W, Beckmann CF, Vedaldi A, Smith SM. Accurate brain age prediction with "
    "lightweight deep neural networks. Medical Image Analysis 68:101871 (2021). "
    "doi:10.1016/j.media.2020.101871"
)
PYMENT_2022_CITATION = (
    "Leonardsen EH, Peng H, Kaufmann T, et al. Deep neural networks learn general and "
    "clinically relevant representations of the ageing brain. NeuroImage 256:119210 (2022). "
    "doi:10.1016/j.neuroimage.2022.119210"
)
PYMENT_2024_CITATION = (
    "Leonardsen EH, Persson K, Grødem E, et al. Constructing personalized characterizations "
    "of structural brain aberrations in patients with dementia using explainable artificial "
    "intelligence. npj Digital Medicine 7:110 (2024). doi:10.1038/s41746-024-01123-7"
)


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file of a weight set.

    Attributes:
        filename: name in the cache folder.
        url: where to download it.
        git_blob_sha1: published hash, ``sha1(b"blob %d\\0" % len(data) + data)``.
        sha256: alternative hash where the source publishes no git blob.
        headers: HTTP headers the source needs (e.g. GitHub's raw media type).
    """

    filename: str
    url: str
    git_blob_sha1: str | None = None
    sha256: str | None = None
    headers: tuple = ()


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """A published weight set for one architecture.

    Attributes:
        name: registry name, e.g. ``"ukb"``; ``variant`` distinguishes heads or folds
            (full key ``"brain-age-2022:ranking"``).
        architecture: the kerasbrain constructor family, e.g. ``"sfcn"``.
        files: the files to download (``FileSpec``).
        format: checkpoint format the converter reads (``"peng-torch"``, ``"pyment-h5"``...).
        trained_for: the target, in words and units.
        license, citation, source: provenance, shown wherever the entry is listed.
        training_size: number of scans used for training.
        reported_error: the authors' reported test error.
        preprocessing: preset name of ``kerasbrain.data.Preprocessor.for_weights``.
        config: constructor settings the weights need (head, classes, filters,
            bn_epsilon, input_shape, bin_range, output_range, pooling, fixed_shape).
    """

    name: str
    architecture: str
    files: tuple
    format: str
    trained_for: str
    license: str
    citation: str
    source: str
    training_size: str
    reported_error: str
    preprocessing: str
    config: dict
    variant: str = ""

    @property
    def key(self):
        return f"{self.name}:{self.variant}" if self.variant else self.name

    @property
    def input_shape(self):
        return tuple(self.config["input_shape"])


def _peng(name, path, blob, trained_for, config, reported_error):
    return WeightSpec(
        name=name,
        architecture="sfcn",
        files=(FileSpec(path.rsplit("/", 1)[-1], f"{PENG_RAW}/{path}", git_blob_sha1=blob),),
        format="peng-torch",
        trained_for=trained_for,
        license="MIT",
        citation=PENG_CITATION,
        source="https://github.com/ha-ha-ha-han/UKBiobank_deep_pretrain",
        training_size="12,949 UK Biobank T1 scans",
        reported_error=reported_error,
        preprocessing="peng",
        config={
            "input_shape": (160, 192, 160, 1),
            "fixed_shape": True,
            "bn_epsilon": 1e-5,
            "pooling": "avg",
            "dropout": 0.5,
            **config,
        },
    )


def _pyment(name, variant, blob, citation, trained_for, config, reported_error, training_size):
    filename = f"{name}-{variant}.h5" if variant else f"{name}.h5"
    return WeightSpec(
        name=name,
        variant=variant,
        architecture="sfcn",
        files=(
            FileSpec(
                filename, PYMENT_BLOB.format(sha=blob), git_blob_sha1=blob,
                headers=GITHUB_RAW_HEADERS,
            ),
        ),
        format="pyment-h5",
        trained_for=trained_for,
        license="CC BY-NC 4.0",
        citation=citation,
        source="https://github.com/estenhl/pyment-public",
        training_size=training_size,
        reported_error=reported_error,
        preprocessing="pyment",
        config={
            "input_shape": (167, 212, 160, 1),
            "fixed_shape": True,
            "bn_epsilon": 1e-3,
            "pooling": "avg",
            "dropout": 0.5,
            "filters": (32, 64, 128, 256, 256, 64),
            **config,
        },
    )


_PYMENT_2022_SIZE = "34,285 scans (multi-site, ages 3-95; scans, not participants)"

REGISTRY = {}


def register(spec):
    """Add a ``WeightSpec`` (a later entry with the same key replaces the earlier one)."""
    REGISTRY[spec.key] = spec
    return spec


for _spec in (
    _peng(
        "ukb",
        "brain_age/run_20190719_00_epoch_best_mae.p",
        "3631938002f789a842469132155380fa36de7d4d",
        "brain age in years, 40 one-year bins over 42-82 (soft classification)",
        {"head": "soft_classification", "classes": 40, "bin_range": (42.0, 82.0),
         "filters": (32, 64, 128, 256, 256, 64)},
        "test MAE 2.14 years (UK Biobank)",
    ),
    _peng(
        "ukb-sex",
        "sex_prediction/run_20191008_00_epoch_last.p",
        "ac0d602bb7d56d8fc3e05fb00414c0905bcc1ffb",
        "sex, 2 classes (softmax)",
        {"head": "categorical", "classes": 2, "filters": (28, 58, 128, 256, 256, 64)},
        "test accuracy 99.5% (UK Biobank)",
    ),
    _pyment(
        "brain-age-2022", "regression", "f87a66558433308bb8a5ecfb6aaa784811c5cd45",
        PYMENT_2022_CITATION, "brain age in years, regression clamped to 3-95",
        {"head": "regression", "classes": 1, "output_range": (3.0, 95.0)},
        "external MAE 3.90 years", _PYMENT_2022_SIZE,
    ),
    _pyment(
        "brain-age-2022", "ranking", "5d1bc5fc66327eb905acf81d9956f0391277b078",
        PYMENT_2022_CITATION, "brain age in years, ranking over 91 thresholds (3 + sum)",
        {"head": "ranking", "classes": 91, "output_range": (3.0, 95.0)},
        "external MAE 5.92 years", _PYMENT_2022_SIZE,
    ),
    _pyment(
        "brain-age-2022", "soft", "7b4f7bf4c989b80877b0bc0efe8b5125157788b5",
        PYMENT_2022_CITATION, "brain age in years, soft classification over ages 3-95",
        {"head": "soft_classification", "classes": 93, "bin_range": (2.5, 95.5)},
        "external MAE 5.04 years", _PYMENT_2022_SIZE,
    ),
):
    register(_spec)

for _fold, _blob in enumerate(
    (
        "1f43aafd2461d7e5b4f9ebb6d62e0f2ab363e1b8",
        "a0da6b724f3c1477ae2f461c49a91b7d2f46ac72",
        "cec0eb79f043a3415f5ab13977dfda24e1f7dc30",
        "c885fee44d4839d37d8bcdfd970391788ee85004",
        "35d3b0343b83a9851a140cab7baed2dd36e35185",
    )
):
    register(
        _pyment(
            "dementia-2024", f"fold-{_fold}", _blob, PYMENT_2024_CITATION,
            "dementia vs cognitively healthy, probability (binary)",
            {"head": "binary", "classes": 1},
            "see Leonardsen et al. 2024 (cross-validated AUC per fold)",
            "1,366 scans (dementia patients, mostly probable AD, and controls)",
        )
    )

#: the variant used when a name is given without one
DEFAULT_VARIANTS = {"brain-age-2022": "regression", "dementia-2024": "fold-0"}

#: what ``head=`` selects for names with several heads
HEAD_VARIANTS = {"brain-age-2022": {"regression": "regression", "ranking": "ranking",
                                    "soft_classification": "soft"}}


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
        })
    if print_fn is not None and rows:
        widths = [max(len(title), *(len(str(r[key])) for r in rows)) for title, key in LIST_COLUMNS]
        line = "  ".join(title.ljust(w) for (title, _), w in zip(LIST_COLUMNS, widths, strict=True))
        print_fn(line)
        print_fn("  ".join("-" * w for w in widths))
        for row in rows:
            print_fn("  ".join(str(row[key]).ljust(w) for (_, key), w in zip(LIST_COLUMNS, widths, strict=True)))
    return rows
