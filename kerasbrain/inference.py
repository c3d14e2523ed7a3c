"""Batch prediction on brain scans: inputs -> preprocessing -> model -> one row per scan.

    from kerasbrain import inference
    predictor = inference.Predictor.from_model("pretrained.keras")   # or .from_weights("ukb")
    scans = inference.collect_inputs(["participants.tsv"])           # files, folders, BIDS, tables
    table = predictor.predict(scans, age_column="age", qc_dir="qc/")

A model saved with `save_model` carries its preprocessing in a sidecar JSON next to the
``.keras`` file (``model.keras`` -> ``model.json``): the `Preprocessor` config, the output
ranges, and what the training inputs looked like (field of view, intensity percentiles,
a 16^3 mean template and how closely training scans match it), which `Predictor` uses to
warn about inputs that do not look like the training data (wrong field of view, permuted
or flipped axes, intensity range, a scan unlike any training scan) and
about predictions that pile up at the edge of the output range.
"""

import itertools
import json
import os
import tempfile
import warnings

import numpy as np
import pandas as pd

from kerasbrain import progress as progress_lib
from kerasbrain.data.io import SUFFIXES, load_volume
from kerasbrain.data.preprocess import Preprocessor, reorient

SIDECAR_FORMAT = "kerasbrain-model/1"
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
TEMPLATE_SIZE = 16


class InputWarning(UserWarning):
    """An input scan does not look like what the model was trained on."""


class OutputRangeWarning(UserWarning):
    """Predictions pile up at the edge of a task's output range."""


# ---------------------------------------------------------------------------------------
# Inputs


