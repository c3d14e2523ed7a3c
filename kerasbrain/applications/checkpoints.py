"""Published checkpoints as Keras weight files: the families that have converters, and
``convert`` (``kerasbrain.weights.convert``, ``kerasbrain weights convert``)."""

import os

from kerasbrain.applications import _common, sfcn
from kerasbrain.applications.densenet import DenseNet
from kerasbrain.applications.resnet import ResNet
from kerasbrain.weights import loading

#: family -> ``build(architecture, config, include_top)``: the model a checkpoint converts into
BUILDERS = {
    "sfcn": sfcn.checkpoint_model,
    "densenet": _common.checkpoint_builder(DenseNet),
    "resnet": _common.checkpoint_builder(ResNet),
}


def build(architecture, config, include_top):
    """The kerasbrain model a checkpoint for ``architecture`` converts into."""
    fam = loading.family(architecture)
    if fam not in BUILDERS:
        raise ValueError(f"no checkpoint converter for architecture {architecture!r}; "
                         f"known families: {sorted(BUILDERS)}.")
    return BUILDERS[fam](architecture, config, include_top)


def convert(path, output=None, *, architecture="sfcn", format=None):
    """Convert a published checkpoint into a Keras ``.weights.h5`` file.

    The architecture's details (filters, classes, BatchNorm epsilon) are read from the
    checkpoint; the result loads with ``model.load_weights`` or ``weights=``.

    Args:
        path: PyTorch ``.p/.pt/.pth`` (Peng et al.) or legacy Keras ``.h5`` (pyment).
        output: where to write; default ``path`` with its suffix replaced by
            ``.weights.h5``. Written under a temporary name and renamed when complete.
        architecture: the kerasbrain family, ``"sfcn"``.
        format: ``"torch"`` or ``"legacy-h5"``; by default from the file.

    Returns:
        the output path.
    """
    source = os.fspath(path)
    if output is None:
        output = os.path.splitext(source)[0] + ".weights.h5"
    fmt = loading.FORMAT_ALIASES.get(format, format) or loading.file_format(source)
    config = loading.checkpoint_config(source, architecture) if fmt != "keras" else {}
    return loading._convert(source, output, architecture, fmt, config,
                            f"file:{os.path.basename(source)}", None, build)
