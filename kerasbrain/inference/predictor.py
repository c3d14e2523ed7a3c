"""Batch prediction on brain scans: inputs -> preprocessing -> model -> one row per scan.

    from kerasbrain import inference
    predictor = inference.Predictor.from_model("pretrained.keras")   # or .from_weights("ukb")
    scans = inference.collect_inputs(["participants.tsv"])           # files, folders, BIDS, tables
    table = predictor.predict(scans, age_column="age", qc_dir="qc/")

`Predictor` warns (`InputWarning`, `OutputRangeWarning`) about inputs that do not look like
the training data and predictions that pile up at the edge of the output range; see
`kerasbrain.inference.checks`.
"""

import os
import warnings

import numpy as np
import pandas as pd

from kerasbrain import progress as progress_lib
from kerasbrain.data.io import load_volume
from kerasbrain.data.preprocess import Preprocessor
from kerasbrain.inference.bias_correction import load_bias_correction
from kerasbrain.inference.checks import InputWarning, check_preprocessed, check_ranges, check_raw
from kerasbrain.inference.qc import save_qc_png
from kerasbrain.inference.saving import load_sidecar, sidecar_path


class Predictor:
    """A model, its preprocessing and the decoding of its outputs.

    Build with `Predictor.from_model` (a ``.keras`` file) or `Predictor.from_weights`
    (a registry name such as ``"ukb"``).
    """

    def __init__(self, model, preprocessor, decoders, info=None):
        self.model = model
        self.preprocessor = preprocessor
        self.decoders = decoders  # list of (output key or index, column name, function)
        self.info = info or {}

    @classmethod
    def from_model(cls, path, weights=None):
        """Load a ``.keras`` model; preprocessing from its sidecar, else from the preset of
        the weights it was built with (``model.preset``) or of ``weights``; outputs decoded
        by its tasks (a ``MultiTaskModel``) or its preset's."""
        from kerasbrain import models

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such model file")
        model = models.load_model(path, compile=False)
        preset = getattr(model, "preset", None)
        info = load_sidecar(path)
        if info is not None:
            preprocessor = Preprocessor.from_config(info["preprocessing"])
        elif weights is not None or preset is not None:
            preprocessor = Preprocessor.for_weights(weights or preset)
        else:
            raise ValueError(f"{path}: no preprocessing known (no {sidecar_path(path)}); pass "
                             "--weights NAME to use that weight set's preprocessing")
        if preset is not None and not getattr(model, "tasks", None):
            decoders, preset_info = _preset_decoders(preset)
            return cls(model, preprocessor, decoders, {**preset_info, **(info or {})})
        return cls(model, preprocessor, _task_decoders(model), info or {})

    @classmethod
    def from_weights(cls, name):
        """A published weight set from the registry (downloaded on first use); its preset
        gives the preprocessing and the tasks that decode its outputs."""
        from kerasbrain import applications
        from kerasbrain import weights as weights_lib

        spec = weights_lib.get_spec(name)
        model = applications.get(spec.architecture)(weights=name)
        return cls(model, Preprocessor.for_weights(name), *_preset_decoders(name))

    # -- the work ----------------------------------------------------------------------

    def preprocess(self, path):
        """Load and preprocess one scan; returns ``(array (x, y, z), Volume, warnings)``."""
        raw = load_volume(path)
        problems = check_raw(raw, self.preprocessor.orientation, self.info)
        volume = self.preprocessor.transform(raw)
        problems += check_preprocessed(volume.array, self.info)
        return volume.array, volume, problems

    def predict(self, scans, batch_size=4, qc_dir=None, age_column=None, bias_correction=None,
                progress=True):
        """Predict every scan of ``scans`` (a table from `collect_inputs`).

        Args:
            scans: DataFrame with ``id`` and ``path`` (other columns are kept).
            batch_size: scans per model call.
            qc_dir: folder for one PNG per scan (three central slices after preprocessing).
            age_column: column of chronological age; adds ``brain_age_gap``.
            bias_correction: a fitted ``kerasbrain.brainage.BiasCorrection`` (or the path
                of its JSON file); adds ``brain_age_corrected`` and ``brain_age_gap_corrected``.
            progress: show a progress bar.

        Returns:
            DataFrame: the input columns, then ``predicted_<task>`` per task (class
            probabilities as ``predicted_<task>_<k>``), then the brain-age columns, then
            ``input_warnings`` (the scan's `InputWarning` messages, ``""`` if none) and
            ``error`` (why an unreadable scan has no prediction, ``""`` if none; its
            predictions are NaN and it gets no QC image).
        """
        import keras

        if age_column is not None and age_column not in scans.columns:
            raise ValueError(f"age column {age_column!r} not in the inputs' columns {list(scans.columns)}")
        if qc_dir is not None:
            os.makedirs(qc_dir, exist_ok=True)
        bar = progress_lib.bar(len(scans), unit_name="scan") if progress else None
        outputs, notes, errors = [], [], []
        for start in range(0, len(scans), batch_size):
            rows = scans.iloc[start:start + batch_size]
            batch, volumes = [], []
            for scan_id, path in zip(rows["id"], rows["path"], strict=True):
                try:
                    array, volume, problems = self.preprocess(path)
                except Exception as error:  # noqa: BLE001 - one bad scan must not stop the rest
                    message = str(error) if str(path) in str(error) else f"{path}: {error}"
                    errors.append(message or f"{path}: {type(error).__name__}")
                    notes.append("")
                    continue
                for problem in problems:
                    warnings.warn(f"{path}: {problem}", InputWarning, stacklevel=2)
                notes.append("; ".join(problems))
                errors.append("")
                batch.append(array)
                volumes.append((scan_id, volume))
            if batch:
                x = np.stack(batch)[..., None]
                if len(x) < batch_size:  # one shape for every call: no retracing
                    x = np.concatenate([x, np.repeat(x[-1:], batch_size - len(x), axis=0)])
                output = self.model.predict_on_batch(x)
                count = len(batch)
                outputs.append(keras.tree.map_structure(lambda o: np.asarray(o)[:count], output))  # noqa: B023
                for scan_id, volume in volumes if qc_dir is not None else ():  # predicted: QC
                    save_qc_png(volume, os.path.join(qc_dir, f"{scan_id}.png"), title=str(scan_id))
            if bar is not None:
                bar.add(len(rows))
        result = scans.reset_index(drop=True).copy()
        ok = np.array([not e for e in errors], dtype=bool)
        for key, column, decode in self.decoders:
            values = None
            if outputs:
                values = np.asarray(decode(np.concatenate([_select(o, key) for o in outputs], axis=0)))
            full = np.full((len(result), *(() if values is None else values.shape[1:])), np.nan)
            if values is not None:
                full[ok] = values
            if full.ndim == 2:
                for k in range(full.shape[1]):
                    result[f"predicted_{column}_{k}"] = full[:, k]
            else:
                result[f"predicted_{column}"] = full
        check_ranges(result, self.info)
        self._brain_age(result, age_column, bias_correction)
        result["input_warnings"] = notes
        result["error"] = errors
        return result


    def _brain_age(self, result, age_column, bias_correction):
        task = self.info.get("brain_age_task")
        if age_column is None or task is None:
            return
        predicted = result[f"predicted_{task}"].to_numpy(dtype="float64")
        age = pd.to_numeric(result[age_column], errors="coerce").to_numpy(dtype="float64")
        result["brain_age_gap"] = predicted - age
        if bias_correction is not None:
            correction = load_bias_correction(bias_correction)
            corrected = np.asarray(correction.transform(predicted, age), dtype="float64")
            result["brain_age_corrected"] = corrected
            result["brain_age_gap_corrected"] = corrected - age


