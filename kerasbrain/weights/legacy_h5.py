"""Read weights from legacy (tf.keras 2) HDF5 files without rebuilding the model.

tf.keras 2 ``model.save_weights("x.h5")`` writes one group per layer, in model order,
listed by the root attribute ``layer_names``; each group lists its variables in the
attribute ``weight_names`` (``"<layer>/kernel:0"``, ...) in creation order. ``model.save``
writes the same layout under a ``model_weights`` group.
"""

import os

import h5py
import numpy as np


def _decode(names):
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def is_legacy_h5(path):
    """True for an HDF5 file in the tf.keras 2 layout (root or ``model_weights`` group
    with a ``layer_names`` attribute)."""
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            return "layer_names" in root.attrs
    except OSError:
        return False


def read_layers(path):
    """The layers with weights of a legacy Keras HDF5 file, in saved order.

    Args:
        path: ``.h5`` file written by tf.keras 2 ``save_weights`` or ``save``.

    Returns:
        list of ``(layer_name, [(weight_name, np.ndarray), ...])`` for every layer that has
        weights, in model order; weight names are as stored (``"block/kernel:0"``).

    Raises:
        ValueError: not a legacy Keras HDF5 file, or a layer group is incomplete (the
            message names the file and the layer).
    """
    source = os.fspath(path)
    try:
        f = h5py.File(source, "r")
    except OSError as error:
        raise ValueError(f"{source}: not a readable HDF5 file ({error}).") from error
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{source}: not a legacy Keras HDF5 weights file (no 'layer_names' attribute)."
            )
        layers = []
        for layer_name in _decode(root.attrs["layer_names"]):
            if layer_name not in root:
                raise ValueError(f"{source}: layer {layer_name!r} is listed but missing.")
            group = root[layer_name]
            weight_names = _decode(group.attrs.get("weight_names", []))
            if not weight_names:
                continue
            weights = []
            for weight_name in weight_names:
                if weight_name not in group:
                    raise ValueError(
                        f"{source}: weight {layer_name}/{weight_name} is listed but missing."
                    )
                weights.append((weight_name, np.asarray(group[weight_name])))
            layers.append((layer_name, weights))
    return layers


def write_layers(path, layers):
    """Write ``[(layer_name, [(weight_name, array), ...]), ...]`` in the tf.keras 2 layout
    (used to write test files and by tools that re-export weights)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode("utf8") for n, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.9.0"
        for layer_name, weights in layers:
            group = f.create_group(layer_name)
            group.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights])
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=np.asarray(value))
