"""Shared set-up of the explanation methods: input checks, the graph and the target."""

import numpy as np

from kerasbrain.explain.graph import Graph
from kerasbrain.explain.targets import resolve_target


def as_batch(model, volumes, name="volumes"):
    """``(x, y, z)``, ``(x, y, z, c)`` or ``(n, x, y, z, c)`` -> float32 ``(n, x, y, z, c)``."""
    x = np.asarray(volumes, dtype="float32")
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim == len(expected) - 1 and expected[-1] == 1:
        x = x[..., None]
    if x.ndim == len(expected):
        x = x[None]
    if x.ndim != len(expected) + 1 or any(e is not None and e != s
                                           for e, s in zip(expected, x.shape[1:], strict=True)):
        raise ValueError(f"{name}: shape {np.shape(volumes)} does not fit the model input "
                         f"{(None, *expected)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: NaN or Inf voxels")
    return x


def check_steps(steps, name="steps"):
    if int(steps) != steps or steps < 1:
        raise ValueError(f"{name} must be an integer of at least 1, got {steps!r}")
    return int(steps)


#: voxels per model call when ``batch_size=None``: one volume at 160x192x160 (SFCN's
#: backward pass then needs about 5 GB; four volumes ran out of 24 GB), eight at 64³
BATCH_VOXELS = 2**22


def path_batch(batch_size, x):
    """``batch_size`` checked, or for None as many volumes as make `BATCH_VOXELS` (1 to 8)."""
    if batch_size is None:
        return int(np.clip(BATCH_VOXELS // int(np.prod(x.shape[1:4])), 1, 8))
    return check_steps(batch_size, "batch_size")


def prepare(model, volumes, output=None, index=None, decode=None, predictions=True):
    """``(graph, x, target)`` for ``volumes``; the target knows each volume's class."""
    graph = Graph(model)
    x = as_batch(model, volumes)
    preds = None
    if predictions and index is None and decode is None:
        from kerasbrain.explain.backend import forward_function

        run = forward_function(lambda t, w: graph.run(t)[0], model)
        preds = {k: np.asarray(v) for k, v in run(x).items()}
    target = resolve_target(model, output=output, index=index, decode=decode, predictions=preds)
    return graph, x, target


def model_value(graph, target):
    """``(x, target weights) -> target value (batch,)`` through the whole graph (keras.ops)."""
    return lambda t, w: target(graph.run(t)[0], w)
