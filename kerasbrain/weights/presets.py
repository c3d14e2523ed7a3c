"""The published weight sets (presets in the keras-hub sense): for each, its files and
hashes, the architecture config, the preprocessing (the `kerasbrain.data.Preprocessor`
arguments and what must be done before), the tasks of its heads, and its citation.

Every entry keeps its own license; non-commercial weights (CC BY-NC 4.0) are downloaded by
the user from the authors' source and never redistributed by kerasbrain.
kerasbrain does not register or skull-strip images: each preprocessing's ``requires`` says
what must be done *before* (e.g. with FSL FLIRT, FreeSurfer, FastSurfer, SynthStrip).
"""

from kerasbrain.weights.spec import FileSpec, WeightSpec


def _task(kind, name, **arguments):
    """A head's task as a ``kerasbrain.tasks`` spec: ``{"type": kind, "name": name, ...}``."""
    return {"type": kind, "name": name, **arguments}


_MNI_1MM = (182, 218, 182)

#: how each weight set's inputs are prepared: Preprocessor arguments and what comes before
PREPROCESSING = {
    "ukb": {
        "orientation": "LAS",
        "crop": ((11, 171), (13, 205), (11, 171)),
        "intensity": "mean",
        "input_shape": _MNI_1MM,
        "requires": (
            "T1 linearly registered to MNI152 1 mm (182x218x182, FSL FLIRT), skull stripped "
            "as in the UK Biobank pipeline"
        ),
        "name": "ukb",
    },
    "brain-age-2022": {
        "orientation": "LAS",
        "crop": ((6, 173), (2, 214), (0, 160)),
        "intensity": 255.0,
        "input_shape": _MNI_1MM,
        "requires": (
            "FreeSurfer recon-all brainmask.mgz, reoriented to FSL standard (fslreorient2std) "
            "and rigidly registered to MNI152 1 mm (182x218x182, FSL FLIRT 6 dof)"
        ),
        "name": "brain-age-2022",
    },
    "multi-2025": {
        "orientation": "LIA",
        "spacing": 1.0,
        "shape": (224, 192, 224),
        "crop": "bbox",
        "pad_value": 0.0,
        "intensity": None,
        "requires": (
            "FastSurfer conformed orig.mgz (1 mm, 256^3, LIA) multiplied by its mask.mgz "
            "(pass mask= to the preprocessor, or mask beforehand)"
        ),
        "name": "multi-2025",
    },
    "synthba": {
        "orientation": "RAS",
        "spacing": 1.4,
        "shape": (130, 130, 130),
        "crop": "center",
        "pad_value": "min",
        "intensity": "minmax",
        "requires": "skull stripped (e.g. SynthStrip) and affinely aligned to MNI152",
        "name": "synthba",
    },
    "deepbet": {
        "orientation": "RAS",
        "intensity": None,
        "requires": (
            "nothing: a raw T1 head. kerasbrain.data.extract_brain runs deepbet's whole "
            "pipeline (128^3 localiser, 256^3 crop of its box, "
            "kerasbrain.applications.linknet.preprocess_input)"
        ),
        "name": "deepbet",
    },
    "medicalnet": {
        "orientation": "RAS",
        "intensity": "zscore",
        "requires": (
            "the region of interest cropped (MedicalNet z-scores the non-zero voxels); for "
            "brains: skull stripped, at about 1 mm"
        ),
        "name": "medicalnet",
    },
}

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


def _peng(name, path, blob, trained_for, config, reported_error, tasks):
    return WeightSpec(
        name=name,
        tasks=tasks,
        architecture="sfcn",
        files=(FileSpec(path.rsplit("/", 1)[-1], f"{PENG_RAW}/{path}", git_blob_sha1=blob),),
        format="peng-torch",
        trained_for=trained_for,
        license="MIT",
        citation=PENG_CITATION,
        source="https://github.com/ha-ha-ha-han/UKBiobank_deep_pretrain",
        training_size="12,949 UK Biobank T1 scans",
        reported_error=reported_error,
        preprocessing=PREPROCESSING["ukb"],
        config={
            "input_shape": (160, 192, 160, 1),
            "fixed_shape": True,
            "bn_epsilon": 1e-5,
            "pooling": "avg",
            "dropout": 0.5,
            **config,
        },
    )