def collect_inputs(inputs, path_column="path"):
    """Turn NIfTI/MGZ files, folders, BIDS datasets and tables into one table of scans.

    Args:
        inputs: paths. A file with an image suffix is one scan; a ``.csv``/``.tsv`` is a
            table with a ``path_column`` (or a BIDS ``participants.tsv``); a folder holding
            ``participants.tsv`` is a BIDS/table dataset; any other folder is searched
            recursively for images.
        path_column: column of image paths in tables.

    Returns:
        DataFrame with ``id``, ``path`` and the tables' other columns.

    Raises:
        FileNotFoundError: an input does not exist. ValueError: no scans found, or an
        id appears twice.
    """
    from kerasbrain.data.table import read_table

    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    frames = []
    for item in inputs:
        item = os.fspath(item)
        if not os.path.exists(item):
            raise FileNotFoundError(f"{item}: no such file or folder")
        participants = os.path.join(item, "participants.tsv")
        if os.path.isdir(item) and os.path.exists(participants):
            frames.append(read_table(participants, path_column=path_column).frame)
        elif os.path.isdir(item):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(item)
                for name in names
                if name.endswith(SUFFIXES) and not name.startswith(".")
            )
            frames.append(pd.DataFrame({"id": [_scan_id(p) for p in found], "path": found}))
        elif item.endswith(TABLE_SUFFIXES):
            frames.append(read_table(item, path_column=path_column).frame)
        elif item.endswith(SUFFIXES):
            frames.append(pd.DataFrame({"id": [_scan_id(item)], "path": [item]}))
        else:
            raise ValueError(f"{item}: not an image ({', '.join(SUFFIXES)}), a table "
                             f"({', '.join(TABLE_SUFFIXES)}) or a folder")
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if table.empty:
        raise ValueError(f"no scans found in {', '.join(map(str, inputs))}")
    repeated = table["id"][table["id"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"scan ids appear more than once: {repeated[:5]}")
    return table


def _scan_id(path):
    name = os.path.basename(path)
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def merge_table(scans, table, id_column=None):
    """Add the columns of ``table`` (CSV/TSV path or DataFrame) to ``scans`` by id.

    A table id matches a scan id that equals it or starts with ``<id>_`` (BIDS
    file names such as ``sub-01_T1w``).
    """
    if not isinstance(table, pd.DataFrame):
        sep = "\t" if str(table).endswith((".tsv", ".tsv.gz")) else ","
        table = pd.read_csv(table, sep=sep, na_values=["n/a", ""])
    id_column = id_column or next((c for c in ("participant_id", "id") if c in table.columns), None)
    if id_column is None:
        raise ValueError(f"--table needs a participant_id or id column; columns: {list(table.columns)}")
    lookup = {str(k): i for i, k in enumerate(table[id_column])}
    rows = []
    for scan_id in scans["id"].astype(str):
        key = scan_id if scan_id in lookup else scan_id.split("_")[0]
        rows.append(lookup.get(key))
    extra = table.drop(columns=[id_column]).reindex(rows).reset_index(drop=True)
    extra = extra[[c for c in extra.columns if c not in scans.columns]]
    return pd.concat([scans.reset_index(drop=True), extra], axis=1)


# ---------------------------------------------------------------------------------------
# Saving a model with its preprocessing


def sidecar_path(model_path):
    """``model.keras`` -> ``model.json``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".json"


def save_model(model, path, preprocessor, volumes=None, output_ranges=None, brain_age_task=None,
               description=None):
    """Save ``model`` as ``.keras`` plus the sidecar JSON that `Predictor` reads.

    Args:
        model: a Keras model.
        path: ``.keras`` file to write (atomically, with the sidecar).
        preprocessor: the `kerasbrain.data.Preprocessor` that produced the training inputs.
        volumes: optional sample of preprocessed training volumes ``(n, x, y, z[, 1])``;
            stores their intensity percentiles and a 16^3 mean template for input checks.
        output_ranges: ``{task: (low, high)}`` of plausible outputs (e.g. the training
            age range), for the edge-of-range warning.
        brain_age_task: the task whose output is an age in years (for the brain-age gap).
        description: free text (what the model was trained on).
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: the model file must end in .keras")
    info = {
        "format": SIDECAR_FORMAT,
        "preprocessing": preprocessor.get_config(),
        "output_ranges": {k: [float(v) for v in r] for k, r in (output_ranges or {}).items()},
        "brain_age_task": brain_age_task,
        "description": description,
    }
    if preprocessor.spacing is not None and preprocessor.shape is not None:
        info["field_of_view_mm"] = [s * n for s, n in zip(preprocessor.spacing, preprocessor.shape, strict=True)]
    if volumes is not None:
        volumes = np.asarray(volumes, dtype="float32").reshape(len(volumes), *np.shape(volumes)[1:4])
        info["intensity_percentiles"] = [float(v) for v in np.percentile(volumes, [1, 99])]
        small = [_small(v) for v in volumes]
        template = np.mean(small, axis=0)
        info["template"] = np.round(template, 4).ravel().tolist()
        if len(small) >= 5:  # how closely training inputs resemble their mean
            r = [_correlation(v, template) for v in small]
            info["template_correlation"] = [float(v) for v in np.percentile(r, [1, 50])]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp_model = os.path.join(directory, f".{os.path.basename(path)}.part.keras")
    model.save(tmp_model)
    _write_json(info, sidecar_path(path))
    os.replace(tmp_model, path)


def _write_json(data, path):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".json.part")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _small(volume, size=TEMPLATE_SIZE):
    """Down-sample ``(x, y, z)`` to ``size^3`` (trilinear, after block averaging)."""
    from scipy import ndimage

    volume = np.asarray(volume, dtype="float32")
    factors = [size / n for n in volume.shape]
    sigma = [max(0.0, 0.5 / f - 0.5) for f in factors]
    return ndimage.zoom(ndimage.gaussian_filter(volume, sigma), factors, order=1)[:size, :size, :size]


