"""Brain age on a dataset: predict, fit an age-bias correction on a validation half,
report corrected and uncorrected errors, plot, and save the correction for later use.

    python applications/brain_age.py --model kerasbrain-demo/pretrained.keras         # synthetic
    python applications/brain_age.py --weights brain-age-2022 --data ixi/participants.tsv --qc qc/

The correction (Cole 2018 by default; Beheshti 2019, Smith 2019) is fitted on the
validation half and applied to the other half; the uncorrected MAE is always reported,
since correction inflates R^2. Re-use it with
``kerasbrain predict ... --bias-correction OUT/bias_correction.json``.
"""

import argparse
import os
import tempfile

import _shared
import numpy as np

import kerasbrain as kb
from kerasbrain import inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a .keras model with an age output (default: the demo's)")
    source.add_argument("--weights", help="registry weights, e.g. brain-age-2022 (see kerasbrain weights list)")
    _shared.add_data_arguments(parser, default_n=120)
    parser.add_argument("--age-column", default="age")
    parser.add_argument("--method", choices=["cole", "beheshti", "smith"], default="cole")
    parser.add_argument("--validation-fraction", type=float, default=0.5)
    parser.add_argument("--qc", metavar="DIR", help="QC PNG per scan")
    parser.add_argument("--out", default="brain-age", help="output folder")
    args = parser.parse_args(argv)

    if args.weights:
        predictor = inference.Predictor.from_weights(args.weights)
    else:
        predictor = inference.Predictor.from_model(args.model or _shared.DEMO_MODEL)
    if not predictor.info.get("brain_age_task"):
        parser.error("the model has no age output (brain_age_task in its sidecar)")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            scans = inference.collect_inputs(args.data)
        else:  # synthetic scans from two sites the model has not seen, written as NIfTI
            print(f"no --data: writing {args.n} synthetic scans from unseen sites 7 and 8")
            grid = predictor.preprocessor.shape or tuple(args.shape)
            kb.datasets.make_cohort(args.n, grid, sites=[7, 8], seed=args.seed, out_dir=tmp)
            scans = inference.collect_inputs(tmp)
        result = predictor.predict(scans, age_column=args.age_column, qc_dir=args.qc)

    task = predictor.info["brain_age_task"]
    predicted = result[f"predicted_{task}"].to_numpy(float)
    age = result[args.age_column].to_numpy(float)
    validation, test = _shared.split(len(result), 1 - args.validation_fraction, args.seed)
    correction = kb.brainage.BiasCorrection(args.method).fit(predicted[validation], age[validation])
    corrected = correction.transform(predicted, age)
    result["brain_age_corrected"] = corrected
    result["brain_age_gap_corrected"] = corrected - age
    result["split"] = np.where(np.isin(np.arange(len(result)), validation), "validation", "test")
    scores = kb.brainage.metrics(predicted[test], age[test], corrected[test])
    print(f"test half ({len(test)} scans): " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))

    inference.save_bias_correction(correction, os.path.join(args.out, "bias_correction.json"))
    result.to_csv(os.path.join(args.out, "brain_age.csv"), index=False, float_format="%.4g")
    plot(age, predicted, corrected, test, os.path.join(args.out, "brain_age.png"), args.method)
    print(f"wrote {args.out}/brain_age.csv, bias_correction.json, brain_age.png")


def plot(age, predicted, corrected, test, path, method):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, values, title in ((axes[0], predicted, "uncorrected"), (axes[1], corrected, f"{method} corrected")):
        ax.scatter(age[test], values[test], s=10, alpha=0.7)
        low, high = age.min() - 3, age.max() + 3
        ax.plot([low, high], [low, high], "k--", lw=1)
        mae = np.mean(np.abs(values[test] - age[test]))
        ax.set_title(f"{title}: MAE {mae:.2f} y (test half)", fontsize=9)
        ax.set_xlabel("chronological age (years)")
    axes[0].set_ylabel("brain age (years)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
