"""kerasbrain: 3D deep learning for small brain-MRI datasets through transfer learning.

Submodules are imported on first use, so ``import kerasbrain`` is cheap and the
``kerasbrain`` command starts quickly::

    import kerasbrain as kb
    model = kb.applications.SFCN(weights="ukb")
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "applications",
    "brainage",
    "config",
    "data",
    "datasets",
    "demo",
    "explain",
    "files",
    "inference",
    "layers",
    "models",
    "progress",
    "pretraining",
    "scale",
    "tasks",
    "training",
    "transfer",
    "tuning",
    "weights",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerasbrain' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