# ---------------------------------------------------------------------------------------
# Prediction


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
        """Load a ``.keras`` model; preprocessing from its sidecar, else the ``weights`` preset."""
        from kerasbrain import models

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such model file")
        model = models.load_model(path, compile=False)
        info = {}
        if os.path.exists(sidecar_path(path)):
            with open(sidecar_path(path)) as f:
                info = json.load(f)
            preprocessor = Preprocessor.from_config(info["preprocessing"])
        elif weights is not None:
            preprocessor = Preprocessor.for_weights(weights)
        else:
            raise ValueError(f"{path}: no preprocessing known (no {sidecar_path(path)}); pass "
                             "--weights NAME to use that weight set's preprocessing")
        return cls(model, preprocessor, _task_decoders(model), info)

    @classmethod
    def from_weights(cls, name):
        """A published weight set from the registry (downloaded on first use)."""
        from kerasbrain import applications
        from kerasbrain import weights as weights_lib

        spec = weights_lib.get_spec(name)
        constructor = _constructor(applications, spec.architecture)
        model = constructor(weights=name)
        config = spec.config
        head = config.get("head")
        column = "brain_age" if "age" in spec.trained_for.lower() and head != "binary" else "prediction"
        if spec.architecture == "sfcn":
            decode = lambda p: applications.sfcn.decode_predictions(p, weights=name)  # noqa: E731
        else:
            decode = lambda p: np.asarray(p, dtype="float64").reshape(len(p), -1)[:, 0]  # noqa: E731
        info = {}
        low_high = config.get("bin_range") or config.get("output_range")
        if low_high and head != "binary":
            info["output_ranges"] = {column: list(low_high)}
        if column == "brain_age":
            info["brain_age_task"] = column
        return cls(model, Preprocessor.for_weights(name), [(None, column, decode)], info)

    # -- the work ----------------------------------------------------------------------

    def preprocess(self, path):
        """Load and preprocess one scan; returns ``(array (x, y, z), Volume, warnings)``."""
        raw = load_volume(path)
        problems = self._check_raw(raw)
        volume = self.preprocessor.transform(raw)
        problems += self._check_preprocessed(volume.array)
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
        self._check_ranges(result)
        self._brain_age(result, age_column, bias_correction)
        result["input_warnings"] = notes
        result["error"] = errors
        return result

    # -- checks ------------------------------------------------------------------------

    def _check_raw(self, raw):
        problems = []
        codes = self.preprocessor.orientation
        canonical = reorient(raw, codes)
        fov = np.asarray(canonical.shape) * np.asarray(canonical.spacing)
        expected = self.info.get("field_of_view_mm")
        if expected is not None:
            ratio = fov / np.asarray(expected)
            if np.any(ratio < 0.6) or np.any(ratio > 1.67):
                problems.append(
                    f"field of view {np.round(fov).astype(int).tolist()} mm ({codes} axes) differs "
                    f"from the training inputs' {np.round(expected).astype(int).tolist()} mm: wrong "
                    "shape or voxel size in the header, or not a whole head?")
        affine = raw.affine[:3, :3] / np.asarray(raw.spacing)
        if np.max(np.abs(np.abs(affine) - np.round(np.abs(affine)))) > 0.1:
            problems.append("oblique affine: reorientation only snaps to the closest axes")
        return problems

    def _check_preprocessed(self, array):
        problems = []
        percentiles = self.info.get("intensity_percentiles")
        if percentiles is not None:
            high = float(np.percentile(array, 99))
            if not 0.5 * percentiles[1] <= high <= 2.0 * percentiles[1]:
                problems.append(
                    f"intensity 99th percentile {high:.3g} after preprocessing; the training inputs "
                    f"had {percentiles[1]:.3g}")
        template = self.info.get("template")
        if template is not None:
            template = np.asarray(template, dtype="float32").reshape((TEMPLATE_SIZE,) * 3)
            best, best_r, identity_r = _best_orientation(_small(array), template)
            gain = best_r - identity_r  # a left-right flip of a symmetric head gains ~0
            floor = self.info.get("template_correlation", [None])[0]
            if best != "identity" and gain > 0.02 and gain > 0.4 * (1.0 - identity_r):
                problems.append(
                    f"looks {best} relative to the training inputs (correlation with the mean "
                    f"training image {identity_r:.2f} as stored, {best_r:.2f} after that change): "
                    "check the orientation in the header")
            elif floor is not None and identity_r < floor - 0.1:
                problems.append(
                    f"does not look like the training inputs: correlation with their mean image "
                    f"{identity_r:.2f}, where training scans had {floor:.2f} or more (other contrast, "
                    "head coverage, skull stripping or registration?); predictions are not "
                    "meaningful until the scan is prepared like the training data")
        return problems

    def _check_ranges(self, result):
        for column, (low, high) in self.info.get("output_ranges", {}).items():
            name = f"predicted_{column}"
            if name not in result or len(result) < 1:
                continue
            values = result[name].to_numpy(dtype="float64")
            margin = 0.02 * (high - low)
            at_edge = np.mean((values <= low + margin) | (values >= high - margin))
            if at_edge >= 0.5:
                warnings.warn(
                    f"{at_edge:.0%} of {name} lie at the edge of the output range [{low:g}, {high:g}]: "
                    "the inputs may be out of the model's domain (preprocessing, intensity, age range)",
                    OutputRangeWarning, stacklevel=3)

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


