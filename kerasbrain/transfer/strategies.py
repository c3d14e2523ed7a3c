"""Fine-tuning strategies: a pretrained model or backbone -> a compiled multi-task model.

- ``"scratch"``: the same architecture with fresh weights (``keras.models.clone_model``);
- ``"frozen"``: backbone not trainable and run in inference mode (BatchNorm statistics
  untouched, dropout off); only the heads learn (a linear probe without ``head_units``);
- ``"partial"``: the last ``trainable_blocks`` blocks of the backbone learn (see
  ``kerasbrain.transfer.blocks``), the rest is frozen;
- ``"full"``: everything learns; ``two_phase=n`` first trains the heads alone for ``n``
  epochs at ``head_learning_rate``, then everything at ``learning_rate`` (inside ``fit``).

``adapt_batchnorm=volumes`` first re-estimates the pretrained BatchNorm statistics on
unlabelled scans of the target site (``kerasbrain.transfer.adapt_batchnorm``): what the
frozen strategy (and the frozen blocks of ``"partial"``) then run with.
"""

import keras
import numpy as np

from kerasbrain import models as models_lib
from kerasbrain import tasks as tasks_lib
from kerasbrain.transfer import adapt as adapt_lib
from kerasbrain.transfer import heads as heads_lib
from kerasbrain.transfer.blocks import set_trainable_blocks

STRATEGIES = ("scratch", "frozen", "partial", "full")


def copy_model(model):
    """An independent copy of ``model`` (same architecture and weights)."""
    if isinstance(model, models_lib.MultiTaskModel) or hasattr(model, "preset"):
        clone = model.__class__.from_config(model.get_config())  # keeps tasks / preset
    else:
        clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def finetune(
    model_or_backbone, tasks, strategy="full", trainable_blocks=None, learning_rate=1e-3,
    head_learning_rate=None, two_phase=False, weight_decay=0.0, dropout=0.5, head_units=None,
    replace_heads=True, rerange=None, loss_weights=None, optimizer="adam", pooling="avg",
    name=None,
    adapt_batchnorm=None,
):
    """Build a compiled model to fine-tune a pretrained network on new tasks.

    Args:
        model_or_backbone: a backbone (outputs features ``(batch, d)`` or a 5D map), a
            pretrained model with Dense heads (e.g. ``SFCN(weights="ukb")`` with its
            top), or a ``MultiTaskModel``. It is copied, never modified.
        tasks: list of ``kerasbrain.tasks.Task``.
        strategy: ``"scratch"``, ``"frozen"``, ``"partial"`` or ``"full"`` (module docstring).
        trainable_blocks: with ``"partial"``: how many of the last backbone blocks learn.
        learning_rate: learning rate (the second phase's with ``two_phase``).
        head_learning_rate: the heads-only phase's rate (default ``10 * learning_rate``).
        two_phase: with ``"full"``: ``False``, or the number of heads-only epochs
            (``True`` = 5).
        weight_decay: decoupled weight decay (AdamW when > 0).
        dropout, head_units: the new heads (see ``kerasbrain.models.multitask``).
        replace_heads: ``True``: new heads for every task; ``False``: reuse the
            pretrained head of each task that has one (matched by output name; a single
            pretrained head matches a single task); or a list of task names to replace,
            reusing the rest. A reused head whose task differs from the pretrained one
            (other bins, range or standardisation) is re-ranged to it. The pretrained
            tasks are a ``MultiTaskModel``'s own, or those of the weight set a model was
            built with (``SFCN(weights="ukb")``: ``model.preset``, saved with the model).
        rerange: ``{task name: old range}`` for heads of models that know no tasks (built
            from a weights file or by hand): e.g. ``{"age": (42, 82)}`` carries 40 age
            bins over 42-82 to ``SoftClassification("age", bin_range=(18, 90), bins=72)``.
            Implies reuse.
        loss_weights: ``None``, ``{task: weight}`` or ``"uncertainty"``.
        optimizer: optimiser name or instance.
        pooling: pooling of a 5D backbone output.
        name: model name (default ``"<strategy>"``).
        adapt_batchnorm: optional unlabelled scans of the target site (an array
            ``(n, x, y, z, c)`` or an iterable, see ``adapt_batchnorm``): the copied
            backbone's BatchNorm statistics are re-estimated on them first. Not with
            ``"scratch"``.

    Returns:
        A compiled ``kerasbrain.models.MultiTaskModel``; ``model.fit`` trains it.
    """
    tasks = tasks_lib.check_tasks(tasks)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}.")
    if not isinstance(model_or_backbone, keras.Model):
        raise TypeError(f"model_or_backbone must be a keras.Model, got {type(model_or_backbone).__name__}.")
    if strategy == "partial" and trainable_blocks is None:
        raise ValueError("strategy='partial' needs trainable_blocks (how many last blocks learn).")
    if two_phase and strategy != "full":
        raise ValueError(f"two_phase applies to strategy='full', not {strategy!r}.")
    if adapt_batchnorm is not None and strategy == "scratch":
        raise ValueError("adapt_batchnorm adapts pretrained statistics; strategy='scratch' "
                         "starts from fresh weights.")

    pretrained = copy_model(model_or_backbone)
    backbone, heads, pretrained_tasks = heads_lib.split(pretrained)
    reuse = _heads_to_reuse(tasks, heads, replace_heads, rerange or {}, strategy)
    if adapt_batchnorm is not None:
        adapt_lib.adapt_batchnorm(backbone, adapt_batchnorm, verbose=0)
    if strategy == "scratch":
        backbone = keras.models.clone_model(backbone)

    backbone.trainable = strategy != "frozen"
    if strategy == "partial":
        set_trainable_blocks(backbone, trainable_blocks)

    inputs, x = models_lib.head_inputs(backbone, pooling, dropout, frozen=strategy == "frozen")
    outputs, copies = {}, []
    for task in tasks:
        if task.name not in reuse:
            outputs[task.name] = task.head(models_lib.hidden_layers(x, task, head_units))
            continue
        chain = heads[reuse[task.name]]
        old_task = pretrained_tasks.get(reuse[task.name])
        old_range = (rerange or {}).get(task.name)
        if old_range is None and old_task is not None and _differs(old_task, task):
            if old_task.kind != task.kind:
                raise ValueError(f"task {task.name!r} is {type(task).__name__} but the pretrained "
                                 f"head is {type(old_task).__name__}; replace it (replace_heads).")
            old_range = heads_lib.old_range_of(old_task, chain)
        if old_range is None:
            heads_lib.check_compatible(chain, task)
            outputs[task.name] = heads_lib.apply_copied_head(x, chain, task)
        else:
            hidden = [layer for layer in chain if layer.name.startswith(f"{task.name}_hidden")]
            h = heads_lib.apply_copied_head(x, hidden, task, rename_last=False)
            outputs[task.name] = task.head(h)
            old_dense = [layer for layer in chain if isinstance(layer, keras.layers.Dense)][-1]
            copies.append((task, old_dense, old_range))
    if loss_weights == "uncertainty":
        outputs = models_lib.UncertaintyWeighting([t.name for t in tasks], name=models_lib.UNCERTAINTY)(outputs)
    model = models_lib.MultiTaskModel(inputs, outputs, tasks=tasks, name=name or strategy)
    for task, old_dense, old_range in copies:
        kernel, bias = old_dense.get_weights()
        new_dense = heads_lib.output_dense(model, task)
        new_kernel, new_bias = heads_lib.rerange_weights(kernel, bias, task, old_range)
        new_dense.set_weights([new_kernel.astype("float32"), np.asarray(new_bias, "float32")])

    models_lib.compile_model(model, optimizer, learning_rate, weight_decay,
                             loss_weights if isinstance(loss_weights, dict) else None)
    if two_phase:
        model.two_phase = {
            "head_epochs": 5 if two_phase is True else int(two_phase),
            "head_learning_rate": head_learning_rate or 10 * learning_rate,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "loss_weights": loss_weights if isinstance(loss_weights, dict) else None,
        }
    return model


