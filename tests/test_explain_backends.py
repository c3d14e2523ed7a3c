"""The same maps on TensorFlow, JAX and PyTorch: a model saved here is explained in a
subprocess on the other backend."""

import os
import subprocess
import sys

import numpy as np
import pytest

from kerasbrain import explain

pytestmark = [pytest.mark.backend_independent, pytest.mark.slow]

SCRIPT = """
import sys
import numpy as np
import keras
from kerasbrain import explain, models
model = models.load_model(sys.argv[1], compile=False)
x = np.load(sys.argv[2])
np.savez(sys.argv[3], ig=explain.integrated_gradients(model, x, output="age", steps=16),
         gradcam=explain.gradcam(model, x, output="age", layer="block1_relu"),
         hirescam=explain.gradcam(model, x, output="age", layer="block1_relu", variant="hirescam"),
         lrp=explain.lrp(model, x, output="age", rules="pyment"),
         occlusion=explain.occlusion(model, x, output="age", patch=8))
"""


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.torch)])
def test_tensorflow_and_other_backends_give_the_same_maps(tmp_path, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    from test_explain import sfcn_like, volumes

    model = sfcn_like(head="multitask")
    x = volumes(2)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "m.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "other.npz")], check=True, env=env, timeout=600)
    other = np.load(tmp_path / "other.npz")
    ours = {"ig": explain.integrated_gradients(model, x, output="age", steps=16),
            "gradcam": explain.gradcam(model, x, output="age", layer="block1_relu"),
            "hirescam": explain.gradcam(model, x, output="age", layer="block1_relu", variant="hirescam"),
            "lrp": explain.lrp(model, x, output="age", rules="pyment"),
            "occlusion": explain.occlusion(model, x, output="age", patch=8)}
    for name, value in ours.items():
        scale = np.abs(value).max()
        assert scale > 0, name
        # occlusion subtracts two outputs of ~65 (years): float32 steps of 8e-6
        tolerance = 1e-3 if name == "occlusion" else 1e-4
        np.testing.assert_allclose(other[name], value, atol=tolerance * scale, err_msg=name)