_CORRECTION_STATE = ("slope_", "intercept_", "coef_", "age_mean_")


def save_bias_correction(correction, path):
    """Write a fitted ``kerasbrain.brainage.BiasCorrection`` as JSON (for ``--bias-correction``)."""
    state = {"method": correction.method, "degree": correction.degree}
    for name in _CORRECTION_STATE:
        if hasattr(correction, name):
            state[name] = np.asarray(getattr(correction, name)).tolist()
    _write_json(state, os.fspath(path))


def load_bias_correction(source):
    """A fitted ``kerasbrain.brainage.BiasCorrection`` from itself or its JSON file."""
    from kerasbrain import brainage

    if not isinstance(source, str | os.PathLike):
        return source
    with open(source) as f:
        state = json.load(f)
    try:
        correction = brainage.BiasCorrection(method=state["method"], degree=state.get("degree", 1))
    except KeyError:
        raise ValueError(f"{source}: not a bias-correction file (no 'method')") from None
    fitted = [name for name in _CORRECTION_STATE if name in state]
    if not fitted:
        raise ValueError(f"{source}: the bias correction is not fitted")
    for name in fitted:
        value = state[name]
        setattr(correction, name, np.asarray(value) if isinstance(value, list) else float(value))
    return correction


def _constructor(applications, architecture):
    names = {name.lower(): name for name in dir(applications) if name[:1].isupper()}
    if architecture.lower() not in names:
        raise ValueError(f"no kerasbrain.applications constructor for architecture {architecture!r}")
    return getattr(applications, names[architecture.lower()])


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


_ORIENTATION_CHANGES = None


def _orientation_changes():
    """Name -> function for every axis permutation and flip of a cube (48, identity first)."""
    global _ORIENTATION_CHANGES
    if _ORIENTATION_CHANGES is None:
        changes = {}
        for perm in itertools.permutations(range(3)):
            for flips in itertools.product((False, True), repeat=3):
                parts = []
                if perm != (0, 1, 2):
                    parts.append(f"axes permuted to {perm}")
                parts += [f"flipped along axis {a}" for a in range(3) if flips[a]]

                def change(v, perm=perm, flips=flips):
                    v = np.transpose(v, perm)
                    return v[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]

                changes[", ".join(parts) or "identity"] = change
        _ORIENTATION_CHANGES = changes
    return _ORIENTATION_CHANGES


def _correlation(a, b):
    """Pearson correlation of two arrays of the same shape."""
    a = (a - a.mean()) / (a.std() + 1e-8)
    return float(np.mean(a * (b - b.mean()) / (b.std() + 1e-8)))


def _best_orientation(small, template):
    """Which axis permutation/flip of ``small`` correlates best with ``template``."""
    scores = {name: _correlation(change(small), template) for name, change in _orientation_changes().items()}
    best = max(scores, key=scores.get)
    return best, scores[best], scores["identity"]


# ---------------------------------------------------------------------------------------
# Quality-control images


def save_qc_png(volume, path, title=None):
    """Write the three central slices of a preprocessed `Volume` as a PNG.

    Slices are shown in RAS+ display convention (the subject's right on the right of the
    axial and coronal views, superior up), with the axis letters on the edges, so an
    orientation or registration mistake is visible at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ras = reorient(volume, "RAS").array
    cx, cy, cz = (s // 2 for s in ras.shape)
    views = [
        ("sagittal", ras[cx, :, :].T, ("P", "A", "I", "S")),
        ("coronal", ras[:, cy, :].T, ("L", "R", "I", "S")),
        ("axial", ras[:, :, cz].T, ("L", "R", "P", "A")),
    ]
    low, high = np.percentile(ras, [0.5, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (name, image, (left, right, bottom, top)) in zip(axes, views, strict=True):
        ax.imshow(image, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for x, y, text in ((0.02, 0.5, left), (0.98, 0.5, right), (0.5, 0.02, bottom), (0.5, 0.98, top)):
            ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=9,
                    ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path + ".part.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
