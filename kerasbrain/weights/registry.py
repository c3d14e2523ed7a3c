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
        member: for a file published inside an archive (a wheel): its path there; ``url``
            is then the archive's and ``archive_sha256`` its published SHA-256.
        package: the pip requirement whose installed files hold ``member``, e.g.
            ``"deepbet==1.0.2"`` (used when installed; named in offline errors).
    """

    filename: str
    url: str
    git_blob_sha1: str | None = None
    sha256: str | None = None
    headers: tuple = ()
    member: str | None = None
    archive_sha256: str | None = None
    package: str | None = None


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
    def verification(self):
        """How downloads are checked: the published hash kind, or a pin on first use."""
        if all(f.git_blob_sha1 for f in self.files):
            return "git blob SHA-1"
        if all(f.sha256 for f in self.files):
            return "SHA-256"
        return "SHA-256 pinned on first download"

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

PYMENT_2025_CITATION = (
    "Leonardsen EH et al. Learning diverse and generic representations of the brain with "
    "large-scale multi-task pretraining. medRxiv (2025)"
)
SYNTHBA_COMMIT = "985c6a5b9bd8bcc582df3fa97531603a23a1628d"
SYNTHBA_CITATION = (
    "Puglisi L, Rondinella A, De Meo L, Guarnera F, Battiato S, Ravì D. SynthBA: Reliable "
    "brain age estimation across multiple MRI sequences and resolutions. IEEE MetroXRAINE "
    "2024, 559-564. arXiv:2406.00365"
)
MEDICALNET_CITATION = (
    "Chen S, Ma K, Zheng Y. Med3D: Transfer learning for 3D medical image analysis. "
    "arXiv:1904.00625 (2019)"
)
#: the six outputs of pyment v4's multi-task model, in the order of its heads
MULTITASK_OUTPUTS = ("age", "sex", "handedness", "bmi", "fluid_intelligence", "neuroticism")


def _pyment_v4(name, data_blob, index_blob, trained_for, reported_error, training_size, config):
    return WeightSpec(
        name=name,
        architecture="sfcn",
        files=(
            FileSpec(f"{name}.index", PYMENT_BLOB.format(sha=index_blob),
                     git_blob_sha1=index_blob, headers=GITHUB_RAW_HEADERS),
            FileSpec(f"{name}.data-00000-of-00001", PYMENT_BLOB.format(sha=data_blob),
                     git_blob_sha1=data_blob, headers=GITHUB_RAW_HEADERS),
        ),
        format="pyment-tf-checkpoint",
        trained_for=trained_for,
        license="CC BY-NC 4.0",
        citation=PYMENT_2025_CITATION,
        source="https://github.com/estenhl/pyment-public",
        training_size=training_size,
        reported_error=reported_error,
        preprocessing="multi-2025",
        config={
            "input_shape": (224, 192, 224, 1),
            "fixed_shape": True,
            "bn_epsilon": 1e-3,
            "dropout": 0.0,
            "filters": (32, 64, 128, 256, 256, 64),
            **config,
        },
    )


_MULTITASK_FOR = "age, sex, handedness, BMI, fluid intelligence, neuroticism (6 outputs)"
for _spec in (
    _pyment_v4(
        "multi-2025", "f4054d701fa59971fb7000d38cf9e63a202bd66a",
        "9c208ca0bcc3969ceb281ba63a8cee4944a63157", _MULTITASK_FOR,
        "age MAE 2.23 years (validation), 3.35 (20 unseen cohorts)",
        "68,570 scans from 26 sources",
        {"head": "multitask", "classes": len(MULTITASK_OUTPUTS), "outputs": MULTITASK_OUTPUTS,
         "pooling": "max"},
    ),
    _pyment_v4(
        "multi-2025-no-abcd", "564cd7b3b89f280f41abf126d063279def15c828",
        "a6c1c4c7216212dbd4c901c2f229de9a15d23c46", _MULTITASK_FOR,
        "see Leonardsen et al. 2025 (multi-2025 without ABCD)",
        "the multi-2025 sources without ABCD",
        {"head": "multitask", "classes": len(MULTITASK_OUTPUTS), "outputs": MULTITASK_OUTPUTS,
         "pooling": "max"},
    ),
    _pyment_v4(
        "reg-2025", "a876e76e382b0da7375f81686a20620415817b7f",
        "0748f0c6e83272d74735ba7b1a796a43519df66f",
        "brain age in years, regression (linear output)",
        "see Leonardsen et al. 2025", "68,570 scans from 26 sources",
        {"head": "regression", "classes": 1, "output_range": None, "pooling": "avg"},
    ),
):
    register(_spec)

for _variant, _blob, _prior in (
    ("g", "40e25e5b1c0061010b3dd03ae44d7068180398a8", "Gaussian prior; the recommended model"),
    ("u", "8be4aa4a5da9bec3c553f5646da2907ad27c0ad1", "uniform prior"),
):
    register(
        WeightSpec(
            name=f"synthba-{_variant}",
            architecture="densenet201",
            files=(
                FileSpec(
                    f"synthba-{_variant}.pth",
                    "https://raw.githubusercontent.com/LemuelPuglisi/SynthBA/"
                    f"{SYNTHBA_COMMIT}/checkpoints/synthba-{_variant}.pth",
                    git_blob_sha1=_blob,
                ),
            ),
            format="monai-densenet",
            trained_for=f"brain age in years from any MRI contrast and resolution ({_prior})",
            license="MIT",
            citation=SYNTHBA_CITATION,
            source="https://github.com/LemuelPuglisi/SynthBA",
            training_size="synthetic scans generated from brain segmentations "
            "(domain randomisation)",
            reported_error="see Puglisi et al. 2024",
            preprocessing="synthba",
            config={
                "input_shape": (130, 130, 130, 1),
                "bn_epsilon": 1e-5,
                "classes": 1,
                "classifier_activation": None,
                "output_scale": 100.0,
            },
        )
    )

#: MedicalNet depth -> checkpoint file (the 23-dataset variants where published)
MEDICALNET_FILES = {
    10: "resnet_10_23dataset.pth",
    18: "resnet_18_23dataset.pth",
    34: "resnet_34_23dataset.pth",
    50: "resnet_50_23dataset.pth",
    101: "resnet_101.pth",
    152: "resnet_152.pth",
    200: "resnet_200.pth",
}
for _depth, _file in MEDICALNET_FILES.items():
    register(
        WeightSpec(
            name="medicalnet",
            variant=f"resnet{_depth}",
            architecture=f"resnet{_depth}",
            files=(
                FileSpec(
                    f"medicalnet-{_file}",
                    f"https://huggingface.co/TencentMedicalNet/MedicalNet-Resnet{_depth}/"
                    f"resolve/main/{_file}",
                ),
            ),
            format="medicalnet",
            trained_for="3D medical image segmentation on 23 datasets (backbone features; "
            "no classifier)",
            license="MIT",
            citation=MEDICALNET_CITATION,
            source="https://github.com/Tencent/MedicalNet",
            training_size="23 public segmentation datasets (CT and MRI)",
            reported_error="see Chen et al. 2019",
            preprocessing="medicalnet",
            config={
                "input_shape": (160, 192, 160, 1),
                "block_layout": "medicalnet",
                "bn_epsilon": 1e-5,
            },
        )
    )

DEEPBET_WHEEL = (
    "https://files.pythonhosted.org/packages/00/48/3550a510d020faf4d67e86c9f4d3154923d4f4965b6fa9651b5c51012094/"
    "deepbet-1.0.2-py3-none-any.whl"
)
DEEPBET_CITATION = (
    "Fisch L, Zumdick S, Barkhau C, et al. deepbet: Fast brain extraction of T1-weighted MRI "
    "using Convolutional Neural Networks. Computers in Biology and Medicine (2024). "
    "arXiv:2308.07003"
)
for _name, _member, _sha256, _shape, _for in (
    ("deepbet", "model.pt", "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
     256, "brain mask of a T1 head crop (softmax: background, brain)"),
    ("deepbet-bbox", "bbox_model.pt",
     "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa", 128,
     "coarse brain mask of a whole T1 head, to place the crop (softmax: background, brain)"),
):
    register(
        WeightSpec(
            name=_name,
            architecture="linknet3d",
            files=(
                FileSpec(
                    f"deepbet-1.0.2-{_member}", DEEPBET_WHEEL, sha256=_sha256,
                    member=f"data/models/{_member}",
                    archive_sha256="1999e2ea00ec48f6233b95b96f3901a962d3f70431c63aeb985e8a49a198473c",
                    package="deepbet==1.0.2",
                ),
            ),
            format="torchscript",
            trained_for=_for,
            license="MIT",
            citation=DEEPBET_CITATION,
            source="https://github.com/wwu-mmll/deepbet (the deepbet 1.0.2 wheel on PyPI)",
            training_size="7,837 T1 scans from 191 OpenNeuro datasets",
            reported_error="median Dice 99.0 on unseen datasets",
            preprocessing="deepbet",
            config={"input_shape": (_shape, _shape, _shape, 1)},
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
