"""Find the shared features and the per-output heads of a pretrained model, and carry a
pretrained head over to a task (copied as is, or re-ranged to new bins / value range)."""

import keras
import numpy as np

from kerasbrain.models import FEATURES, UNCERTAINTY, MultiTaskModel

_HEAD_LAYERS = (keras.layers.Dense, keras.layers.Activation, keras.layers.ReLU,
                keras.layers.Rescaling, keras.layers.Softmax)


def _producers(model):
    """``{id(tensor): the layer that outputs it}`` for the symbolic tensors of ``model``."""
    producers = {}
    for layer in model.operations:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer called more than once
            continue
        producers.update((id(tensor), layer) for tensor in outputs)
    return producers


def _input_tensor(layer):
    return keras.tree.flatten(layer.input)[0]


def split(model):
    """Split a model into ``(backbone, heads, pretrained_tasks)``.

    ``backbone`` maps the input to features (a nested backbone model when there is one);
    ``heads`` maps each output name to its chain of head layers (input side first);
    ``pretrained_tasks`` maps output names to their tasks (a MultiTaskModel's, or those of
    the preset of a model built with registry weights), else is empty.
    A model whose outputs are not Dense heads is a backbone: ``heads`` is empty.
    """
    if isinstance(model, MultiTaskModel):
        nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        heads = {}
        for task in model.tasks:
            chain = [layer for layer in model.layers
                     if layer.name == task.name or layer.name.startswith(task.name + "_")]
            heads[task.name] = chain
        if len(nested) == 1:
            return nested[0], heads, {task.name: task for task in model.tasks}
        features = model.get_layer(FEATURES) if FEATURES in [layer.name for layer in model.layers] else None
        if features is None:
            raise ValueError(f"cannot find the backbone of MultiTaskModel {model.name!r}.")
        backbone = keras.Model(model.inputs, features.output, name=f"{model.name}_backbone")
        return backbone, heads, {task.name: task for task in model.tasks}

    producers = _producers(model)
    heads, starts = {}, []
    for tensor in model.outputs:
        layer = producers.get(id(tensor))
        chain = []
        while isinstance(layer, _HEAD_LAYERS) and layer.name not in (FEATURES, UNCERTAINTY):
            chain.insert(0, layer)
            if isinstance(layer, keras.layers.Dense):
                break
            inputs = keras.tree.flatten(layer.input)
            layer = producers.get(id(inputs[0])) if len(inputs) == 1 else None
        if not chain or not isinstance(chain[0], keras.layers.Dense):
            return model, {}, {}
        heads[chain[-1].name] = chain
        start = _input_tensor(chain[0])
        previous = producers.get(id(start))
        if isinstance(previous, keras.layers.Dropout):
            start = _input_tensor(previous)
        starts.append(start)
    if any(s is not starts[0] for s in starts[1:]):
        raise ValueError(f"the heads of {model.name!r} do not share one feature tensor; pass "
                         "the backbone (a model that outputs the shared features) instead.")
    backbone = keras.Model(model.inputs, starts[0], name=f"{model.name}_backbone")
    return backbone, heads, preset_tasks(model, heads)


def preset_tasks(model, heads):
    """``{head name: task}`` from the preset of a model built with registry weights
    (``model.preset``, see `kerasbrain.applications.PretrainedModel`): heads matched to the
    preset's tasks by name, or a single head to a single task; ``{}`` without a preset."""
    preset = getattr(model, "preset", None)
    if not preset or not heads:
        return {}
    from kerasbrain import tasks as tasks_lib
    from kerasbrain.weights.registry import get_spec

    tasks = [tasks_lib.from_spec(task) for task in get_spec(preset).tasks]
    if len(tasks) == 1 and len(heads) == 1:
        return {next(iter(heads)): tasks[0]}
    by_name = {task.name: task for task in tasks}
    return {name: by_name[name] for name in heads if name in by_name}


def apply_copied_head(x, chain, task, rename_last=True):
    """Apply copies of ``chain``'s layers to ``x``; the last one is renamed to the task."""
    for i, layer in enumerate(chain):
        config = layer.get_config()
        if rename_last and i == len(chain) - 1:
            config["name"] = task.name
        elif not layer.name.startswith(task.name + "_"):
            config["name"] = f"{task.name}_{layer.name}"
        new = layer.__class__.from_config(config)
        x = new(x)
        new.set_weights(layer.get_weights())
    return x


