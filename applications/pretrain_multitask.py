"""Pretrain a multi-task SFCN on a large dataset where many labels are missing.

    python applications/pretrain_multitask.py --out pretrained.keras            # synthetic
    python applications/pretrain_multitask.py --data ukb/participants.tsv \\
        --tasks age:regression sex:binary:M bmi:regression --shape 64 64 64 --out ukb.keras

Each task reads the table column of its name; empty cells are missing labels and
contribute nothing to that task's loss. The model is saved with its preprocessing
(``.json`` next to it), ready for ``kerasbrain predict --model`` and the other recipes.
"""

import argparse

import _shared
import keras
import numpy as np

import kerasbrain as kb
from kerasbrain import inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _shared.add_data_arguments(parser, default_n=400)
    parser.add_argument("--tasks", nargs="+", metavar="NAME:KIND[:OPTION]",
                        default=["age:regression", "sex:binary:M", "ventricle_volume_ml:regression"],
                        help="tasks: regression, binary[:POSITIVE], categorical[:N]")
    parser.add_argument("--filters", type=int, nargs=6, default=(8, 16, 32, 32, 32, 32),
                        help="SFCN widths (published: 32 64 128 256 256 64)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--loss-weights", choices=["fixed", "uncertainty"], default="fixed",
                        help="fixed task weights or learned uncertainty weighting (Kendall 2018)")
    parser.add_argument("--out", default="pretrained.keras", help="model file (.keras)")
    args = parser.parse_args(argv)

    prep = _shared.preprocessor_for(args)
    x, table = _shared.load_data(args, prep)
    tasks = _shared.parse_tasks(args.tasks)
    y, w = kb.tasks.encode_labels(tasks, table)
    for task in tasks:
        print(f"{task.name}: {int(w[task.name].sum())} of {len(x)} labelled")

    keras.utils.set_random_seed(args.seed)
    backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=x.shape[1:],
                                    pooling="avg", filters=args.filters, dropout=0.0)
    model = kb.models.multitask(backbone, tasks, dropout=0.2,
                                loss_weights="uncertainty" if args.loss_weights == "uncertainty" else None)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    callbacks = [keras.callbacks.ReduceLROnPlateau(patience=3, factor=0.5)]
    history = model.fit(x, y, sample_weight=w, validation_split=0.15, epochs=args.epochs,
                        batch_size=args.batch_size, callbacks=callbacks, verbose=2)

    ranges = {t.name: (float(np.nanmin(table[t.name])), float(np.nanmax(table[t.name])))
              for t in tasks if t.kind == "regression"}
    inference.save_model(model, args.out, prep, volumes=x[:64, ..., 0], output_ranges=ranges,
                            brain_age_task="age" if "age" in ranges else None,
                            description=f"multi-task SFCN pretrained on {len(x)} scans: {args.tasks}")
    final = {k: round(float(v[-1]), 4) for k, v in history.history.items() if k.startswith("val_")}
    print(f"validation: {final}\nsaved {args.out} and {inference.sidecar_path(args.out)}")


if __name__ == "__main__":
    main()
