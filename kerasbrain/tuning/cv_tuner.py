"""``CVTuner``: a KerasTuner tuner that scores each trial by k-fold cross-validation.

On a hundred scans one validation split of twenty is too noisy to choose a learning rate
by. ``CVTuner`` trains ``k`` fresh models per trial, one per fold, and reports the mean
of the objective over the folds (each fold's best epoch, as KerasTuner scores one
model), its spread and every fold's value to the oracle. The folds are drawn once from a
fixed seed, so all trials, and all workers of a distributed search, see the same ones.

Any KerasTuner oracle drives it (random search, Bayesian optimisation, Hyperband, grid
search), in one process or through KerasTuner's chief/worker protocol.
"""

import gc
import json
import os
import time

import keras
import keras_tuner as kt
import numpy as np

from kerasbrain.files import write_text
from kerasbrain.tuning import folds as folds_lib
from kerasbrain.tuning import objectives
from kerasbrain.tuning import results as results_lib

ORACLES = ("random", "bayesian", "hyperband", "grid")


def make_oracle(
    name, objective="val_loss", *, max_trials=10, max_epochs=10, factor=3, hyperparameters=None,
    seed=None, **kwargs,
):
    """A KerasTuner oracle by name: ``"random"``, ``"bayesian"``, ``"hyperband"``, ``"grid"``.

    ``objective`` is a metric name (direction read from the name, see
    ``kerasbrain.tuning.objective``) or a ``keras_tuner.Objective``. ``max_epochs`` and
    ``factor`` are Hyperband's; the other oracles stop after ``max_trials`` trials.
    Remaining keyword arguments go to the oracle (``tune_new_entries``, ...).
    """
    objective = objectives.objective(objective)
    common = dict(objective=objective, hyperparameters=hyperparameters, seed=seed, **kwargs)
    if name == "random":
        return kt.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if name == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    if name == "hyperband":
        return kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, **common)
    if name == "grid":
        return kt.oracles.GridSearchOracle(max_trials=max_trials, **common)
    raise ValueError(f"Unknown tuner {name!r}; expected one of {ORACLES}.")


