"""Integrated gradients' accuracy against the number of gradients on a trained classifier.

The model, cohort and scans of `explain_synthetic.py` (40³, disease in the hippocampi and
temporal horns), blur baseline. For the probability and the logit, each quadrature rule and
number of gradients, prints the worst and median completeness error |sum - (f(x) - f(x0))| /
|f(x) - f(x0)|, and the median map error sum|m - m_ref| / sum|m_ref| against a reference
map from `--reference` midpoint gradients.

    KERAS_BACKEND=tensorflow PYTHONPATH=. python benchmarks/explain_ig_steps.py
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explain_synthetic as bench  # noqa: E402

from kerasbrain import explain  # noqa: E402
from kerasbrain.datasets import synthetic  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--rules", nargs="+", default=["adaptive", "midpoint"])
    parser.add_argument("--reference", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=14)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    volumes, table = synthetic.make_cohort(160, shape=(40,) * 3, sites=[0], seed=0, age_range=(60, 80),
                                           disease_prevalence=0.5, disease_years=0.0)
    x, y = bench.normalise(volumes), table["disease"].to_numpy("float32")
    model, logit_model = bench.classifier(40)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["auc"])
    model.fit(x[:120], y[:120], batch_size=8, epochs=args.epochs, verbose=0)
    print(f"test AUC {model.evaluate(x[120:], y[120:], verbose=0)[1]:.3f}", flush=True)
    xe = x[np.flatnonzero(y[120:] == 1)[:12] + 120]
    base = explain.make_baseline(xe, "blur")
    for name, m in (("probability", model), ("logit", logit_model)):
        delta = m.predict(xe, verbose=0)[:, 0] - m.predict(base, verbose=0)[:, 0]
        reference = explain.integrated_gradients(m, xe, baseline="blur", steps=args.reference,
                                                 rule="midpoint", batch_size=16)
        for rule in args.rules:
            for steps in args.steps:
                start = time.time()
                ig = explain.integrated_gradients(m, xe, baseline="blur", steps=steps, rule=rule)
                error = np.abs(ig.sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
                map_error = np.abs(ig - reference).sum(axis=(1, 2, 3)) / np.abs(reference).sum(axis=(1, 2, 3))
                print(f"{name:11s} {rule:9s} steps={steps:4d}: completeness worst {error.max():.2%}, "
                      f"median {np.median(error):.2%}; map error median {np.median(map_error):.2%} "
                      f"({time.time() - start:.0f} s)", flush=True)

if __name__ == "__main__":
    main()
