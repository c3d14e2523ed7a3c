"""``kerasbrain tune CONFIG``: cross-validated hyperparameter search over fine-tuning settings.

Writes to the config's ``output`` folder: ``results.csv`` (one row per trial: its
hyperparameters, fold scores, mean and std), ``best_hyperparameters.json``,
``best_config.yaml`` (a ``kerasbrain finetune`` config) and, unless ``retrain: false``,
``best_model.keras`` (the best settings trained on all the data). The KerasTuner project
(trials, oracle state; a rerun resumes it) is in ``output/search``.

In a distributed search (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT`` set), run the same command in every process: the chief serves
the oracle and writes the outputs, the workers run trials.
"""

import os

import numpy as np

from kerasbrain.files import atomic_write, write_json

EXAMPLE = """\
data:
  arrays: cohort.npz        # NumPy archive: volumes under 'x', one array per task
  # manifest: shards/       # or a kerasbrain TFRecord folder, read into memory
  groups: subject           # optional: subject/site ids, never split across folds
backbone: SFCN
weights: ukb
input_shape: [160, 192, 160, 1]
tasks:
  - {type: binary, name: diagnosis}
tuner: bayesian             # random | bayesian | hyperband | grid
budget: 20                  # trials (hyperband: max epochs per model)
objective: val_diagnosis_auc
folds: 5
epochs: 30
batch_size: 4
search_space:               # optional overrides: fixed values, choices or ranges
  strategy: [partial, full]
  learning_rate: {min: 1.0e-5, max: 1.0e-3, sampling: log}
output: runs/tune
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune",
        help="cross-validated hyperparameter search over fine-tuning settings (KerasTuner)",
        description="Cross-validated hyperparameter search over fine-tuning settings, with "
        "KerasTuner. Writes results.csv, best_hyperparameters.json, best_config.yaml (for "
        "kerasbrain finetune) and best_model.keras to the output folder.\n\nExample config:\n\n"
        + EXAMPLE,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML or JSON config (see the example above)")
    parser.add_argument("--output", help="output folder (overrides the config's 'output')")
    parser.add_argument("--overwrite", action="store_true",
                        help="start the search afresh instead of resuming it")  # fmt: skip
    parser.add_argument("--verbose", type=int, default=1, help="Keras verbosity (0, 1, 2)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerasbrain import tuning
    from kerasbrain.tuning import config as config_lib

    config = config_lib.read_config(args.config)
    output = args.output or config.get("output")
    if not output:
        raise ValueError(f"{args.config}: set 'output' (the folder for results) or pass --output.")
    x, y, groups = load_data(config, args.config)
    hypermodel = config_lib.hypermodel_from_config(config)
    missing = sorted(set(hypermodel.task_names) - set(y))
    if missing:
        raise ValueError(f"{args.config}: no labels for task(s) {missing}; the data has {sorted(y)}.")
    y = {name: y[name] for name in hypermodel.task_names}

    tuner_name = config.get("tuner", "random")
    budget = int(config.get("budget", 10))
    epochs = int(config.get("epochs", 10))
    tuner = tuning.CVTuner(
        hypermodel,
        tuner_name,
        objective=config.get("objective", "val_loss"),
        max_trials=budget,
        max_epochs=budget if tuner_name == "hyperband" else epochs,
        folds=int(config.get("folds", 5)),
        stratify=config.get("stratify", "auto"),
        seed=int(config.get("seed", 0)),
        hyperparameters=config_lib.search_space(config.get("search_space")),
        directory=output,
        project_name="search",
        overwrite=args.overwrite and not tuning.is_distributed_worker(),
    )
    fit_kwargs = dict(epochs=epochs, batch_size=int(config.get("batch_size", 4)), verbose=args.verbose)
    tuner.search(x, y, groups=groups, **fit_kwargs)
    if tuning.is_distributed_worker():
        return 0

    table = tuner.results_table()
    tuner.save_results(os.path.join(output, "results.csv"))
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ValueError(f"{args.config}: no trial completed; see {os.path.join(output, 'search')}.")
    hp = best[0].hyperparameters
    epochs_best = tuner.best_epochs(best[0])
    write_json(os.path.join(output, "best_hyperparameters.json"), config_lib._plain(hp.values), indent=2)
    exported = config_lib.finetune_config(config, hypermodel, hp, epochs=epochs_best)
    exported["output"] = os.path.join(output, "finetune")
    config_lib.write_config(exported, os.path.join(output, "best_config.yaml"))
    if config.get("retrain", True):
        model = tuner.fit_best(x, y, epochs=epochs_best, batch_size=fit_kwargs["batch_size"],
                               verbose=args.verbose)  # fmt: skip
        save_model(model, os.path.join(output, "best_model.keras"))
    row = table.iloc[0]
    print(f"best trial {row['trial']}: {tuner.oracle.objective.name} = {row['mean']:.4g} "
          f"± {row['std']:.2g} over {tuner.n_folds} folds; outputs in {output}")  # fmt: skip
    return 0


def load_data(config, source="config"):
    """``(x, y, groups)`` from the config's ``data`` section (see the module docstring)."""
    data = config.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{source}: 'data' must be a mapping with 'arrays' or 'manifest'.")
    task_names = [t.get("name") for t in config.get("tasks") or [] if isinstance(t, dict)]
    group_key = data.get("groups")
    if "arrays" in data:
        path = data["arrays"]
        if not os.path.exists(path):
            raise FileNotFoundError(f"{source}: data.arrays {path}: no such file.")
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        x_key = data.get("x", "x")
        if x_key not in arrays:
            raise ValueError(f"{path}: no array {x_key!r} of volumes; arrays: {sorted(arrays)}.")
        x = arrays.pop(x_key).astype("float32")
        if x.ndim == 4:
            x = x[..., None]
        groups = None
        if group_key is not None:
            if group_key not in arrays:
                raise ValueError(f"{path}: no array {group_key!r} for groups; arrays: {sorted(arrays)}.")
            groups = arrays.pop(group_key)
        return x, arrays, groups
    if "manifest" in data:
        from kerasbrain.tuning.data import load_arrays

        return load_arrays(data["manifest"], labels=task_names or None, groups=group_key)
    raise ValueError(f"{source}: 'data' needs 'arrays' (a .npz file) or 'manifest' (a TFRecord folder).")


def save_model(model, path):
    """``model.save(path)`` through a temporary name renamed when complete."""
    with atomic_write(path) as tmp:
        model.save(tmp)
    return path