class CVTuner(kt.Tuner):
    """KerasTuner tuner whose trials are scored by k-fold cross-validation.

    Args:
        hypermodel: a ``keras_tuner.HyperModel`` (e.g.
            ``kerasbrain.tuning.FineTuningHyperModel``) or a function ``hp -> compiled
            keras.Model``.
        oracle: a ``keras_tuner.Oracle``, or the name of one: ``"random"``,
            ``"bayesian"``, ``"hyperband"`` or ``"grid"``.
        objective: metric to optimise, as named in the History, e.g. ``"val_age_mae"``
            (minimised) or ``"val_diagnosis_auc"`` (maximised); the direction is read
            from the name. Ignored when ``oracle`` is an Oracle.
        max_trials: number of trials (random, Bayesian, grid).
        folds: number of cross-validation folds ``k``.
        stratify: which labels stratify the folds: ``"auto"`` (the hypermodel's first
            classification task, or ``y`` itself when it is a single integer, boolean
            or string array), a task name (a key of ``y``), or ``None`` for none. An
            array passed to ``search(stratify=...)`` takes precedence.
        shuffle: shuffle samples before splitting.
        seed: seed of the fold split and of the oracle.
        hyperparameters: ``keras_tuner.HyperParameters`` that override the hypermodel's
            space (fixed values, narrower ranges).
        tune_new_entries: with ``hyperparameters``, whether the hypermodel's other
            hyperparameters are still tuned (``True``) or kept at their defaults.
        max_epochs, factor: Hyperband's budget; each trial's folds then train for the
            epochs Hyperband assigns (from scratch).
        **kwargs: ``keras_tuner.Tuner`` arguments: ``directory``, ``project_name``,
            ``overwrite``, ``max_model_size``, ...

    Example::

        tuner = kb.tuning.CVTuner(hypermodel, "bayesian", objective="val_age_mae",
                                  max_trials=20, folds=5, directory="tuning")
        tuner.search(x, {"age": age}, groups=site, epochs=30, batch_size=4)
        tuner.save_results("tuning/results.csv")
        model = tuner.fit_best(x, {"age": age}, batch_size=4)
    """

    def __init__(
        self, hypermodel=None, oracle="random", *, objective="val_loss", max_trials=10, folds=5,
        stratify="auto", shuffle=True, seed=0, hyperparameters=None, tune_new_entries=True,
        allow_new_entries=True, max_epochs=10, factor=3, **kwargs,
    ):
        if isinstance(oracle, str):
            oracle = make_oracle(
                oracle,
                objective,
                max_trials=max_trials,
                max_epochs=max_epochs,
                factor=factor,
                hyperparameters=hyperparameters,
                seed=seed,
                tune_new_entries=tune_new_entries,
                allow_new_entries=allow_new_entries,
            )
        elif not isinstance(oracle, kt.Oracle):
            raise TypeError(f"oracle must be a keras_tuner.Oracle or one of {ORACLES}, got {oracle!r}.")
        if hasattr(oracle.objective, "objectives"):  # a MultiObjective
            raise ValueError("CVTuner optimises one objective; got a list of objectives.")
        if hypermodel is not None and hasattr(hypermodel, "objectives"):
            objectives.check_objective(
                oracle.objective.name, hypermodel.objectives(), where="the hypermodel's tasks"
            )
        if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
            raise ValueError(f"folds must be an integer of at least 2, got {folds!r}.")
        self.n_folds = int(folds)
        self.stratify = stratify
        self.shuffle = shuffle
        self.seed = seed
        #: the folds of the last search: list of (train_indices, validation_indices)
        self.fold_indices = None
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    # ------------------------------------------------------------------------------
    # Search

    def search(self, x, y=None, *, groups=None, stratify=None, **fit_kwargs):
        """Run the search: every trial trains ``folds`` models and reports their mean.

        Args:
            x: inputs, an array ``(n, ...)`` or a dict/list of arrays with ``n`` rows.
            y: targets, an array or a dict ``{task: (n, ...)}``; NaN marks a missing label
                when the tasks mask them.
            groups: optional ``(n,)`` subject or site ids; a group never spans a training
                and a validation fold.
            stratify: optional ``(n,)`` labels to stratify by (overrides the tuner's
                ``stratify`` setting).
            **fit_kwargs: passed to ``model.fit`` (``epochs``, ``batch_size``,
                ``callbacks``, ``verbose``, ``sample_weight``, ...). Validation data comes
                from the folds, so ``validation_data``/``validation_split`` are refused.
        """
        for key in ("validation_data", "validation_split"):
            if key in fit_kwargs:
                raise ValueError(
                    f"CVTuner.search: {key} is not accepted; each fold validates on the "
                    "samples held out by the cross-validation."
                )
        n = _n_samples(x, y)
        labels = self._stratify_labels(y, n) if stratify is None else stratify
        self.fold_indices = folds_lib.split_folds(
            n, self.n_folds, stratify=labels, groups=groups, shuffle=self.shuffle, seed=self.seed
        )
        if not self._is_worker():
            self._save_folds(n)
        if _is_chief():
            self.save()
            _serve_chief(self.oracle)
            return None
        return super().search(x, y, **fit_kwargs)

    def run_trial(self, trial, x, y=None, **fit_kwargs):
        """Train one model per fold; return the mean, spread and per-fold objective."""
        hp = trial.hyperparameters
        name = self.oracle.objective.name
        direction = self.oracle.objective.direction
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial
            fit_kwargs["epochs"] = hp.values["tuner/epochs"]
            fit_kwargs.pop("initial_epoch", None)
        callbacks = fit_kwargs.pop("callbacks", None) or []
        sample_weight = fit_kwargs.pop("sample_weight", None)
        scores, best_epochs = [], []
        gc.collect()  # once per trial: k models are built below
        for k, (train, val) in enumerate(self.fold_indices):
            model = self._build_fold_model(hp)
            fold_callbacks = self._deepcopy_callbacks(callbacks)
            for callback in fold_callbacks:
                if isinstance(callback, keras.callbacks.TensorBoard):
                    callback.log_dir = os.path.join(str(callback.log_dir), trial.trial_id, f"fold{k}")
            validation = (_take(x, val), _take(y, val))
            if sample_weight is not None:
                validation += (_take(sample_weight, val),)
            history = self.hypermodel.fit(
                hp,
                model,
                _take(x, train),
                _take(y, train),
                validation_data=validation,
                sample_weight=_take(sample_weight, train),
                callbacks=fold_callbacks,
                **fit_kwargs,
            )
            if not isinstance(history, keras.callbacks.History):
                raise kt.errors.FatalTypeError(
                    "CVTuner: the hypermodel's fit() must return the History of model.fit, "
                    f"got {type(history).__name__}."
                )
            objectives.check_objective(name, history.history, where="model.fit")
            values = np.asarray(history.history[name], dtype="float64")
            best = int(np.nanargmin(values) if direction == "min" else np.nanargmax(values))
            scores.append(float(values[best]))
            best_epochs.append(best + 1)
        return results_lib.trial_metrics(name, scores, best_epochs)

    def _build_fold_model(self, hp):
        """``Tuner._try_build`` without its per-model garbage collection."""
        keras.backend.clear_session(free_memory=False)
        model = self._build_hypermodel(hp)
        if not isinstance(model, keras.Model):
            raise kt.errors.FatalTypeError(
                f"The hypermodel must build a keras.Model, got {type(model).__name__}."
            )
        return model

    def _stratify_labels(self, y, n):
        choice = self.stratify
        if choice is None or choice is False:
            return None
        if choice == "auto":
            task = getattr(self.hypermodel, "stratify_task", None)
            if task is not None and isinstance(y, dict) and task in y:
                return y[task]
            leaf = y if not isinstance(y, dict) or len(y) != 1 else next(iter(y.values()))
            if isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biuUSO" and leaf.ndim == 1:
                return leaf
            return None
        if not isinstance(y, dict) or choice not in y:
            available = sorted(y) if isinstance(y, dict) else []
            raise ValueError(
                f"stratify={choice!r} is not a task of y; tasks: {available or '(y is not a dict)'}."
            )
        return y[choice]

    def _save_folds(self, n):
        record = {
            "n_samples": n,
            "folds": [
                {"train": t.tolist(), "validation": v.tolist()} for t, v in self.fold_indices
            ],
        }
        path = os.path.join(self.project_dir, "folds.json")
        write_text(path, json.dumps(record))

    # ------------------------------------------------------------------------------
    # After the search

    def results_table(self):
        """One row per trial: trial, status, hyperparameters, fold scores, mean, std.

        Returns:
            ``pandas.DataFrame`` sorted best first (failed trials last).
        """
        return results_lib.results_table(self.oracle, self.n_folds)

    def save_results(self, path):
        """Write ``results_table()`` as CSV (written to a temporary name, then renamed)."""
        return results_lib.save_table(self.results_table(), path)

    def best_epochs(self, trial=None):
        """Epochs to retrain with: the median over folds of each fold's best epoch."""
        trial = trial or self.oracle.get_best_trials(1)[0]
        epochs = results_lib.fold_values(trial, "best_epoch", self.n_folds)
        return int(np.ceil(np.median(epochs)))

    def fit_best(self, x, y=None, *, epochs=None, hyperparameters=None, **fit_kwargs):
        """Build the best trial's model and train it on all of ``x, y``.

        Args:
            x, y: all training data (the union of the folds).
            epochs: default: the median over folds of the best trial's best epoch.
            hyperparameters: train these instead of the best trial's.
            **fit_kwargs: passed to the hypermodel's ``fit`` (``batch_size``, ...).

        Returns:
            the trained ``keras.Model``.
        """
        if hyperparameters is None:
            best = self.oracle.get_best_trials(1)
            if not best:
                raise ValueError("No completed trial: run search() first.")
            hyperparameters = best[0].hyperparameters
            if epochs is None:
                epochs = self.best_epochs(best[0])
        model = self._build_fold_model(hyperparameters)
        fit_kwargs["epochs"] = epochs or fit_kwargs.get("epochs", 1)
        self.hypermodel.fit(hyperparameters, model, x, y, **fit_kwargs)
        return model

    def load_model(self, trial):
        raise ValueError(
            "CVTuner trains one model per fold and keeps none of them; use "
            "tuner.fit_best(x, y) to train the best hyperparameters on all the data."
        )


