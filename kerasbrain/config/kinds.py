"""The schema of each config kind (``train``, ``finetune``, ``tune``, ``pretrain``); `register`
adds more.

``docs/configs.md`` is generated from these (``python -m kerasbrain.config``).
"""

from kerasbrain.config.schema import Key, positive, rate, required

TASK_TYPES = ("regression", "binary", "categorical", "soft_classification", "ranking")

_TASK_COMMON = {
    "type": required((str,), "task kind", choices=TASK_TYPES),
    "name": required((str,), "output name; the label column or array it reads"),
    "weight": Key((float,), "weight of this task's loss", 1.0, low=0),
}
TASK_VARIANTS = {
    "regression": {
        **_TASK_COMMON,
        "loss": Key((str,), "loss", "mse", choices=("mse", "mae", "huber")),
        "standardize": Key((bool, list), "learn mean/std from the labels (true) or [mean, std]",
                           False),
        "output_range": Key((list,), "[low, high] clamp of the output"),
    },
    "binary": {
        **_TASK_COMMON,
        "positive": Key((str, int, float, bool), "the label value of the positive class "
                        "(default: labels are 0/1)"),
    },
    "categorical": {
        **_TASK_COMMON,
        "classes": required((int, list), "number of classes or the list of labels", low=2),
    },
    "soft_classification": {
        **_TASK_COMMON,
        "bin_range": Key((list,), "[low, high] of the bins", [42, 82]),
        "bins": Key((int,), "number of bins", 40, low=2),
        "sigma": positive((float,), "Gaussian soft-label width (label units)", 1.0),
    },
    "ranking": {
        **_TASK_COMMON,
        "value_range": Key((list,), "[low, high] of the target", [3, 95]),
    },
}
TASKS = required((list,), "prediction tasks, one mapping each",
                 items=Key((dict,), "a task", variants=TASK_VARIANTS))

_SOURCE = {
    "tfrecords": Key((str,), "a TFRecord folder written by `kerasbrain tfrecords` (or its "
                     "manifest)"),
    "table": Key((str,), "a CSV/TSV of volume paths and labels"),
    "path_column": Key((str,), "the table's column of volume paths", "path"),
    "npz": Key((str,), "a NumPy archive: volumes under `x`, one array per task"),
}
_MONITOR = {
    "monitor": Key((str,), "metric to watch (default `val_loss`, or `loss` without "
                   "validation data)"),
    "mode": Key((str,), "direction of improvement", "auto", choices=("auto", "min", "max")),
    "patience": Key((int,), "epochs without improvement before acting", low=0),
    "min_delta": Key((float,), "smallest change that counts as improvement", low=0),
    "verbose": Key((int,), "log when acting", 0, choices=(0, 1)),
}
CALLBACKS = {
    "early_stopping": Key((dict,), "keras.callbacks.EarlyStopping (best weights restored)", keys={
        **_MONITOR,
        "baseline": Key((float,), "stop unless the metric beats this"),
        "restore_best_weights": Key((bool,), "restore the best epoch's weights", True),
        "start_from_epoch": Key((int,), "epochs before stopping is considered", 0, low=0),
    }),
    "reduce_lr_on_plateau": Key((dict,), "keras.callbacks.ReduceLROnPlateau", keys={
        **_MONITOR,
        "factor": rate("multiplier of the learning rate"),
        "cooldown": Key((int,), "epochs to wait after a reduction", 0, low=0),
        "min_lr": Key((float,), "lowest learning rate", 0.0, low=0),
    }),
}
FINETUNE = {
    "trainable_blocks": positive((int,), "`partial`: how many of the last backbone blocks learn"),
    "two_phase": Key((bool, int), "`full`: train the heads alone first for this many epochs "
                     "(true = 5)", False, low=0),
    "head_learning_rate": rate("learning rate of the heads-only phase (default 10 x "
                               "learning_rate)"),
    "dropout": Key((float,), "dropout before each new head", 0.5, low=0, high=1,
                   high_open=True),
    "head_units": Key((int,), "hidden units of each new head (0 or none: linear)", low=0),
    "replace_heads": Key((bool, list), "new heads (true), reuse pretrained ones (false) or "
                         "the task names to replace", True),
    "rerange": Key((dict,), "{task: [low, high]}: the output range of a reused head"),
    "loss_weights": Key((dict,), "{task: weight} of the losses"),
    "pooling": Key((str,), "pooling of a backbone that outputs a feature map", "avg",
                   choices=("avg", "max")),
}
TRAIN = {
    "data": required((dict,), "where the volumes and labels come from", keys={
        "train": required((dict,), "training data: one of the sources below", keys=_SOURCE),
        "validation": Key((dict,), "validation data, same sources", keys=_SOURCE),
        "batch_size": positive((int,), "volumes per batch (across all devices)", 4),
        "augment": Key((float,), "strength of kerasbrain.layers.augmentation applied to the "
                       "training volumes (0: flips only; absent: none)", low=0),
    }),
    "backbone": Key((dict,), "the architecture (or give `model`)", keys={
        "name": Key((str,), "a kerasbrain.applications constructor", "SFCN"),
        "weights": Key((str,), "registry name or weights file"),
        "input_shape": Key((list,), "volume shape [x, y, z, channels]",
                           items=positive((int,), "a size")),
        "kwargs": Key((dict,), "more constructor arguments (pooling, filters, ...)"),
    }),
    "model": Key((str,), "a saved .keras model to start from instead of `backbone`"),
    "tasks": TASKS,
    "strategy": Key((str,), "how much of the pretrained network learns", "full",
                    choices=("scratch", "frozen", "partial", "full")),
    "finetune": Key((dict,), "more arguments of kerasbrain.transfer.finetune", {},
                    keys=FINETUNE),
    "optimizer": Key((dict,), "the optimizer", keys={
        "name": Key((str,), "a Keras optimizer name", "adam"),
        "learning_rate": rate("learning rate", 1e-3),
        "weight_decay": Key((float,), "decoupled weight decay (AdamW when > 0)", 0.0, low=0),
    }),
    "epochs": Key((int,), "training epochs", 10, low=1),
    "callbacks": Key((dict,), "extra Keras callbacks", {}, keys=CALLBACKS),
    "output": required((str,), "output folder (or --output)"),
    "seed": Key((int,), "random seed", 0, low=0),
    "precision": Key((str, dict), "`float32`, `mixed_bfloat16`, `mixed_float16` or "
                     "{policy, loss_scaling}"),
    "jit_compile": Key((bool, str), "XLA compilation (`auto`, true, false)", "auto"),
    "gradient_accumulation_steps": positive((int,), "batches summed per optimizer step"),
    "remat": Key((bool, str, list), "recompute activations to save memory"),
    "distribution": Key((dict,), "data parallelism", keys={
        "devices": Key((str, int, list), "`all`, a count or a list of devices", "all"),
        "hosts": Key((dict, list, str, int), "several hosts (see docs/scale.md)"),
    }),
}

