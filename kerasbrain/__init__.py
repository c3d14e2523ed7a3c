"""kerasbrain: 3D deep learning for small brain-MRI datasets through transfer learning.

Submodules are imported on first use, so ``import kerasbrain`` is cheap and the
``kerasbrain`` command starts quickly::

    import kerasbrain as kb
    model = kb.applications.SFCN(weights="ukb")
"""

import importlib
import os
import platform
import sys

__version__ = "0.1.0"


def _prefer_onednn():
    """Turn on TensorFlow's oneDNN CPU kernels on x86 unless the user chose
    (``TF_ENABLE_ONEDNN_OPTS`` set) or TensorFlow is already imported.

    TensorFlow enables them by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; without
    them (AVX2 CPUs such as AMD EPYC and most laptops) its convolution gradients are several
    times slower. See docs/cpu.md.
    """
    if "tensorflow" in sys.modules or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


_prefer_onednn()

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
