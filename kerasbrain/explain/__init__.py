"""What the network looked at: 3D attribution maps on any backend, as NIfTI on the scan.

    from kerasbrain import explain
    maps = explain.integrated_gradients(model, volumes, output="age", steps=32)
    maps = explain.gradcam(model, volumes)                 # last 3D feature map
    maps = explain.lrp(model, volumes, rules="pyment")     # SFCN-like graphs
    image = explain.to_native(maps[0], "sub-01_T1w.nii.gz", preprocessor)

Every method returns float32 maps ``(n, x, y, z)`` on the model's input grid.
"""

from kerasbrain.explain.gradcam import gradcam, occlusion
from kerasbrain.explain.gradients import (
    RULES,
    integrated_gradients,
    make_baseline,
    path_nodes,
    smoothgrad,
)
from kerasbrain.explain.lrp import lrp
from kerasbrain.explain.targets import Target, resolve_target

METHODS = {
    "ig": integrated_gradients,
    "smoothgrad": smoothgrad,
    "gradcam": gradcam,
    "occlusion": occlusion,
    "lrp": lrp,
}

__all__ = ["METHODS", "RULES", "Target", "gradcam", "integrated_gradients", "lrp", "make_baseline",
           "occlusion", "path_nodes", "resolve_target", "smoothgrad"]
