"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) for SFCN-like
graphs, in ``keras.ops`` on any backend.

The chain from the input to the explained output is walked back layer by layer:
convolutions and dense layers (a BatchNormalization right after one is folded into its
weights and bias) follow a rule each; ReLU and dropout pass relevance on; max pooling
gives it to the window's maximum; average and global average pooling share it in
proportion to the inputs. Relevance starts at the last convolution/dense layer before the
head's activation: ``R = z * d value / dz`` (for a linear head, the explained value).

Rules (strings): ``"epsilon"`` (``"epsilon:0.01"`` sets the stabiliser, default 1e-6),
``"alpha1beta0"``, ``"alpha2beta1"`` (any ``alpha<a>beta<b>`` with ``a - b = 1``),
``"flat"``; ``rules="pyment"`` is the composite of pyment's dementia maps: flat for the
first two layers, alpha1-beta0 in the middle, epsilon at the top.
"""

import re

import keras
import numpy as np
from keras import ops

from kerasbrain.explain import _common
from kerasbrain.explain.backend import gradient_function

PASS_THROUGH = (keras.layers.ReLU, keras.layers.Dropout, keras.layers.SpatialDropout3D,
                keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.ActivityRegularization)
PRESETS = ("pyment",)
DEFAULT_EPSILON = 1e-6


def parse_rule(rule):
    """``"epsilon[:eps]"`` / ``"alpha<a>beta<b>"`` / ``"flat"`` -> a tuple."""
    text = str(rule).replace("-", "").replace("_", "").lower()
    if text == "flat":
        return ("flat",)
    match = re.fullmatch(r"epsilon(?::([0-9.eE+-]+))?", str(rule).lower())
    if match:
        return ("epsilon", float(match.group(1)) if match.group(1) else DEFAULT_EPSILON)
    match = re.fullmatch(r"alpha([0-9.]+)beta([0-9.]+)", text)
    if match:
        alpha, beta = float(match.group(1)), float(match.group(2))
        if abs(alpha - beta - 1.0) > 1e-9:
            raise ValueError(f"rule {rule!r}: alpha - beta must be 1")
        return ("alphabeta", alpha, beta)
    raise ValueError(f"unknown LRP rule {rule!r}; use 'epsilon', 'epsilon:<eps>', 'alpha1beta0', "
                     "'alpha2beta1' or 'flat'")


class _Linear:
    """A convolution or dense layer with a folded BatchNormalization: ``z = a * W + b``."""

    def __init__(self, layer, bn=None):
        self.layer = layer
        self.name = layer.name
        kernel = ops.convert_to_numpy(layer.kernel).astype("float32")
        bias = ops.convert_to_numpy(layer.bias).astype("float32") if layer.use_bias else \
            np.zeros(kernel.shape[-1], "float32")
        if bn is not None:
            scale, shift = _bn_affine(bn)
            kernel, bias = kernel * scale, bias * scale + shift
            self.name = f"{layer.name}+{bn.name}"
        self.kernel, self.bias = kernel, bias
        self.conv = isinstance(layer, keras.layers.Conv3D)
        if self.conv and (tuple(layer.dilation_rate) != (1, 1, 1) or layer.groups != 1):
            raise ValueError(f"LRP: layer {layer.name!r}: dilated or grouped convolutions are not supported")

    def apply(self, a, kernel=None, bias=True):
        kernel = self.kernel if kernel is None else kernel
        if self.conv:
            z = ops.conv(a, kernel, strides=self.layer.strides, padding=self.layer.padding)
        else:
            z = ops.matmul(a, kernel)
        return z + self.bias if bias is True else (z + bias if bias is not None else z)

    def adjoint(self, s, kernel, input_shape):
        """``W^T s`` for the given kernel: the gradient of ``sum(apply(a) * s)`` by ``a``."""
        if not self.conv:
            return ops.matmul(s, ops.transpose(kernel))
        if tuple(self.layer.strides) == (1, 1, 1):
            out = ops.conv_transpose(s, kernel, strides=1, padding=self.layer.padding)
            if tuple(out.shape[1:]) == tuple(input_shape[1:]):
                return out
        grad = gradient_function(lambda a, w: ops.sum(
            ops.conv(a, kernel, strides=self.layer.strides, padding=self.layer.padding) * w,
            axis=(1, 2, 3, 4)))
        return ops.convert_to_tensor(grad(np.zeros((s.shape[0], *input_shape[1:]), "float32"),
                                          ops.convert_to_numpy(s))[1])


def _bn_affine(bn):
    """``(scale, shift)`` per channel of an inference-mode BatchNormalization."""
    if bn.axis not in (-1, len(bn.input.shape) - 1):
        raise ValueError(f"LRP: BatchNormalization {bn.name!r} must normalise the last axis")
    var = ops.convert_to_numpy(bn.moving_variance).astype("float64")
    mean = ops.convert_to_numpy(bn.moving_mean).astype("float64")
    gamma = ops.convert_to_numpy(bn.gamma).astype("float64") if bn.scale else 1.0
    beta = ops.convert_to_numpy(bn.beta).astype("float64") if bn.center else 0.0
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale.astype("float32"), (beta - mean * scale).astype("float32")


def _stabilise(z, eps):
    return z + eps * ops.where(z >= 0, 1.0, -1.0)


def _divide(r, z):
    safe = ops.where(z == 0, ops.ones_like(z), z)
    return ops.where(z == 0, ops.zeros_like(z), r / safe)


def _linear_rule(unit, rule, a, r):
    """Relevance at the input of ``unit`` and the part its bias absorbed (epsilon rule)."""
    if rule[0] == "epsilon":
        s = r / _stabilise(unit.apply(a), rule[1])
        bias = ops.sum(s * unit.bias, axis=tuple(range(1, len(s.shape))))
        return a * unit.adjoint(s, unit.kernel, a.shape), bias
    zero = ops.zeros((ops.shape(a)[0],))
    if rule[0] == "flat":
        ones = ops.ones_like(a)
        count = unit.apply(ones, np.ones_like(unit.kernel), bias=None)
        return unit.adjoint(_divide(r, count), np.ones_like(unit.kernel), a.shape), zero
    _, alpha, beta = rule
    w_pos, w_neg = np.maximum(unit.kernel, 0), np.minimum(unit.kernel, 0)
    a_pos, a_neg = ops.maximum(a, 0.0), ops.minimum(a, 0.0)
    signed = bool(ops.convert_to_numpy(ops.min(a)) < 0)
    out = 0.0
    for sign, factor in ((1, alpha), (-1, -beta)):
        if factor == 0:
            continue
        first, second = (w_pos, w_neg) if sign > 0 else (w_neg, w_pos)
        b = np.maximum(unit.bias, 0) if sign > 0 else np.minimum(unit.bias, 0)
        z = unit.apply(a_pos, first, bias=b)
        if signed:
            z = z + unit.apply(a_neg, second, bias=None)
        s = _divide(r, z)
        part = a_pos * unit.adjoint(s, first, a.shape)
        if signed:
            part = part + a_neg * unit.adjoint(s, second, a.shape)
        out = out + factor * part
    return out, zero


def _reduce(x, pool, fn):
    """``fn`` (``ops.max``/``ops.sum``) over non-overlapping windows, one axis at a time
    (4D tensors only: TensorFlow broadcasts up to 5 dimensions on CPU)."""
    _, nx, ny, nz, c = x.shape
    px, py, pz = pool
    ax, ay, az = nx // px, ny // py, nz // pz
    x = x[:, : ax * px, : ay * py, : az * pz]
    x = fn(ops.reshape(x, (-1, ax, px, ay * py * az * pz * c)), axis=2)
    x = fn(ops.reshape(x, (-1, ay, py, az * pz * c)), axis=2)
    x = fn(ops.reshape(x, (-1, az, pz, c)), axis=2)
    return ops.reshape(x, (-1, ax, ay, az, c))


def _expand(x, pool, shape):
    """Repeat each voxel ``pool`` times per axis and zero-pad to ``shape``."""
    for axis, p in zip((1, 2, 3), pool, strict=True):
        x = ops.repeat(x, p, axis=axis)
    pad = [[0, 0]] + [[0, s - v] for s, v in zip(shape[1:4], x.shape[1:4], strict=True)] + [[0, 0]]
    return ops.pad(x, pad) if any(v for _, v in pad) else x


def _pool_rule(layer, a, r, eps):
    """Relevance through pooling, flattening and reshaping layers."""
    if isinstance(layer, keras.layers.Flatten | keras.layers.Reshape):
        return ops.reshape(r, ops.shape(a))
    if isinstance(layer, keras.layers.GlobalAveragePooling3D | keras.layers.GlobalMaxPooling3D):
        if getattr(layer, "keepdims", False):
            r = ops.reshape(r, (-1, r.shape[-1]))
        r = r[:, None, None, None, :]
        if isinstance(layer, keras.layers.GlobalMaxPooling3D):
            share = ops.cast(a == ops.max(a, axis=(1, 2, 3), keepdims=True), a.dtype)
        else:
            share = a
        return share * _divide(r, _stabilise(ops.sum(share, axis=(1, 2, 3), keepdims=True), eps))
    pool = tuple(getattr(layer, "pool_size", ()))
    strides = tuple(getattr(layer, "strides", pool) or pool)
    if len(pool) != 3 or strides != pool or getattr(layer, "padding", "valid") != "valid":
        raise ValueError(f"LRP: pooling layer {layer.name!r} must have non-overlapping windows "
                         "(strides = pool_size, 'valid' padding)")
    if isinstance(layer, keras.layers.AveragePooling3D):
        share = a
        total = _stabilise(_reduce(a, pool, ops.sum), eps)
    else:  # max pooling: the maxima of each window (ties share)
        share = ops.cast(a == _expand(_reduce(a, pool, ops.max), pool, a.shape), a.dtype)
        total = _reduce(share, pool, ops.sum)
    return share * _expand(_divide(r, total), pool, a.shape)


def _is_pool(layer):
    from kerasbrain.layers.pooling import FastMaxPooling3D

    return isinstance(layer, keras.layers.MaxPooling3D | keras.layers.AveragePooling3D
                      | keras.layers.GlobalAveragePooling3D | keras.layers.GlobalMaxPooling3D
                      | keras.layers.Flatten | keras.layers.Reshape | FastMaxPooling3D)


def _passes(layer):
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and not layer.negative_slope and not layer.threshold
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation) in ("relu", "linear")
    return isinstance(layer, PASS_THROUGH)


def _activation_name(layer):
    return keras.activations.serialize(layer.activation) if hasattr(layer, "activation") else "linear"


def plan(graph, output):
    """Units of the chain to ``output``: ``(kind, object)`` in order, and the tail after the
    last linear unit (the head's activation and what follows)."""
    chain = graph.chain(output)
    units, i = [], 0
    while i < len(chain):
        layer = chain[i].layer
        if isinstance(layer, keras.layers.Conv3D | keras.layers.Dense):
            bn = None
            if i + 1 < len(chain) and isinstance(chain[i + 1].layer, keras.layers.BatchNormalization):
                bn = chain[i + 1].layer
                i += 1
            units.append(("linear", _Linear(layer, bn)))
        elif isinstance(layer, keras.layers.BatchNormalization):
            units.append(("bn", layer))
        elif _is_pool(layer) or _passes(layer):
            units.append(("pool" if _is_pool(layer) else "pass", layer))
        else:
            units.append(("other", layer))
        i += 1
    last = max((k for k, (kind, _) in enumerate(units) if kind == "linear"), default=None)
    if last is None:
        raise ValueError(f"LRP: no convolution or dense layer between the input and output {output!r}")
    for kind, obj in units[:last + 1]:
        if kind == "other" or (kind == "linear" and obj is not units[last][1]
                               and _activation_name(obj.layer) not in ("relu", "linear")):
            layer = obj.layer if kind == "linear" else obj
            raise ValueError(f"LRP: layer {layer.name!r} ({type(layer).__name__}) is not supported; "
                             "SFCN-like graphs: Conv3D, Dense, BatchNormalization, ReLU, "
                             "pooling, dropout, flatten")
    return units[:last + 1], units[last + 1:]


def resolve_rules(rules, names):
    """One parsed rule per linear unit (``names`` in order)."""
    n = len(names)
    if isinstance(rules, str) and rules == "pyment":
        if n < 3:
            return [parse_rule("flat")] * (n - 1) + [parse_rule("epsilon")]
        return [parse_rule("flat")] * 2 + [parse_rule("alpha1beta0")] * (n - 3) + [parse_rule("epsilon")]
    if isinstance(rules, str):
        return [parse_rule(rules)] * n
    if isinstance(rules, dict):
        known = {k.split("+")[0]: k for k in names}
        unknown = [k for k in rules if k not in names and k not in known]
        if unknown:
            raise ValueError(f"rules name layers {unknown} that LRP does not see; its layers are {names}")
        parsed = {known.get(k, k): parse_rule(v) for k, v in rules.items()}
        return [parsed.get(name, parse_rule("epsilon")) for name in names]
    rules = list(rules)
    if len(rules) != n:
        raise ValueError(f"rules: {len(rules)} given for {n} layers {names}")
    return [parse_rule(r) for r in rules]


def lrp(model, volumes, rules="epsilon", output=None, batch_size=None, index=None, decode=None,
        return_bias=False):
    """Layer-wise relevance propagation maps.

    Args:
        model: a functional Keras model whose path from the input to ``output`` is a chain
            of Conv3D, Dense, BatchNormalization, ReLU, pooling, dropout and flatten layers
            (SFCN and pyment's models; nested backbones are walked through).
        volumes: ``(x, y, z)``, ``(x, y, z, c)`` or a batch ``(n, x, y, z, c)``.
        rules: a rule for every layer (``"epsilon"``, ``"alpha1beta0"``, ``"flat"``, ...),
            ``"pyment"``, a list with one rule per convolution/dense layer, or a dict
            ``{layer name: rule}`` (the others epsilon).
        output, index, decode: what to explain (see `kerasbrain.explain.resolve_target`).
        batch_size: volumes per pass (default: as many as make 4 M voxels, 1 at
            160x192x160, at most 8).
        return_bias: also return the relevance the biases absorbed, ``(n,)``.

    Returns:
        float32 ``(n, x, y, z)`` relevance (summed over channels); with the epsilon rule
        it sums, with the bias part, to the explained value at the top layer.
    """
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    batch_size = _common.path_batch(batch_size, x)
    units, tail = plan(graph, target.name)
    linear = [obj for kind, obj in units if kind == "linear"]
    parsed = resolve_rules(rules, [u.name for u in linear])
    rule_of = {id(u): r for u, r in zip(linear, parsed, strict=True)}
    top = units[-1][1]

    def head(z, w):
        y = keras.activations.get(_activation_name(top.layer))(z)
        for _, layer in tail:
            y = layer(y, training=False)
        return target({target.name: y}, w)

    head_grad = gradient_function(head)
    maps, biases = [], []
    for start in range(0, len(x), batch_size):
        rows = list(range(start, min(len(x), start + batch_size)))
        a = ops.convert_to_tensor(x[rows])
        inputs = []
        for kind, obj in units:
            inputs.append(a)
            if kind == "linear":
                a = obj.apply(a)
                if obj is not top:
                    a = keras.activations.get(_activation_name(obj.layer))(a)
            elif kind == "bn" or kind == "pool" or kind == "pass":
                a = obj(a, training=False)
        _, g = head_grad(ops.convert_to_numpy(a), target.rows(rows))
        r = a * ops.convert_to_tensor(g)
        bias = ops.zeros((len(rows),))
        for (kind, obj), a_in in zip(units[::-1], inputs[::-1], strict=True):
            if kind == "linear":
                r, absorbed = _linear_rule(obj, rule_of[id(obj)], a_in, r)
                bias = bias + absorbed
            elif kind == "bn":
                scale, shift = _bn_affine(obj)
                z = _stabilise(a_in * scale + shift, DEFAULT_EPSILON)
                bias = bias + ops.sum(shift * r / z, axis=tuple(range(1, len(r.shape))))
                r = a_in * scale * r / z
            elif kind == "pool":
                r = _pool_rule(obj, a_in, r, DEFAULT_EPSILON)
        maps.append(ops.convert_to_numpy(ops.sum(r, axis=-1)))
        biases.append(ops.convert_to_numpy(bias))
    maps = np.concatenate(maps).astype("float32")
    return (maps, np.concatenate(biases).astype("float32")) if return_bias else maps
