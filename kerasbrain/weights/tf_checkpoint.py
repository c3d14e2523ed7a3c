"""Read TensorFlow object-based checkpoints (pyment v4's ``multi-2025``, ``reg-2025``).

A checkpoint is a prefix with two files, ``<prefix>.index`` and
``<prefix>.data-00000-of-00001``. tf.keras 2 ``save_weights`` names each variable by the
position of its layer among the layers that have weights::

    layer_with_weights-<i>/kernel/.ATTRIBUTES/VARIABLE_VALUE

(``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance`` likewise), possibly
under a root object (``model/``), beside optimizer slots and the object graph, which are
ignored. pyment's ``MultiTaskSFCN`` and ``RegressionSFCN`` have 12 trunk layers (Conv3D,
BatchNormalization) x 6, then one ``Dense(1)`` per output.

The checkpoint is read with ``tf.train.load_checkpoint``: no pyment, no TF 2.11, no code
from the file is run.
"""

import collections
import os
import re

import numpy as np

from kerasbrain.weights.registry import MULTITASK_OUTPUTS
from kerasbrain.weights.sfcn_converters import N_BLOCKS

DATA_SUFFIX = ".data-00000-of-00001"
INDEX_SUFFIX = ".index"
_VARIABLE = re.compile(r"(?:^|/)layer_with_weights-(\d+)/(\w+)/\.ATTRIBUTES/VARIABLE_VALUE$")
_ORDER = {
    "conv": ("kernel", "bias"),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
    "dense": ("kernel", "bias"),
}



def checkpoint_prefix(path):
    """The checkpoint prefix for a prefix, its ``.index`` or its ``.data-...`` file.

    Raises:
        FileNotFoundError: the ``.index`` or the ``.data`` shard is missing (names the file).
    """
    path = os.fspath(path)
    for suffix in (INDEX_SUFFIX, DATA_SUFFIX):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    for suffix in (INDEX_SUFFIX, DATA_SUFFIX):
        if not os.path.isfile(path + suffix):
            raise FileNotFoundError(
                f"TensorFlow checkpoint {path!r}: file {path + suffix} is missing; a checkpoint "
                f"needs both {os.path.basename(path)}{INDEX_SUFFIX} and "
                f"{os.path.basename(path)}{DATA_SUFFIX}."
            )
    return path


def has_checkpoint_file(path):
    """True when the ``.index`` or the ``.data`` file of prefix ``path`` exists."""
    path = os.fspath(path)
    return any(os.path.isfile(path + suffix) for suffix in (INDEX_SUFFIX, DATA_SUFFIX))


def is_tf_checkpoint(path):
    """True when ``path`` is (or belongs to) a complete TF checkpoint prefix."""
    try:
        checkpoint_prefix(path)
    except FileNotFoundError:
        return False
    return True


def read_layers(path):
    """The Keras layer variables of a tf.keras 2 checkpoint, by layer position.

    Returns:
        list of ``[(variable_name, array), ...]`` per ``layer_with_weights-<i>`` in
        order ``i = 0, 1, ...``, each layer's variables in Keras' ``get_weights`` order.

    Raises:
        ValueError: unreadable checkpoint, no Keras layer variables, or a gap in the layer
            numbering (names the file).
    """
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as error:  # tf raises DataLossError, NotFoundError, ...
        raise ValueError(f"{prefix}: not a readable TensorFlow checkpoint ({error}).") from error
    layers = collections.defaultdict(dict)
    for name in shapes:
        if "optimizer" in name.split("/")[:1] or "/.OPTIMIZER_SLOT/" in name:
            continue
        match = _VARIABLE.search(name)
        if match:
            layers[int(match.group(1))][match.group(2)] = name
    if not layers:
        raise ValueError(f"{prefix}: no Keras layer variables (layer_with_weights-*) found.")
    if sorted(layers) != list(range(len(layers))):
        raise ValueError(
            f"{prefix}: layers with weights are numbered {sorted(layers)}; expected 0..."
            f"{len(layers) - 1} without gaps."
        )
    out = []
    for index in range(len(layers)):
        variables = layers[index]
        kind = "bn" if "gamma" in variables else "conv_or_dense"
        order = _ORDER["bn"] if kind == "bn" else _ORDER["conv"]
        missing = [v for v in order if v not in variables]
        extra = [v for v in variables if v not in order]
        if missing or extra:
            raise ValueError(
                f"{prefix}: layer_with_weights-{index} has variables {sorted(variables)}; "
                f"expected {list(order)}."
            )
        try:
            out.append([(variables[v], np.asarray(reader.get_tensor(variables[v]))) for v in order])
        except Exception as error:
            raise ValueError(
                f"{prefix}: cannot read layer_with_weights-{index} ({error}); the .data "
                "shard may be truncated."
            ) from error
    return out


def from_pyment_v4(layers, source="checkpoint", outputs=None):
    """Map pyment v4 SFCN checkpoint layers onto kerasbrain SFCN layer names.

    Args:
        layers: ``read_layers`` output.
        source: file name for error messages.
        outputs: names of the ``Dense(1)`` heads in checkpoint order. By default from
            their number: six -> the multi-task outputs (``MULTITASK_OUTPUTS``), one ->
            ``("predictions",)`` (``reg-2025``), none -> the trunk only.

    Returns:
        ``{keras_layer_name: [(variable_name, array), ...]}``.

    Raises:
        ValueError: a layer count or kind that does not fit (names the variable).
    """
    n_heads = len(layers) - 2 * N_BLOCKS
    if outputs is None:
        outputs = {len(MULTITASK_OUTPUTS): MULTITASK_OUTPUTS, 1: ("predictions",), 0: ()}.get(
            n_heads, ()
        )
    if n_heads != len(outputs):
        raise ValueError(
            f"{source}: {len(layers)} layers with weights; pyment's SFCN has {2 * N_BLOCKS} "
            f"trunk layers (Conv3D and BatchNormalization x {N_BLOCKS}) plus 1 or "
            f"{len(MULTITASK_OUTPUTS)} Dense(1) heads."
        )
    out = collections.OrderedDict()
    for i in range(N_BLOCKS):
        conv, bn = layers[2 * i], layers[2 * i + 1]
        if len(conv) != 2 or conv[0][1].ndim != 5:
            shapes = ", ".join(f"{n} {a.shape}" for n, a in conv)
            raise ValueError(f"{source}: expected SFCN block {i}'s Conv3D, found {shapes}.")
        if len(bn) != 4:
            raise ValueError(f"{source}: expected SFCN block {i}'s BatchNormalization.")
        out[f"block{i}_conv"] = conv
        out[f"block{i}_bn"] = bn
    for name, dense in zip(outputs, layers[2 * N_BLOCKS:], strict=True):
        kernel = dense[0][1]
        if kernel.ndim != 2 or kernel.shape[1] != 1:
            raise ValueError(
                f"{source}: tensor {dense[0][0]!r} has shape {kernel.shape}; head {name!r} "
                "should be a Dense(1) kernel (features, 1)."
            )
        out[name] = dense
    return out
