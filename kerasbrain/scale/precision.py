"""Mixed precision: Keras dtype policies, loss scaling for float16, float32 heads.

``mixed_bfloat16`` and ``mixed_float16`` keep variables in float32 and compute in 16 bits.
float16 has a narrow exponent range, so its gradients underflow unless the loss is scaled
(``keras.optimizers.LossScaleOptimizer``); bfloat16 has float32's range and needs no
scaling. Model outputs (task heads) and losses should stay in float32: build head layers
with ``dtype="float32"``.
"""

import keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_ALIASES = {
    "fp32": "float32",
    "bf16": "mixed_bfloat16",
    "bfloat16": "mixed_bfloat16",
    "mixed_bf16": "mixed_bfloat16",
    "fp16": "mixed_float16",
    "float16": "mixed_float16",
    "mixed_fp16": "mixed_float16",
}


def resolve_precision(precision=None, loss_scaling=None):
    """Check a precision setting; return ``(policy_name, loss_scaling)``.

    Args:
        precision: ``"float32"`` (default), ``"mixed_bfloat16"`` or ``"mixed_float16"``
            (aliases ``"bf16"``, ``"fp16"``, ``"fp32"``).
        loss_scaling: dynamic loss scaling; ``None`` turns it on for float16. Must not be
            ``False`` with float16.

    Raises:
        ValueError: unknown precision, or float16 without loss scaling.
    """
    name = "float32" if precision is None else str(precision).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if name == "mixed_float16":
        if loss_scaling is False:
            raise ValueError(
                "precision 'mixed_float16' needs loss scaling: float16 gradients underflow "
                "to zero without it. Set loss_scaling: true (the default) or use "
                "'mixed_bfloat16', which needs none."
            )
        return name, True
    if loss_scaling:
        raise ValueError(
            f"loss_scaling applies to precision 'mixed_float16' only, got precision {name!r}."
        )
    return name, False


def set_precision(precision=None, loss_scaling=None):
    """Set the global Keras dtype policy (affects layers built afterwards).

    Returns:
        The policy name.
    """
    name, _ = resolve_precision(precision, loss_scaling)
    keras.mixed_precision.set_dtype_policy(name)
    return name


def wrap_optimizer(optimizer, precision):
    """Wrap ``optimizer`` in a ``LossScaleOptimizer`` under float16 (idempotent)."""
    name, loss_scaling = resolve_precision(precision)
    if loss_scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def non_float32_outputs(model):
    """Names of the model's output layers that do not return float32 tensors."""
    return [name for name, tensor in zip(model.output_names, model.outputs, strict=True)
            if keras.backend.standardize_dtype(tensor.dtype) != "float32"]


def check_model(model, precision):
    """Check a built (and, if compiled, its optimizer) model against ``precision``.

    Raises:
        ValueError: under mixed precision an output is not float32 (names the layers), or
            under float16 the compiled optimizer does not scale the loss.
    """
    name, loss_scaling = resolve_precision(precision)
    if name == "float32":
        return
    bad = non_float32_outputs(model)
    if bad:
        raise ValueError(
            f"precision {name!r}: outputs {bad} of model {model.name!r} are not float32. "
            "Heads and losses must compute in float32: build the output layers with "
            "dtype='float32'."
        )
    optimizer = getattr(model, "optimizer", None)
    if loss_scaling and optimizer is not None and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        raise ValueError(
            f"precision 'mixed_float16': model {model.name!r} was compiled with "
            f"{type(optimizer).__name__} without loss scaling; compile with "
            "auto_scale_loss=True or wrap it in keras.optimizers.LossScaleOptimizer."
        )
