"""Fine-tune a pretrained model on a small dataset and report held-out metrics.

    python applications/finetune.py --model kerasbrain-demo/pretrained.keras          # synthetic
    python applications/finetune.py --model pretrained.keras --data adni/participants.tsv \\
        --task diagnosis:binary:AD --strategy full --two-phase 5 --out ad.keras

Strategies (kerasbrain.transfer.finetune): scratch, frozen (linear probe on frozen
features, BatchNorm statistics untouched), partial (last --blocks blocks learn), full.
"""

import argparse

import _shared
import keras

import kerasbrain as kb
from kerasbrain import inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=_shared.DEMO_MODEL, help="pretrained .keras (default: the demo's)")
    _shared.add_data_arguments(parser, default_n=120)
    parser.add_argument("--task", nargs="+", default=["disease:binary"], metavar="NAME:KIND[:OPTION]",
                        help="task(s) to fine-tune on (default disease:binary)")
    parser.add_argument("--strategy", choices=kb.transfer.STRATEGIES, default="full")
    parser.add_argument("--blocks", type=int, default=2, help="trainable blocks for --strategy partial")
    parser.add_argument("--two-phase", type=int, default=0, metavar="EPOCHS",
                        help="with full: train the new heads alone for EPOCHS first")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--out", default="finetuned.keras")
    args = parser.parse_args(argv)

    pretrained = inference.Predictor.from_model(args.model)
    x, table = _shared.load_data(args, pretrained.preprocessor, sites=[7], age_range=(55, 85),
                                 disease_prevalence=0.5)
    tasks = _shared.parse_tasks(args.task)
    train, test = _shared.split(len(x), args.test_fraction, args.seed)
    keras.utils.set_random_seed(args.seed)
    options = {"trainable_blocks": args.blocks} if args.strategy == "partial" else {}
    if args.two_phase:
        options["two_phase"] = args.two_phase
    model = kb.transfer.finetune(pretrained.model, tasks, strategy=args.strategy,
                                 learning_rate=args.learning_rate, **options)
    y, w = kb.tasks.encode_labels(tasks, table.iloc[train])
    model.fit(x[train], y, sample_weight=w, epochs=args.epochs, batch_size=args.batch_size, verbose=2)

    output = model.predict(x[test], verbose=0)
    for task in tasks:
        values = output[task.name]
        values = values.reshape(len(values), -1)[:, 0] if task.kind == "binary" else task.decode(values)
        scores = kb.transfer.score(task, values, table[task.name].to_numpy(dtype=object)[test])
        print(f"{task.name} on {len(test)} held-out scans ({args.strategy}): "
              + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    inference.save_model(model, args.out, pretrained.preprocessor, volumes=x[train][:64, ..., 0],
                            description=f"{args.strategy} fine-tuning of {args.model} on {args.task}")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
