"""The ``kerasbrain`` command. Each subcommand's module (``kerasbrain/commands/<name>.py``,
or the library module it runs, such as `kerasbrain.demo`) exposes ``add_parser(subparsers)``
(which sets ``func``), so this file stays a table."""

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys

from kerasbrain import __version__

#: subcommand -> module that adds its parser
COMMANDS = {
    "demo": "kerasbrain.demo",
    "explain": "kerasbrain.commands.explain",
    "predict": "kerasbrain.commands.predict",
    "prepare": "kerasbrain.commands.prepare",
    "pretrain": "kerasbrain.commands.pretrain",
    "tfrecords": "kerasbrain.commands.tfrecords",
    "train": "kerasbrain.commands.train",
    "finetune": "kerasbrain.commands.train",
    "tune": "kerasbrain.commands.tune",
    "weights": "kerasbrain.commands.weights",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasbrain",
        description="3D deep learning for brain MRI: pretrained models, data pipelines, fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"kerasbrain {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow without its C++ start-up lines (CPU features, CUDA probing, oneDNN).

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set) so TensorFlow logs warnings and errors only,
    and silences the lines it writes before its logging starts. An import error is raised
    after stderr is restored, so it is still shown.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    with _stderr_silenced():
        try:
            tf = importlib.import_module("tensorflow")
            tf.config.list_physical_devices()  # probes CUDA (cuInit) while silenced
        except ImportError:
            return  # reported by whatever needs TensorFlow, with stderr back


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command != "weights":  # `kerasbrain weights` stays quick and needs no TensorFlow
        import_tensorflow_quietly()
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError, ModuleNotFoundError) as error:
        print(f"kerasbrain {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
