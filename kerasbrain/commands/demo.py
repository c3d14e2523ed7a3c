"""``kerasbrain demo``: the transfer-learning workflow end to end on synthetic data."""

import argparse
import os

HELP = "run the transfer-learning demo on synthetic brains (minutes on a laptop CPU)"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help=HELP, description=HELP + ": pretrain a multi-task SFCN on a large "
        "multi-site synthetic cohort, then compare fine-tuning strategies on a small cohort "
        "from an unseen site over training sizes and resamples.",
        epilog="The images are synthetic (kerasbrain.datasets.synthetic): cartoons of heads "
               "with known effects of age, sex, disease and scanner, not real MRI.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser):
    parser.add_argument("--out", default="kerasbrain-demo", metavar="DIR",
                        help="output folder (default: ./kerasbrain-demo)")
    parser.add_argument("--quick", action="store_true", help="about half the work")
    parser.add_argument("--seed", type=int, default=0, help="seed of cohorts, draws and weights")


def run(args):
    from kerasbrain import demo

    config = demo.DemoConfig.quick() if args.quick else demo.DemoConfig()
    config.seed = args.seed
    result = demo.run(args.out, config)
    print()
    print(demo.summary(result))
    print(f"\nfiles in {os.path.abspath(args.out)}:")
    for name, path in result.files.items():
        print(f"  {name:20s} {os.path.basename(path)}")
    print(f"\nnext: kerasbrain predict YOUR_SCANS/ --model {result.files['model']} --qc qc/ -o predictions.csv")
    return 0
