"""Arguments and data loading shared by the recipes in this folder (not part of the package)."""

import os

import numpy as np

DEMO_MODEL = os.path.join("kerasbrain-demo", "pretrained.keras")


def add_data_arguments(parser, default_n=300):
    group = parser.add_argument_group("data (default: a synthetic cohort)")
    group.add_argument("--data", nargs="+", metavar="TABLE|BIDS|DIR",
                       help="real scans: a CSV/TSV table with a path column, a BIDS folder "
                            "(participants.tsv) or a folder of images")
    group.add_argument("--shape", type=int, nargs=3, default=(32, 32, 32), metavar=("X", "Y", "Z"),
                       help="model input grid (voxels), field of view 192 mm (default 32^3)")
    group.add_argument("--n", type=int, default=default_n, help="synthetic subjects (default %(default)s)")
    group.add_argument("--sites", type=int, nargs="+", default=[0, 1, 2], help="synthetic site ids")
    group.add_argument("--seed", type=int, default=0, help="seed of data splits and weights")


def preprocessor_for(args, model_path=None):
    """The model's stored preprocessing, else RAS + 192 mm field of view on ``--shape``."""
    from kerasbrain import inference
    from kerasbrain.data import Preprocessor

    if model_path and os.path.exists(inference.sidecar_path(model_path)):
        return inference.Predictor.from_model(model_path).preprocessor
    shape = tuple(args.shape)
    return Preprocessor(orientation="RAS", spacing=tuple(192.0 / np.asarray(shape)), shape=shape,
                        intensity="mean", name="recipe")


def load_data(args, preprocessor, **synthetic):
    """``(x (n, x, y, z, 1), table)`` from ``--data``, else a synthetic cohort."""
    from kerasbrain.datasets import load_dataset, make_cohort

    if args.data:
        return load_dataset(args.data, preprocessor)
    print(f"no --data: generating {args.n} synthetic subjects (sites {args.sites})")
    volumes, table = make_cohort(args.n, preprocessor.shape, sites=args.sites, seed=args.seed,
                                 **synthetic)
    volumes = volumes / volumes.mean(axis=(1, 2, 3), keepdims=True)
    return volumes.astype("float32")[..., None], table


def parse_tasks(specs):
    """``["age:regression", "sex:binary:M", "dx:categorical"]`` -> kerasbrain tasks."""
    from kerasbrain import tasks

    out = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        kind, _, option = (rest or "regression").partition(":")
        if kind == "regression":
            out.append(tasks.Regression(name, standardize=True))
        elif kind == "binary":
            out.append(tasks.Binary(name, positive=option or None))
        elif kind == "categorical":
            out.append(tasks.Categorical(name, int(option) if option else 2))
        else:
            raise SystemExit(f"task {spec!r}: kind must be regression, binary or categorical")
    return out


def split(n, test_fraction, seed):
    """Shuffled ``(train, test)`` indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
