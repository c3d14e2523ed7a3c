"""``kerasbrain pretrain CONFIG``: self-supervised pretraining (contrastive or masked-volume)
from a YAML/JSON config; see `kerasbrain.pretraining.config` for the keys. Running the same
command again resumes an unfinished run."""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "pretrain", help="self-supervised pretraining from a config (YAML/JSON)",
        description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("config", help="YAML or JSON config file")
    parser.add_argument("--output", help="output folder (overrides the config's output)")
    parser.add_argument("--epochs", type=int, help="overrides the config's epochs")
    parser.set_defaults(func=run)


def run(args):
    from kerasbrain.pretraining import config

    config.run_config(config.load_config(args.config, {"output": args.output, "epochs": args.epochs}))
    return 0
