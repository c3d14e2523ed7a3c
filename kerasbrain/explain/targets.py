"""What an explanation explains: one scalar per volume from one model output.

The explained value is linear in the chosen output ``o`` ``(batch, k)``:
``value = o @ w + b``. Regression and single-unit heads: the unit itself;
`kerasbrain.tasks.SoftClassification` (Peng's brain age): the expected value
``sum(p * centres)``; `kerasbrain.tasks.Ranking`: ``low + sum(p)`` (the smooth form of
``low + sum(round(p))``); categorical heads and plain multi-unit outputs: the unit
``index`` (default: the predicted class of each volume).
"""

import keras
import numpy as np
from keras import ops


def output_tensors(model):
    """``{name: KerasTensor}`` of the model's outputs (names as in ``model.output_names``)."""
    outputs = model.output
    if isinstance(outputs, dict):
        return dict(outputs)
    flat = keras.tree.flatten(outputs)
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(flat):
        names = [t.name for t in flat]
    return dict(zip(names, flat, strict=True))


class Target:
    """The explained value: output ``name``, weights ``w`` ``(k,)`` or ``(batch, k)``, offset.

    Use `resolve_target` to build one.
    """

    def __init__(self, name, weights=None, offset=0.0, decode=None, description=""):
        self.name = name
        self.weights = None if weights is None else np.asarray(weights, dtype="float32")
        self.offset = float(offset)
        self.decode = decode
        self.description = description

    def rows(self, rows):
        """Weights for the volumes ``rows`` as ``(len(rows), k)`` (one row each)."""
        if self.weights is None:
            return np.zeros((len(rows), 1), dtype="float32")
        if self.weights.ndim == 1:
            return np.broadcast_to(self.weights, (len(rows), self.weights.size)).copy()
        return self.weights[rows]

    def __call__(self, outputs, weights):
        """``outputs`` ``{name: tensor}`` and ``weights`` ``(batch or 1, k)`` -> ``(batch,)``."""
        o = outputs[self.name]
        if self.decode is not None:
            return ops.reshape(self.decode(o), (-1,))
        o = ops.reshape(o, (ops.shape(o)[0], -1))
        return ops.sum(o * ops.cast(weights, o.dtype), axis=-1) + self.offset


def resolve_target(model, output=None, index=None, decode=None, predictions=None):
    """The `Target` for ``output`` (a name) of ``model``.

    Args:
        model: a Keras model; multi-task models (``model.tasks``) decode each head.
        output: output name; needed when the model has several outputs.
        index: unit of a multi-unit output to explain (class index).
        decode: a callable ``(batch, k) -> (batch,)`` in ``keras.ops``, or an array of
            bin centres (expected value, e.g. an SFCN soft-classification head).
        predictions: model outputs for the volumes (``{name: array}``); pick the
            predicted class when ``index`` is needed but not given.

    Raises:
        ValueError: unknown output name (the message lists them), or a multi-output model
        without ``output``.
    """
    tensors = output_tensors(model)
    names = list(tensors)
    if output is None:
        if len(names) != 1:
            raise ValueError(f"model {model.name!r} has outputs {names}; name one with output=")
        output = names[0]
    if output not in tensors:
        raise ValueError(f"output {output!r} not in model {model.name!r}; its outputs are {names}")
    units = int(np.prod(tensors[output].shape[1:]))
    if callable(decode):
        return Target(output, decode=decode, description=f"{output} (decoded)")
    if decode is not None:
        centres = np.asarray(decode, dtype="float32").reshape(-1)
        if centres.size != units:
            raise ValueError(f"decode: {centres.size} bin centres for output {output!r} with {units} units")
        return Target(output, centres, description=f"{output} (expected value over bins)")
    task = next((t for t in getattr(model, "tasks", None) or [] if t.name == output), None)
    kind = getattr(task, "kind", None)
    if kind == "soft_classification":
        return Target(output, task.centres, description=f"{output} (expected value over bins)")
    if kind == "ranking":
        return Target(output, np.ones(units), task.value_range[0], description=f"{output} (ranks)")
    if index is None and units == 1:
        return Target(output, [1.0], description=output)
    if index is None:
        if predictions is None:
            raise ValueError(f"output {output!r} has {units} units; pass index= (the unit to explain)")
        index = np.argmax(np.asarray(predictions[output]).reshape(len(predictions[output]), -1), axis=-1)
    index = np.asarray(index).reshape(-1)
    if np.any(index < 0) or np.any(index >= units):
        raise ValueError(f"index {index.tolist()} out of range for output {output!r} with {units} units")
    onehot = np.eye(units, dtype="float32")[index]
    return Target(output, onehot[0] if onehot.shape[0] == 1 else onehot,
                  description=f"{output}[{index.tolist() if index.size > 1 else int(index[0])}]")