# ----------------------------------------------------------------------------------
# Data helpers


def _leaves(data):
    return [leaf for leaf in keras.tree.flatten(data) if leaf is not None]


def _n_samples(x, y):
    if _is_dataset(x):
        raise TypeError(
            "CVTuner needs in-memory arrays to split into folds, not a dataset; load a "
            "TFRecord manifest with kerasbrain.tuning.load_arrays()."
        )
    leaves = _leaves(x) + _leaves(y)
    if not leaves:
        raise ValueError("CVTuner.search: no input arrays given.")
    sizes = {len(leaf) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"CVTuner.search: inputs and targets differ in length: {sorted(sizes)}.")
    return sizes.pop()


def _take(data, index):
    if data is None:
        return None
    return keras.tree.map_structure(
        lambda leaf: None if leaf is None else np.asarray(leaf)[index], data
    )


def _is_dataset(x):
    return type(x).__name__ in ("DatasetV2", "_PrefetchDataset", "_BatchDataset") or hasattr(
        x, "element_spec"
    )


# ----------------------------------------------------------------------------------
# Distributed search


def _is_chief():
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


def is_distributed_worker():
    """True in a worker process of a distributed search (KERASTUNER_TUNER_ID without
    "chief" and KERASTUNER_ORACLE_IP set): such a process reports to the chief and
    should not write the search's results itself."""
    return "KERASTUNER_ORACLE_IP" in os.environ and not _is_chief()


def _serve_chief(oracle, poll_seconds=0.5):
    """Serve the oracle to the workers over KerasTuner's gRPC protocol until every worker
    has been told to stop and no trial is running.

    The same servicer as ``keras_tuner``'s chief, with a shorter poll, so the chief
    returns as soon as the last worker finishes instead of up to 20 s later.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    ip_address = os.environ["KERASTUNER_ORACLE_IP"]
    port = os.environ["KERASTUNER_ORACLE_PORT"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{ip_address}:{port}") == 0:
        raise OSError(f"Cannot serve the tuning oracle on {ip_address}:{port} (port in use?).")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=2).wait()