def _pyment(name, variant, blob, citation, trained_for, config, reported_error, training_size,
            tasks):
    filename = f"{name}-{variant}.h5" if variant else f"{name}.h5"
    return WeightSpec(
        name=name,
        variant=variant,
        tasks=tasks,
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
        preprocessing=PREPROCESSING["brain-age-2022"],
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

#: every published weight set, in the order `list_weights` shows them
PUBLISHED = []
_add = PUBLISHED.append

for _spec in (
    _peng(
        "ukb",
        "brain_age/run_20190719_00_epoch_best_mae.p",
        "3631938002f789a842469132155380fa36de7d4d",
        "brain age in years, 40 one-year bins over 42-82 (soft classification)",
        {"head": "soft_classification", "classes": 40, "bin_range": (42.0, 82.0),
         "filters": (32, 64, 128, 256, 256, 64)},
        "test MAE 2.14 years (UK Biobank)",
        (_task("soft_classification", "brain_age", bin_range=(42.0, 82.0), bins=40),),
    ),
    _peng(
        "ukb-sex",
        "sex_prediction/run_20191008_00_epoch_last.p",
        "ac0d602bb7d56d8fc3e05fb00414c0905bcc1ffb",
        "sex, 2 classes (softmax)",
        {"head": "categorical", "classes": 2, "filters": (28, 58, 128, 256, 256, 64)},
        "test accuracy 99.5% (UK Biobank)",
        (_task("categorical", "sex", classes=2),),
    ),
    _pyment(
        "brain-age-2022", "regression", "f87a66558433308bb8a5ecfb6aaa784811c5cd45",
        PYMENT_2022_CITATION, "brain age in years, regression clamped to 3-95",
        {"head": "regression", "classes": 1, "output_range": (3.0, 95.0)},
        "external MAE 3.90 years", _PYMENT_2022_SIZE,
        (_task("regression", "brain_age", output_range=(3.0, 95.0)),),
    ),
    _pyment(
        "brain-age-2022", "ranking", "5d1bc5fc66327eb905acf81d9956f0391277b078",
        PYMENT_2022_CITATION, "brain age in years, ranking over 91 thresholds (3 + sum)",
        {"head": "ranking", "classes": 91, "output_range": (3.0, 95.0)},
        "external MAE 5.92 years", _PYMENT_2022_SIZE,
        (_task("ranking", "brain_age", value_range=(3.0, 95.0)),),
    ),
    _pyment(
        "brain-age-2022", "soft", "7b4f7bf4c989b80877b0bc0efe8b5125157788b5",
        PYMENT_2022_CITATION, "brain age in years, soft classification over ages 3-95",
        {"head": "soft_classification", "classes": 93, "bin_range": (2.5, 95.5)},
        "external MAE 5.04 years", _PYMENT_2022_SIZE,
        (_task("soft_classification", "brain_age", bin_range=(2.5, 95.5), bins=93),),
    ),
):
    _add(_spec)

for _fold, _blob in enumerate(
    (
        "1f43aafd2461d7e5b4f9ebb6d62e0f2ab363e1b8",
        "a0da6b724f3c1477ae2f461c49a91b7d2f46ac72",
        "cec0eb79f043a3415f5ab13977dfda24e1f7dc30",
        "c885fee44d4839d37d8bcdfd970391788ee85004",
        "35d3b0343b83a9851a140cab7baed2dd36e35185",
    )
):
    _add(
        _pyment(
            "dementia-2024", f"fold-{_fold}", _blob, PYMENT_2024_CITATION,
            "dementia vs cognitively healthy, probability (binary)",
            {"head": "binary", "classes": 1},
            "see Leonardsen et al. 2024 (cross-validated AUC per fold)",
            "1,366 scans (dementia patients, mostly probable AD, and controls)",
            (_task("binary", "dementia"),),
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
#: the six heads of pyment v4's multi-task model, in output order (the UK Biobank phenotypes)
MULTITASK_TASKS = (
    _task("regression", "age"),
    _task("binary", "sex"),
    _task("binary", "handedness"),
    _task("regression", "bmi"),
    _task("regression", "fluid_intelligence"),
    _task("regression", "neuroticism"),
)
MULTITASK_OUTPUTS = tuple(task["name"] for task in MULTITASK_TASKS)


def _pyment_v4(name, data_blob, index_blob, trained_for, reported_error, training_size, config,
               tasks):
    return WeightSpec(
        name=name,
        tasks=tasks,
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
        preprocessing=PREPROCESSING["multi-2025"],
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
        MULTITASK_TASKS,
    ),
    _pyment_v4(
        "multi-2025-no-abcd", "564cd7b3b89f280f41abf126d063279def15c828",
        "a6c1c4c7216212dbd4c901c2f229de9a15d23c46", _MULTITASK_FOR,
        "see Leonardsen et al. 2025 (multi-2025 without ABCD)",
        "the multi-2025 sources without ABCD",
        {"head": "multitask", "classes": len(MULTITASK_OUTPUTS), "outputs": MULTITASK_OUTPUTS,
         "pooling": "max"},
        MULTITASK_TASKS,
    ),
    _pyment_v4(
        "reg-2025", "a876e76e382b0da7375f81686a20620415817b7f",
        "0748f0c6e83272d74735ba7b1a796a43519df66f",
        "brain age in years, regression (linear output)",
        "see Leonardsen et al. 2025", "68,570 scans from 26 sources",
        {"head": "regression", "classes": 1, "output_range": None, "pooling": "avg"},
        (_task("regression", "brain_age"),),
    ),
):
    _add(_spec)

for _variant, _blob, _prior in (
    ("g", "40e25e5b1c0061010b3dd03ae44d7068180398a8", "Gaussian prior; the recommended model"),
    ("u", "8be4aa4a5da9bec3c553f5646da2907ad27c0ad1", "uniform prior"),
):
    _add(
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
            preprocessing=PREPROCESSING["synthba"],
            tasks=(_task("regression", "brain_age"),),
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
    _add(
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
            preprocessing=PREPROCESSING["medicalnet"],
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
for _name, _member, _sha256, _size, _for in (
    ("deepbet", "model.pt", "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
     256, "brain mask of a T1 head crop (softmax: background, brain)"),
    ("deepbet-bbox", "bbox_model.pt",
     "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa", 128,
     "coarse brain mask of a whole T1 head, to place the crop (softmax: background, brain)"),
):
    _add(
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
            preprocessing=PREPROCESSING["deepbet"],
            config={"input_shape": (_size, _size, _size, 1)},
        )
    )

#: the variant used when a name is given without one
DEFAULT_VARIANTS = {"brain-age-2022": "regression", "dementia-2024": "fold-0"}

#: what ``head=`` selects for names with several heads
HEAD_VARIANTS = {"brain-age-2022": {"regression": "regression", "ranking": "ranking",
                                    "soft_classification": "soft"}}
