"""Compare transfer strategies over training-set sizes and resamples on a small dataset.

    python applications/learning_curve.py --model kerasbrain-demo/pretrained.keras      # synthetic
    python applications/learning_curve.py --model pretrained.keras --data ad/participants.tsv \\
        --task diagnosis:binary:AD --sizes 25 50 100 --resamples 10 --out curve/

For each size N and resample, N subjects are drawn (stratified) from the training pool,
every strategy is trained on them and scored on one fixed held-out set. Finished cells
are kept in OUT/cells, so an interrupted run resumes where it stopped. Writes
results.csv, summary.csv (median and IQR), tests.csv (paired Wilcoxon) and a PNG.
"""

import argparse

import _shared

import kerasbrain as kb
from kerasbrain import inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=_shared.DEMO_MODEL, help="pretrained .keras (default: the demo's)")
    _shared.add_data_arguments(parser, default_n=200)
    parser.add_argument("--task", nargs="+", default=["disease:binary"], metavar="NAME:KIND[:OPTION]")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80])
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--strategies", nargs="+", default=["scratch", "frozen", "full", "linear"],
                        choices=["scratch", "frozen", "partial", "full", "linear"])
    parser.add_argument("--test-size", type=int, default=80, help="held-out subjects")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", default="learning-curve", help="output folder")
    args = parser.parse_args(argv)

    pretrained = inference.Predictor.from_model(args.model)
    x, table = _shared.load_data(args, pretrained.preprocessor, sites=[7], age_range=(55, 85),
                                 disease_prevalence=0.5)
    pool, test = _shared.split(len(x), args.test_size / len(x), args.seed)
    if max(args.sizes) > len(pool):
        parser.error(f"--sizes up to {max(args.sizes)} but only {len(pool)} subjects outside the test set")
    tasks = _shared.parse_tasks(args.task)
    table = table.reset_index(drop=True)
    result = kb.transfer.learning_curve(
        (x[pool], table.iloc[pool].reset_index(drop=True)), tasks, sizes=args.sizes,
        resamples=args.resamples, strategies=args.strategies,
        test=(x[test], table.iloc[test].reset_index(drop=True)), backbone=pretrained.model,
        epochs=args.epochs, batch_size=args.batch_size, out_dir=args.out, seed=args.seed,
        finetune_kwargs={"learning_rate": args.learning_rate}, verbose=0)
    summary = kb.transfer.summarize(result)
    print(summary.pivot_table(index=["task", "metric", "size"], columns="strategy", values="median")
          .round(3).to_string())
    print(f"wrote {args.out}/results.csv, summary.csv, tests.csv, learning_curve.png")


if __name__ == "__main__":
    main()
