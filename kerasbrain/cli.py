"""The ``kerasbrain`` command. Each subcommand lives in ``kerasbrain/commands/<name>.py``
and exposes ``add_parser(subparsers)`` (which sets ``func``) so this file stays a table."""

import argparse
import importlib
import sys

from kerasbrain import __version__

#: subcommand -> module in kerasbrain.commands
COMMANDS = {
    "demo": "demo",
    "predict": "predict",
    "prepare": "prepare",
    "tfrecords": "tfrecords",
    "train": "train",
    "finetune": "train",
    "tune": "tune",
    "weights": "weights",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasbrain",
        description="3D deep learning for brain MRI: pretrained models, data pipelines, fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"kerasbrain {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        try:
            module = importlib.import_module(f"kerasbrain.commands.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"kerasbrain.commands.{module_name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"kerasbrain {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