def _preset_decoders(name):
    """``(decoders, info)`` of a weight set: one column per task of its preset (a single
    brain-age head: ``brain_age``, with its output range), else ``prediction``."""
    from kerasbrain import applications
    from kerasbrain import tasks as tasks_lib
    from kerasbrain import weights as weights_lib

    spec = weights_lib.get_spec(name)
    tasks = [tasks_lib.from_spec(task) for task in spec.tasks]
    if len(tasks) > 1:  # one named output per task
        names = [task.name for task in tasks]
        info = {"brain_age_task": "age"} if "age" in names else {}
        return [(task.name, task.name, task.decode) for task in tasks], info
    column = "brain_age" if tasks and tasks[0].name == "brain_age" else "prediction"
    if spec.architecture == "sfcn":
        decode = lambda p: applications.sfcn.decode_predictions(p, weights=spec.key)  # noqa: E731
    elif tasks:
        decode = tasks[0].decode
    else:
        decode = lambda p: np.asarray(p, dtype="float64").reshape(len(p), -1)[:, 0]  # noqa: E731
    info = {}
    task = tasks[0] if tasks else None
    low_high = getattr(task, "bin_range", None) or getattr(task, "value_range", None) or (
        getattr(task, "output_range", None))
    if column == "brain_age":
        info["brain_age_task"] = column
        if low_high:
            info["output_ranges"] = {column: list(low_high)}
    return [(None, column, decode)], info


def _task_decoders(model):
    tasks = getattr(model, "tasks", None)
    if tasks:
        return [(task.name, task.name, task.decode) for task in tasks]
    names = list(model.output_names) if isinstance(model.output, dict | list) else [None]
    return [(name, name or "output", lambda p: np.asarray(p, dtype="float64").squeeze(-1)
             if np.shape(p)[-1] == 1 else np.asarray(p)) for name in names]


def _select(output, key):
    if isinstance(output, dict):
        return np.asarray(output[key])
    if isinstance(output, list | tuple):
        return np.asarray(output[0 if key is None else key])
    return np.asarray(output)