def check_compatible(chain, task):
    """Raise unless the pretrained head's output size fits the task."""
    units = chain[0].units if isinstance(chain[0], keras.layers.Dense) else None
    expected = {"regression": 1, "binary": 1,
                "categorical": getattr(task, "n_classes", None),
                "soft_classification": getattr(task, "bins", None),
                "ranking": getattr(task, "thresholds", None)}[task.kind]
    head_units = [layer for layer in chain if isinstance(layer, keras.layers.Dense)][-1].units
    if head_units != expected:
        raise ValueError(
            f"the pretrained head for task {task.name!r} has {head_units} outputs but "
            f"{task!r} needs {expected}; pass rerange={{{task.name!r}: <old range>}} or "
            f"replace the head (replace_heads=True).")
    return units


def rerange_weights(old_kernel, old_bias, task, old_range):
    """Map a pretrained output layer's weights to ``task``'s bins / range.

    Args:
        old_kernel, old_bias: the pretrained output Dense weights.
        task: the new task.
        old_range: soft classification: the old ``bin_range``; ranking: the old
            ``value_range``; regression: ``(low, high)`` of a clamped head whose output is
            ``low + dense``, or ``{"scale": s, "offset": o}`` for ``o + s * dense``.

    Soft classification: bins with the same centre are copied; new bins outside the old
    range start from the nearest edge bin with logits lowered by 1 per bin of distance.
    Ranking: thresholds with the same value are copied; new ones beyond the old range
    start from the nearest edge threshold with the logit shifted by the distance.
    Regression: the old output is re-expressed in the task's (standardised) units.

    Returns:
        ``(kernel, bias)`` for the task's output Dense layer.
    """
    if task.kind == "regression":
        if isinstance(old_range, dict):
            scale, offset = float(old_range["scale"]), float(old_range["offset"])
        else:
            scale, offset = 1.0, float(old_range[0])
        mean, std = task._scale()
        return old_kernel * scale / std, (old_bias * scale + offset - mean) / std
    old_low, old_high = (float(v) for v in old_range)
    if task.kind == "soft_classification":
        old_bins = old_kernel.shape[1]
        step = (old_high - old_low) / old_bins
        old_centres = old_low + step * (np.arange(old_bins) + 0.5)
        index = np.abs(task.centres[:, None] - old_centres[None]).argmin(axis=1)
        distance = np.maximum(old_centres[0] - task.centres, task.centres - old_centres[-1])
        return old_kernel[:, index], old_bias[index] - np.maximum(distance, 0) / step
    if task.kind == "ranking":
        old_thresholds = old_low + np.arange(1, old_kernel.shape[1] + 1) - 0.5
        new_thresholds = task.value_range[0] + np.arange(1, task.thresholds + 1) - 0.5
        index = np.abs(new_thresholds[:, None] - old_thresholds[None]).argmin(axis=1)
        return old_kernel[:, index], old_bias[index] + (old_thresholds[index] - new_thresholds)
    raise ValueError(f"task {task.name!r} ({type(task).__name__}) has no range to re-range; "
                     "rerange applies to SoftClassification, Ranking and Regression tasks.")


def old_range_of(task, chain):
    """The ``old_range`` argument of ``rerange_weights`` for a pretrained task and its head
    layers ``chain``. Regression: the affine map the head's Rescaling layers apply after its
    output Dense (a clamp is the identity inside its range): ``{"scale", "offset"}``."""
    if task.kind == "soft_classification":
        return task.bin_range
    if task.kind == "ranking":
        return task.value_range
    if task.kind == "regression":
        last = max(i for i, layer in enumerate(chain) if isinstance(layer, keras.layers.Dense))
        scale, offset = 1.0, 0.0
        for layer in chain[last + 1:]:
            if isinstance(layer, keras.layers.Rescaling):
                scale, offset = scale * float(layer.scale), offset * float(layer.scale) + float(layer.offset)
        return {"scale": scale, "offset": offset}
    return None


def output_dense(model, task):
    """The Dense layer producing ``task``'s output in a MultiTaskModel."""
    for name in (task.name, f"{task.name}_dense"):
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        if isinstance(layer, keras.layers.Dense):
            return layer
    raise ValueError(f"no output Dense layer for task {task.name!r}.")


