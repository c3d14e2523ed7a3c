"""Shared test set-up. The Keras backend comes from KERAS_BACKEND (tensorflow by default).

Tests marked ``backend_independent`` check something that does not depend on the Keras
backend (file formats, registry, downloads, tf.data writing, layer structure, checkpoint
name mapping, search orchestration); they run once, on the TensorFlow backend, to keep the
JAX run lean. Each backend-specific path they touch has its own test on both backends.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "backend_independent: checks nothing backend-specific; runs on the TensorFlow backend only"
    )


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason="backend-independent: runs on the TensorFlow backend")
    for item in items:
        if "backend_independent" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache (``$KERAS_HOME``) for tests that download or cache weights."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def _gradients(loss, args):
    """Gradients of the scalar ``loss(*args)`` with respect to each argument."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.grad(loss, argnums=tuple(range(len(args))))(*args)
    if backend == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = loss(*args)
        return tape.gradient(value, args)
    if backend == "torch":
        import torch

        args = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
        loss(*args).backward()
        return [a.grad for a in args]
    pytest.skip(f"no gradients on the {backend} backend")


@pytest.fixture
def gradients():
    """``gradients(loss, args)``: gradients of the scalar ``loss(*args)`` w.r.t. each arg."""
    return _gradients
