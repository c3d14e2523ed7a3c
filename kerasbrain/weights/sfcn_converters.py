"""Published SFCN checkpoints -> weights of ``kerasbrain.applications.SFCN`` layers.

Each converter returns ``{keras_layer_name: [(source_tensor_name, array), ...]}`` with the
arrays already in Keras layout and in ``layer.get_weights()`` order; shapes are checked
against the model when the weights are assigned (see ``loading.assign``).

- Peng et al. (PyTorch state dict, ``feature_extractor.conv_{i}.{0,1}.*``,
  ``classifier.conv_6.*``): Conv3d weight ``(out, in, x, y, z)`` -> Keras kernel
  ``(x, y, z, in, out)`` (permute 2, 3, 4, 1, 0); the classifier's 1x1x1 conv -> Dense.
- pyment (legacy Keras HDF5): the layer names are not trusted; layers are mapped by order
  (conv, BN) x 6, then the optional dense head, and every shape is checked.
"""

import collections

import numpy as np

N_BLOCKS = 6
TRUNK_LAYERS = tuple(f"block{i}_{kind}" for i in range(N_BLOCKS) for kind in ("conv", "bn"))
HEAD_LAYERS = ("predictions",)
_BN_ORDER = ("gamma", "beta", "moving_mean", "moving_variance")
_TORCH_BN = ("weight", "bias", "running_mean", "running_var")


def from_peng(state, source="checkpoint"):
    """Convert Peng's SFCN state dict (``module.`` prefix already stripped).

    Args:
        state: mapping name -> array (see ``torch_pickle.state_dict``).
        source: file name for error messages.

    Raises:
        ValueError: a tensor is missing or not part of SFCN (named in the message).
    """
    out = collections.OrderedDict()
    used = set()

    def take(name):
        if name not in state:
            raise ValueError(f"{source}: tensor {name!r} is missing; is this an SFCN checkpoint?")
        used.add(name)
        return np.asarray(state[name], dtype="float32")

    for i in range(N_BLOCKS):
        conv, bn = f"feature_extractor.conv_{i}.0", f"feature_extractor.conv_{i}.1"
        weight = take(f"{conv}.weight")
        if weight.ndim != 5:
            raise ValueError(
                f"{source}: tensor '{conv}.weight' has shape {weight.shape}; a Conv3d weight "
                "needs 5 dimensions (out, in, x, y, z)."
            )
        out[f"block{i}_conv"] = [
            (f"{conv}.weight", np.transpose(weight, (2, 3, 4, 1, 0))),
            (f"{conv}.bias", take(f"{conv}.bias")),
        ]
        out[f"block{i}_bn"] = [(f"{bn}.{n}", take(f"{bn}.{n}")) for n in _TORCH_BN]
        if f"{bn}.num_batches_tracked" in state:
            used.add(f"{bn}.num_batches_tracked")
    if any(k.startswith("classifier.") for k in state):
        weight = take("classifier.conv_6.weight")
        classes = weight.shape[0]
        out["predictions"] = [
            ("classifier.conv_6.weight", weight.reshape(classes, -1).T),
            ("classifier.conv_6.bias", take("classifier.conv_6.bias")),
        ]
    extra = [k for k in state if k not in used]
    if extra:
        raise ValueError(f"{source}: unexpected tensors not part of SFCN: {', '.join(extra)}.")
    return out


def _looks_like(kind, weights):
    shapes = [w.shape for _, w in weights]
    if kind == "conv":
        return len(shapes) == 2 and len(shapes[0]) == 5 and len(shapes[1]) == 1
    if kind == "bn":
        return len(shapes) == 4 and all(len(s) == 1 for s in shapes)
    return len(shapes) == 2 and len(shapes[0]) == 2 and len(shapes[1]) == 1


def _bn_in_keras_order(weights):
    """Reorder by variable name when the names are Keras' own; else keep the stored order."""
    names = [n.rsplit("/", 1)[-1].split(":")[0] for n, _ in weights]
    if sorted(names) != sorted(_BN_ORDER):
        return weights
    by_name = dict(zip(names, weights, strict=True))
    return [by_name[n] for n in _BN_ORDER]


def from_pyment(layers, source="checkpoint"):
    """Convert pyment's legacy HDF5 layers (``legacy_h5.read_layers``) by order.

    Expects 12 trunk layers with weights (Conv3D, BatchNormalization) x 6 and optionally
    one Dense head.

    Raises:
        ValueError: wrong number of layers, or a layer that does not look like the one
            expected at its position (named in the message).
    """
    expected = list(TRUNK_LAYERS)
    if len(layers) == len(TRUNK_LAYERS) + len(HEAD_LAYERS):
        expected += list(HEAD_LAYERS)
    elif len(layers) != len(TRUNK_LAYERS):
        raise ValueError(
            f"{source}: found {len(layers)} layers with weights "
            f"({', '.join(n for n, _ in layers)}); an SFCN has {len(TRUNK_LAYERS)} "
            f"(conv and BatchNorm x 6) plus one dense head."
        )
    out = collections.OrderedDict()
    for target, (layer_name, weights) in zip(expected, layers, strict=True):
        kind = target.rsplit("_", 1)[-1] if target != "predictions" else "dense"
        if not _looks_like(kind, weights):
            shapes = ", ".join(f"{n} {w.shape}" for n, w in weights)
            raise ValueError(
                f"{source}: layer {layer_name!r} ({shapes}) is at the position of SFCN's "
                f"{target} but does not look like a {kind} layer."
            )
        if kind == "bn":
            weights = _bn_in_keras_order(weights)
        out[target] = [
            (f"{layer_name}/{n.rsplit('/', 1)[-1]}", np.asarray(w, dtype="float32"))
            for n, w in weights
        ]
    return out


def config_of(layer_weights):
    """The SFCN settings these converted weights need: ``filters`` and, with a head,
    ``classes``."""
    config = {"filters": tuple(int(layer_weights[f"block{i}_conv"][1][1].shape[0])
                               for i in range(N_BLOCKS))}
    if "predictions" in layer_weights:
        config["classes"] = int(layer_weights["predictions"][1][1].shape[0])
    return config
