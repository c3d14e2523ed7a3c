"""Batch prediction on brain scans: inputs -> preprocessing -> model -> one row per scan.

    from kerasbrain import inference
    predictor = inference.Predictor.from_model("pretrained.keras")   # or .from_weights("ukb")
    scans = inference.collect_inputs(["participants.tsv"])           # files, folders, BIDS, tables
    table = predictor.predict(scans, age_column="age", qc_dir="qc/")

One module per job: `kerasbrain.data.inputs` (finding the scans), `saving` (a ``.keras``
model with its preprocessing sidecar), `predictor` (`Predictor`), `checks` (does an input
look like the training data), `bias_correction` (a fitted correction as JSON), `qc` (PNGs).
"""

from kerasbrain.data.inputs import TABLE_SUFFIXES, collect_inputs, merge_table
from kerasbrain.inference.bias_correction import load_bias_correction, save_bias_correction
from kerasbrain.inference.checks import TEMPLATE_SIZE, InputWarning, OutputRangeWarning
from kerasbrain.inference.predictor import Predictor
from kerasbrain.inference.qc import save_qc_png
from kerasbrain.inference.saving import SIDECAR_FORMAT, load_sidecar, save_model, sidecar_path

__all__ = [
    "SIDECAR_FORMAT",
    "TABLE_SUFFIXES",
    "TEMPLATE_SIZE",
    "InputWarning",
    "OutputRangeWarning",
    "Predictor",
    "collect_inputs",
    "load_bias_correction",
    "load_sidecar",
    "merge_table",
    "save_bias_correction",
    "save_model",
    "save_qc_png",
    "sidecar_path",
]
