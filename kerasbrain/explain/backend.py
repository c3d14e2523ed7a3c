"""One gradient helper for the TensorFlow, JAX and PyTorch backends.

``gradient_function(fn, model)`` turns ``fn(x, w)`` (a function of a backend tensor ``x``
and an auxiliary array ``w``, returning one value per batch row, written in
``keras.ops``) into a NumPy function ``(x, w) -> (fn(x, w), d sum(fn(x, w)) / dx)``: TensorFlow through ``tf.GradientTape``, JAX through
``jax.value_and_grad`` (jit-compiled, the model's variables passed in through a
``keras.StatelessScope`` as ``stateless_call`` does), PyTorch through autograd.
"""

import keras
import numpy as np

_NONE = np.zeros(1, dtype="float32")  # the auxiliary input when a function needs none


def _jax_stateless(fn, model, grad):
    import jax

    variables = list(model.variables) if model is not None else []

    def pure(values, x, w):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return fn(x, w)

    def summed(values, x, w):
        y = pure(values, x, w)
        return keras.ops.sum(y), y

    compiled = jax.jit(jax.value_and_grad(summed, argnums=1, has_aux=True) if grad else pure)

    def call(x, w):
        values = [v.value for v in variables]
        if grad:
            (_, y), g = compiled(values, x, w)
            return np.asarray(y), np.asarray(g)
        return keras.tree.map_structure(np.asarray, compiled(values, x, w))

    return call


def gradient_function(fn, model=None):
    """``(x, w) (NumPy) -> (fn(x, w) (batch,), gradient (like x))`` on the current backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        jitted = _jax_stateless(fn, model, grad=True)
        return lambda x, w=_NONE: jitted(np.asarray(x, dtype="float32"), np.asarray(w, dtype="float32"))
    if backend == "tensorflow":
        import tensorflow as tf

        def call(x, w=_NONE):
            x = tf.convert_to_tensor(np.asarray(x, dtype="float32"))
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x, np.asarray(w, dtype="float32"))
            return y.numpy(), tape.gradient(y, x).numpy()

        return call
    if backend == "torch":
        import torch

        def call(x, w=_NONE):
            x = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32")).detach().requires_grad_(True)
            with torch.enable_grad():
                y = fn(x, np.asarray(w, dtype="float32"))
                (g,) = torch.autograd.grad(y.sum(), x)
            return y.detach().cpu().numpy(), g.detach().cpu().numpy()

        return call
    raise ValueError(f"explanations need gradients: the {backend!r} backend has none here "
                     "(use tensorflow, jax or torch)")


def forward_function(fn, model=None):
    """``(x, w) (NumPy) -> fn(x, w)`` as NumPy, without gradients (jit-compiled on JAX)."""
    if keras.backend.backend() == "jax":
        jitted = _jax_stateless(fn, model, grad=False)
        return lambda x, w=_NONE: jitted(np.asarray(x, dtype="float32"), np.asarray(w, dtype="float32"))

    def call(x, w=_NONE):
        y = fn(keras.ops.convert_to_tensor(np.asarray(x, dtype="float32")), np.asarray(w, dtype="float32"))
        return keras.tree.map_structure(keras.ops.convert_to_numpy, y)

    if keras.backend.backend() == "torch":
        import torch

        def no_grad(x, w=_NONE):
            with torch.no_grad():
                return call(x, w)

        return no_grad
    return call