_SEARCH_RANGE = Key((dict,), "a range", keys={
    "min": required((float,), "lowest value"),
    "max": required((float,), "highest value"),
    "step": positive((float,), "step (log sampling: a factor)"),
    "sampling": Key((str,), "spacing", "linear", choices=("linear", "log", "reverse_log")),
    "default": Key((float,), "first value tried"),
})
SEARCH_SPACE = {
    name: Key((str, int, float, bool, list, dict), doc, keys=_SEARCH_RANGE.keys)
    for name, doc in (
        ("backbone", "backbone names to choose from"),
        ("strategy", "`frozen`, `partial`, `full`, `two_phase`"),
        ("trainable_blocks", "`partial`: blocks that learn"),
        ("learning_rate", "learning rate"),
        ("head_learning_rate", "`two_phase`: the heads-only rate"),
        ("dropout", "dropout before the heads"),
        ("weight_decay", "decoupled weight decay"),
        ("head_units", "hidden units of the heads (0: linear)"),
        ("augmentation", "augmentation strength (0: flips only)"),
    )
}
TUNE = {
    "data": required((dict,), "the cohort, read into memory", keys={
        "arrays": Key((str,), "a NumPy archive: volumes under `x`, one array per task"),
        "manifest": Key((str,), "a TFRecord folder written by `kerasbrain tfrecords`"),
        "x": Key((str,), "the archive's array of volumes", "x"),
        "groups": Key((str,), "subject/site ids never split across folds"),
    }),
    "backbone": required((str, list), "a kerasbrain.applications name, or several to search"),
    "weights": Key((str,), "registry name or weights file of the backbone"),
    "input_shape": Key((list,), "volume shape [x, y, z, channels]",
                       items=positive((int,), "a size")),
    "backbone_kwargs": Key((dict,), "more backbone arguments (filters, ...)"),
    "tasks": TASKS,
    "tuner": Key((str,), "search algorithm", "random",
                 choices=("random", "bayesian", "hyperband", "grid")),
    "budget": positive((int,), "trials (hyperband: max epochs per model)", 10),
    "objective": Key((str,), "metric to optimise (e.g. val_diagnosis_auc)", "val_loss"),
    "folds": Key((int,), "cross-validation folds", 5, low=2),
    "stratify": Key((str, bool), "stratify folds by a task (`auto`: the first "
                    "classification task)", "auto"),
    "strategies": Key((list,), "strategies to search", None,
                      items=Key((str,), "a strategy",
                                choices=("frozen", "partial", "full", "two_phase"))),
    "max_trainable_blocks": positive((int,), "`partial`: most blocks that learn", 3),
    "augmentation": Key((bool,), "tune the augmentation strength", True),
    "search_space": Key((dict,), "fixed values, lists of choices or {min, max, step, "
                        "sampling} ranges", keys=SEARCH_SPACE, prefixed={
                            "loss_weight_": Key((float, list, dict), "loss weight of a task "
                                                "after the first", keys=_SEARCH_RANGE.keys)}),
    "epochs": Key((int,), "epochs per trial", 10, low=1),
    "batch_size": positive((int,), "volumes per batch", 4),
    "retrain": Key((bool,), "train best_model.keras on all the data", True),
    "seed": Key((int,), "random seed", 0, low=0),
    "output": Key((str,), "output folder (or --output)"),
}

