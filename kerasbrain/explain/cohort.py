"""Maps for a table of scans: a NIfTI and a PNG overlay per scan, and the cohort average.

Used by ``kerasbrain explain`` and ``kerasbrain predict --explain``.
"""

import os

import keras
import numpy as np
import pandas as pd

from kerasbrain.explain import METHODS, figures, space
from kerasbrain.explain.targets import output_tensors

SPACES = ("model", "scan", "native")


def method_options(method, steps=None, baseline=None, layer=None, rules=None, patch=None,
                   variant=None):
    """Keyword arguments of ``method`` from command-line style options (None: default)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    options = {"ig": {"steps": steps, "baseline": baseline}, "smoothgrad": {"samples": steps},
               "gradcam": {"layer": layer, "variant": variant}, "lrp": {"rules": rules}, "occlusion": {"patch": patch}}
    return {k: v for k, v in options[method].items() if v is not None}


def decode_for_weights(name):
    """The decoding of a registry weight set's output: bin centres of a soft-classification
    head (expected age), else None (the output as it is)."""
    from kerasbrain import weights as weights_lib
    from kerasbrain.applications.sfcn import bin_centres

    config = weights_lib.get_spec(name).config
    if config.get("head") == "soft_classification":
        return bin_centres(config["bin_range"], config.get("classes", 40))
    return None


def explain_scans(predictor, scans, out_dir, method="ig", space_name="scan", output=None,
                  decode=None, options=None, progress=True):
    """Write the ``method`` map of every scan of ``scans`` under ``out_dir``.

    Args:
        predictor: a `kerasbrain.inference.Predictor` (model and preprocessing).
        scans: DataFrame with ``id`` and ``path`` (from ``inference.collect_inputs``).
        out_dir: folder for ``<id>_<method>.nii.gz``, ``<id>_<method>.png`` and
            ``average_<method>.nii.gz`` / ``.png``.
        method: one of ``kerasbrain.explain.METHODS``.
        space_name: ``"model"`` (the model's input grid, with its world affine), ``"scan"``
            (the grid of the input file, preprocessing undone) or ``"native"`` (the native
            scan through the saved registration transform).
        output, decode: what to explain (see `kerasbrain.explain.resolve_target`).
        options: keyword arguments of the method (steps, layer, rules, ...).

    Returns:
        DataFrame: ``id``, ``map``, ``overlay`` (file names in ``out_dir``) and
        ``attribution_sum`` (the sum of the map on the model grid).
    """
    if space_name not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space_name!r}")
    function = METHODS[method]
    model = predictor.model
    if output is None and len(output_tensors(model)) > 1:
        output = predictor.info.get("brain_age_task") or next(
            (key for key, _, _ in predictor.decoders if key is not None), None)
    os.makedirs(out_dir, exist_ok=True)
    bar = keras.utils.Progbar(len(scans), unit_name="scan") if progress else None
    rows, total, first = [], None, None
    for scan_id, path in zip(scans["id"], scans["path"], strict=True):
        if space_name == "native":
            space.load_transform(path)  # fail before the work when there is none
        array, volume, _ = predictor.preprocess(path)
        map_ = function(model, array, output=output, decode=decode, **(options or {}))[0]
        if space_name == "model":
            image = space.model_space(map_, volume)
        elif space_name == "scan":
            image = space.to_scan(map_, path, predictor.preprocessor)
        else:
            image = space.to_native(map_, path, predictor.preprocessor)
        name = f"{scan_id}_{method}"
        space.save_image(image, os.path.join(out_dir, name + ".nii.gz"))
        figures.save_overlay(volume, map_, os.path.join(out_dir, name + ".png"),
                             title=f"{scan_id}: {method}")
        if first is None:
            first, total, mean_volume = volume, np.zeros_like(map_, dtype="float64"), np.zeros(volume.shape)
        if map_.shape == total.shape:
            total += map_
            mean_volume += volume.array
        rows.append({"id": scan_id, "map": name + ".nii.gz", "overlay": name + ".png",
                     "attribution_sum": float(map_.sum())})
        if bar is not None:
            bar.add(1)
    count = len(rows)
    average = (total / count).astype("float32")
    space.save_image(space.model_space(average, first), os.path.join(out_dir, f"average_{method}.nii.gz"))
    from kerasbrain.data.io import Volume

    figures.save_overlay(Volume(mean_volume / count, first.affine), average,
                         os.path.join(out_dir, f"average_{method}.png"),
                         title=f"average of {count} scan(s): {method}")
    return pd.DataFrame(rows)