def _differs(old_task, task):
    """Whether a head must be re-ranged: the tasks differ in more than name and loss weight."""
    ignore = ("name", "weight")
    old = {k: v for k, v in old_task.get_config().items() if k not in ignore}
    return old != {k: v for k, v in task.get_config().items() if k not in ignore}


def _heads_to_reuse(tasks, heads, replace_heads, rerange, strategy):
    """``{task name: pretrained head name}`` of the heads to carry over."""
    names = [task.name for task in tasks]
    unknown = sorted(set(rerange) - set(names))
    if unknown:
        raise ValueError(f"rerange names {unknown}, which are not among the tasks {names}.")
    if strategy == "scratch" or (replace_heads is True and not rerange):
        return {}
    if replace_heads is True:
        replace = set(names) - set(rerange)
    elif replace_heads is False:
        replace = set()
    else:
        replace = set(replace_heads)
        unknown = sorted(replace - set(names))
        if unknown:
            raise ValueError(f"replace_heads names {unknown}, which are not among the tasks {names}.")
    keep = [name for name in names if name not in replace]
    reuse = {}
    for name in keep:
        if name in heads:
            reuse[name] = name
        elif len(heads) == 1 and len(keep) == 1:
            reuse[name] = next(iter(heads))
        elif name in rerange or replace_heads is not False:
            raise ValueError(
                f"cannot reuse or re-range a head for task {name!r}: the model has "
                f"{'no heads' if not heads else 'heads ' + str(sorted(heads))}.")
    return reuse