_RANGE = Key((list,), "[low, high]", items=Key((float,), "a bound", low=0))
PRETRAIN = {
    "method": Key((str,), "pretext task: SimCLR / y-aware contrastive, or masked-volume "
                  "modelling", "contrastive", choices=("contrastive", "masked")),
    "data": required((dict,), "the unlabelled volumes", keys={
        "train": required((dict,), "one of the sources below (labels are read only for "
                          "`contrastive.kernel`)", keys={
                              **_SOURCE,
                              "preprocessor": Key((str,), "`table`: a weight set whose "
                                                  "preprocessing the NIfTI files get"),
                          }),
        "batch_size": Key((int,), "volumes per batch (contrastive: at least 2)", 16, low=2),
    }),
    "backbone": required((dict,), "the architecture to pretrain (pooled output)",
                         keys=TRAIN["backbone"].keys),
    "contrastive": Key((dict,), "kerasbrain.pretraining.Contrastive", {}, keys={
        "projection_dim": positive((int,), "projection head width", 128),
        "temperature": positive((float,), "NT-Xent temperature", 0.1),
        "kernel": Key((list,), "[label, sigma]: y-aware positives weighted by an RBF kernel "
                      "on this continuous label (label units)"),
    }),
    "masked": Key((dict,), "kerasbrain.pretraining.MaskedVolume", {}, keys={
        "mask_ratio": rate("fraction of patches masked", 0.6),
        "patch_size": positive((int, list), "masked patch side (voxels; divides the input)", 16),
        "decoder_dim": positive((int,), "decoder width", 128),
        "decoder_heads": positive((int,), "ViT (MAE) decoder attention heads", 4),
    }),
    "augmentation": Key((dict,), "kerasbrain.layers.view_augmentation (contrastive views; "
                        "0 or null leaves a step out)", {}, keys={
                            "crop_scale": Key((list,), "volume fraction range of the random "
                                              "resized crop", [0.4, 1.0], items=_RANGE.items),
                            "flip_axes": Key((list,), "axes flipped at random", [0],
                                             items=Key((int,), "an axis", choices=(0, 1, 2))),
                            "blur": Key((list,), "Gaussian blur sigma range (voxels)", [0.1, 1.5],
                                        items=_RANGE.items),
                            "gamma": Key((float,), "log-gamma range (+-)", 0.3, low=0),
                            "contrast": Key((float,), "intensity factor range (1 +-)", 0.2, low=0),
                            "noise": Key((float,), "noise std (x the volume's std)", 0.05, low=0),
                            "cutout": Key((list,), "cutout box side fractions", [0.1, 0.4],
                                          items=_RANGE.items),
                        }),
    "optimizer": TRAIN["optimizer"],
    "epochs": Key((int,), "pretraining epochs", 100, low=1),
    "callbacks": TRAIN["callbacks"],
    "output": required((str,), "output folder (or --output)"),
    "seed": Key((int,), "random seed", 0, low=0),
}

#: config kind -> schema; `register` adds the kinds of new commands
SCHEMAS = {"train": TRAIN, "finetune": TRAIN, "tune": TUNE, "pretrain": PRETRAIN}


def register(kind, schema):
    """Make ``schema`` the schema of config ``kind`` (a new command's configs)."""
    SCHEMAS[kind] = schema
    return schema
