"""Tune fine-tuning hyperparameters with KerasTuner, each trial scored by k-fold CV.

    python applications/tune.py --model kerasbrain-demo/pretrained.keras              # synthetic
    python applications/tune.py --model pretrained.keras --data ad/participants.tsv \\
        --task diagnosis:binary:AD --search bayesian --trials 20 --folds 5

The search space (kerasbrain.tuning.FineTuningHyperModel): strategy (frozen, partial,
full, two-phase), learning rates, dropout, weight decay, head width, augmentation.
Folds are stratified on the first classification task and fixed for every trial.
"""

import argparse

import _shared
import numpy as np

import kerasbrain as kb
from kerasbrain import inference
from kerasbrain.transfer import heads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=_shared.DEMO_MODEL, help="pretrained .keras (default: the demo's)")
    _shared.add_data_arguments(parser, default_n=80)
    parser.add_argument("--task", nargs="+", default=["disease:binary"], metavar="NAME:KIND[:OPTION]")
    parser.add_argument("--search", choices=["random", "bayesian", "hyperband", "grid"], default="random")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--objective", help="e.g. val_disease_auc (default: the first task's main metric)")
    parser.add_argument("--out", default="tuning", help="tuner folder (re-running resumes)")
    args = parser.parse_args(argv)

    pretrained = inference.Predictor.from_model(args.model)
    x, table = _shared.load_data(args, pretrained.preprocessor, sites=[7], age_range=(55, 85),
                                 disease_prevalence=0.5)
    tasks = _shared.parse_tasks(args.task)
    y = {}
    for task in tasks:  # encoded targets, NaN where the label is missing
        targets, weights = task.encode(table[task.name].to_numpy(dtype=object))
        y[task.name] = np.where(weights > 0, targets, np.nan).astype("float32")
    first = tasks[0]
    objective = args.objective or f"val_{first.name}_{'auc' if first.kind == 'binary' else 'mae'}"

    backbone, _, _ = heads.split(pretrained.model)  # the shared trunk, without the old heads
    hypermodel = kb.tuning.FineTuningHyperModel(backbone, tasks, seed=args.seed)
    tuner = kb.tuning.CVTuner(hypermodel, args.search, objective=objective, max_trials=args.trials,
                              folds=args.folds, directory=args.out, project_name="finetune",
                              seed=args.seed)
    tuner.search(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    print(tuner.results_table().round(4).to_string())
    tuner.save_results(f"{args.out}/results.csv")
    best = tuner.get_best_hyperparameters()[0]
    print(f"best ({objective}): {best.values}\nwrote {args.out}/results.csv")


if __name__ == "__main__":
    main()
