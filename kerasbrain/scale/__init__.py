"""Scaling training up: mixed precision, XLA, gradient accumulation, rematerialisation and
data-parallel training over devices and hosts, all through Keras' own mechanisms.

    plan = kb.scale.configure(precision="mixed_bfloat16", distribution={"devices": "all"})
    with plan.scope():
        model = ...; model.compile(optimizer=plan.optimizer("adam"), **plan.compile_kwargs)
        model.fit(...)
"""

from kerasbrain.scale.distribution import local_devices
from kerasbrain.scale.plan import (
    CONFIG_KEYS,
    ScalePlan,
    check_remat,
    configure,
    from_config,
    parse_config,
)
from kerasbrain.scale.precision import (
    PRECISIONS,
    check_model,
    non_float32_outputs,
    resolve_precision,
    set_precision,
    wrap_optimizer,
)

__all__ = [
    "CONFIG_KEYS",
    "PRECISIONS",
    "ScalePlan",
    "check_model",
    "check_remat",
    "configure",
    "from_config",
    "local_devices",
    "non_float32_outputs",
    "parse_config",
    "resolve_precision",
    "set_precision",
    "wrap_optimizer",
]
