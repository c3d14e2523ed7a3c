"""Datasets: synthetic cohorts with known effects (the embedded default) and loaders
for tabular / BIDS datasets of real scans."""

from kerasbrain.datasets import synthetic
from kerasbrain.datasets.synthetic import make_cohort
from kerasbrain.datasets.tabular import load_dataset

__all__ = ["load_dataset", "make_cohort", "synthetic"]
