"""``kerasbrain train CONFIG`` and ``kerasbrain finetune CONFIG``: multi-task training and
fine-tuning from a YAML/JSON config (see `kerasbrain.training` for the keys)."""

from kerasbrain.training import load_config, run_config

__all__ = ["add_parser", "load_config", "run", "run_config"]


def add_parser(subparsers):
    for name, help_text in (
        ("train", "train a multi-task model from a config (YAML/JSON)"),
        ("finetune", "fine-tune a pretrained model from a config (YAML/JSON)"),
    ):
        parser = subparsers.add_parser(name, help=help_text, description=help_text + " (keys: docs/transfer.md, "
                                       "kerasbrain.training).")
        parser.add_argument("config", help="YAML or JSON config file")
        parser.add_argument("--output", help="output folder (overrides the config's output)")
        parser.add_argument("--epochs", type=int, help="overrides the config's epochs")
        parser.set_defaults(func=run)


def run(args):
    config = load_config(args.config, args.command, {"output": args.output, "epochs": args.epochs})
    run_config(config)
    return 0
