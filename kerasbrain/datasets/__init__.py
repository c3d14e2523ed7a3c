"""Datasets: synthetic cohorts with known effects (the embedded default) and loaders
for tabular / BIDS datasets of real scans."""

from kerasbrain.datasets import synthetic
from kerasbrain.datasets.synthetic import make_cohort

__all__ = ["make_cohort", "synthetic"]
