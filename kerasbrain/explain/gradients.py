"""Gradient attributions: integrated gradients (Sundararajan et al. 2017) and SmoothGrad
(Smilkov et al. 2017), batched, on any backend with gradients."""

import numpy as np

from kerasbrain.explain import _common
from kerasbrain.explain.backend import gradient_function

BASELINES = ("zeros", "blur")
RULES = ("midpoint", "trapezoid", "gauss")


def path_nodes(steps, rule="midpoint"):
    """Quadrature of ``int_0^1 g(a) da`` with ``steps`` evaluations of ``g``.

    Returns float64 ``(alphas, weights)``, both ``(steps,)``; ``weights`` sum to 1.
    ``"midpoint"``: ``a_k = (k + 0.5) / steps``, equal weights; ``"trapezoid"``: ``steps``
    equally spaced points including both ends (``steps >= 2``); ``"gauss"``:
    Gauss-Legendre nodes, exact for polynomials of degree ``2 steps - 1``.
    """
    if rule == "midpoint":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    if rule == "trapezoid":
        if steps < 2:
            raise ValueError(f"the trapezoid rule needs steps >= 2, got {steps}")
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), w
    if rule == "gauss":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, w / 2.0
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def make_baseline(x, baseline="zeros", sigma=None):
    """The reference volumes ``(n, x, y, z, c)`` for ``x``.

    Args:
        x: volumes ``(n, x, y, z, c)``.
        baseline: ``"zeros"``, ``"blur"`` (each volume Gaussian-blurred with ``sigma``
            voxels, default 1/8 of its largest side: anatomy gone, intensities kept) or an
            array of the shape of one volume or of the batch.
    """
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros_like(x)
        if baseline == "blur":
            from scipy import ndimage

            sigma = max(x.shape[1:4]) / 8.0 if sigma is None else float(sigma)
            return np.stack([ndimage.gaussian_filter(v, (sigma, sigma, sigma, 0), mode="nearest")
                             for v in x]).astype("float32")
        raise ValueError(f"baseline must be one of {BASELINES} or an array, got {baseline!r}")
    base = np.asarray(baseline, dtype="float32")
    if base.shape == x.shape[1:4]:
        base = base[..., None]
    if base.shape == x.shape[1:]:
        base = np.broadcast_to(base, x.shape)
    if base.shape != x.shape:
        raise ValueError(f"baseline shape {np.shape(baseline)} does not match the volumes "
                         f"{x.shape} (give one volume {x.shape[1:]} or the whole batch)")
    return np.ascontiguousarray(base)


def integrated_gradients(model, volumes, output=None, baseline="zeros", steps=32, batch_size=4,
                         index=None, decode=None, rule="midpoint"):
    """Integrated gradients: ``(x - x0) * mean_k grad f(x0 + a_k (x - x0))``.

    The path integral uses the midpoint rule (``a_k = (k + 0.5) / steps``), so the
    attributions of a volume sum to ``f(x) - f(baseline)`` up to the quadrature error
    (completeness).

    Args:
        model: a functional Keras model with one volume input.
        volumes: ``(x, y, z)``, ``(x, y, z, c)`` or a batch ``(n, x, y, z, c)``.
        output: output name (multi-output models); see `kerasbrain.explain.resolve_target`.
        baseline: ``"zeros"``, ``"blur"`` or an array (one volume or the batch).
        steps: points on the path (at least 1).
        batch_size: path points per model call.
        index, decode: which unit / how to decode the output (see `resolve_target`).

    Returns:
        float32 ``(n, x, y, z)`` attributions, summed over channels, in the units of the
        explained value.
    """
    steps = _common.check_steps(steps)
    batch_size = _common.check_steps(batch_size, "batch_size")
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    base = make_baseline(x, baseline)
    alphas, weights = path_nodes(steps, rule)
    alphas = alphas.astype("float32")
    maps = np.zeros(x.shape, dtype="float32")
    grad = gradient_function(_common.model_value(graph, target), model)
    for i in range(len(x)):
        w = target.rows([i])
        delta = x[i] - base[i]
        total = np.zeros(x.shape[1:], dtype="float64")
        for start in range(0, steps, batch_size):
            a = alphas[start:start + batch_size].reshape(-1, 1, 1, 1, 1)
            _, g = grad(base[i] + a * delta, w)
            total += np.tensordot(weights[start:start + batch_size], g, axes=1)
        maps[i] = (delta * total).astype("float32")
    return maps.sum(axis=-1)


def smoothgrad(model, volumes, output=None, samples=16, noise=0.1, batch_size=4, seed=0,
               index=None, decode=None):
    """SmoothGrad: the gradient averaged over ``samples`` noisy copies of each volume.

    Args:
        noise: standard deviation of the Gaussian noise as a fraction of each volume's
            intensity range (max - min).
        samples: noisy copies per volume (at least 1).
        seed: seed of the noise.
        Other arguments as `integrated_gradients`.

    Returns:
        float32 ``(n, x, y, z)``: mean gradient (summed over channels), units of the
        explained value per intensity unit.
    """
    samples = _common.check_steps(samples, "samples")
    batch_size = _common.check_steps(batch_size, "batch_size")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    rng = np.random.default_rng(seed)
    maps = np.zeros(x.shape, dtype="float32")
    grad = gradient_function(_common.model_value(graph, target), model)
    for i in range(len(x)):
        w = target.rows([i])
        scale = noise * float(x[i].max() - x[i].min())
        total = np.zeros(x.shape[1:], dtype="float64")
        for start in range(0, samples, batch_size):
            count = min(batch_size, samples - start)
            noisy = x[i] + scale * rng.standard_normal((count, *x.shape[1:])).astype("float32")
            _, g = grad(noisy, w)
            total += g.sum(axis=0)
        maps[i] = (total / samples).astype("float32")
    return maps.sum(axis=-1)
