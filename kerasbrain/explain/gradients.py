"""Gradient attributions: integrated gradients (Sundararajan et al. 2017) and SmoothGrad
(Smilkov et al. 2017), batched, on any backend with gradients."""

import numpy as np

from kerasbrain.explain import _common
from kerasbrain.explain.backend import gradient_function

BASELINES = ("zeros", "blur")
RULES = ("adaptive", "midpoint", "trapezoid", "gauss")


def path_nodes(steps, rule="midpoint"):
    """Fixed quadrature of ``int_0^1 g(a) da`` with ``steps`` evaluations of ``g``.

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
    if rule == "adaptive":
        raise ValueError("the adaptive rule chooses its nodes on the path; see integrated_gradients")
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _fixed_path(grad, start, delta, w, steps, batch_size, rule):
    """``sum_k w_k grad f(start + a_k delta)`` on the nodes of `path_nodes`."""
    alphas, weights = path_nodes(steps, rule)
    alphas = alphas.astype("float32")
    total = np.zeros(start.shape, dtype="float64")
    for first in range(0, steps, batch_size):
        a = alphas[first:first + batch_size].reshape(-1, 1, 1, 1, 1)
        _, g = grad(start + a * delta, w)
        total += np.tensordot(weights[first:first + batch_size], g, axes=1)
    return total


def _adaptive_path(grad, start, delta, w, steps, batch_size):
    """Adaptive trapezoid rule for ``int_0^1 grad f(start + a delta) da``.

    ``steps // 4 + 1`` equally spaced nodes (both ends included) first; then, four at a
    time, the intervals whose trapezoid estimate of ``f(b) - f(a)`` (the path
    integral of ``grad f . delta``, known exactly from the model's outputs at the ends)
    misses it most are halved (or cut in more parts when only a few intervals miss by
    more than a tenth of the worst), until ``steps`` gradients are spent. Holds the ``steps``
    gradients of one volume in memory.
    """
    nodes = list(np.linspace(0.0, 1.0, max(2, min(steps, steps // 4 + 1))))
    values, slopes, grads = [], [], []

    def evaluate(alphas):
        a = np.asarray(alphas, dtype="float32").reshape(-1, 1, 1, 1, 1)
        for first in range(0, len(a), batch_size):
            f, g = grad(start + a[first:first + batch_size] * delta, w)
            values.extend(np.ravel(f)[:len(g)].tolist())
            slopes.extend(np.sum(g * delta, axis=(1, 2, 3, 4), dtype="float64").tolist())
            grads.extend(g)

    evaluate(nodes)
    while len(nodes) < steps:
        order = np.argsort(nodes)
        a, f, s = (np.asarray(v, dtype="float64")[order] for v in (nodes, values, slopes))
        h = np.diff(a)
        error = np.abs(h * (s[1:] + s[:-1]) / 2 - np.diff(f))
        budget = min(4, steps - len(nodes))
        worst = [k for k in np.argsort(-error) if error[k] >= 0.1 * error.max()][:budget]
        pieces = np.bincount(np.resize(worst, budget), minlength=len(h))  # new points per interval
        new = [a[k] + h[k] * (j + 1) / (pieces[k] + 1) for k in np.flatnonzero(pieces)
               for j in range(pieces[k])]
        nodes.extend(new)
        evaluate(new)
    order = np.argsort(nodes)
    a = np.asarray(nodes, dtype="float64")[order]
    weights = np.zeros(len(a))
    weights[1:] += np.diff(a) / 2
    weights[:-1] += np.diff(a) / 2
    return np.tensordot(weights, np.stack([grads[i] for i in order]), axes=1)


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


def integrated_gradients(model, volumes, output=None, baseline="zeros", steps=32, batch_size=None,
                         index=None, decode=None, rule="adaptive"):
    """Integrated gradients: ``(x - x0) * int_0^1 grad f(x0 + a (x - x0)) da``.

    The attributions of a volume sum to ``f(x) - f(x0)`` (completeness) up to the error of
    the path integral's quadrature. The default ``rule="adaptive"`` spends a quarter of the
    ``steps`` gradients on an even grid and the rest halving the intervals where the
    integral is least accurate, judged by the model's output at their ends; on a trained
    ReLU classifier it sums to within 1% at ``steps=64`` where an even grid needs 128
    (docs/explain.md). ``"midpoint"``, ``"trapezoid"`` and ``"gauss"`` use the fixed nodes
    of `path_nodes`.

    Args:
        model: a functional Keras model with one volume input.
        volumes: ``(x, y, z)``, ``(x, y, z, c)`` or a batch ``(n, x, y, z, c)``.
        output: output name (multi-output models); see `kerasbrain.explain.resolve_target`.
        baseline: ``"zeros"``, ``"blur"`` or an array (one volume or the batch).
        steps: gradient evaluations per volume (at least 1; 2 for the adaptive and
            trapezoid rules). The adaptive rule holds ``steps`` gradients of one volume in
            memory (1.3 GB for 64 at 160x192x160).
        batch_size: path points per model call (default: as many as make 4 M voxels,
            1 at 160x192x160, at most 8).
        index, decode: which unit / how to decode the output (see `resolve_target`).
        rule: ``"adaptive"``, ``"midpoint"``, ``"trapezoid"`` or ``"gauss"``.

    Returns:
        float32 ``(n, x, y, z)`` attributions, summed over channels, in the units of the
        explained value.
    """
    steps = _common.check_steps(steps)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule in ("adaptive", "trapezoid") and steps < 2:
        raise ValueError(f"the {rule} rule needs steps >= 2 (both ends of the path), got {steps}")
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    batch_size = _common.path_batch(batch_size, x)
    base = make_baseline(x, baseline)
    maps = np.zeros(x.shape, dtype="float32")
    grad = gradient_function(_common.model_value(graph, target), model)
    for i in range(len(x)):
        w = target.rows([i])
        delta = x[i] - base[i]
        if rule == "adaptive":
            total = _adaptive_path(grad, base[i], delta, w, steps, batch_size)
        else:
            total = _fixed_path(grad, base[i], delta, w, steps, batch_size, rule)
        maps[i] = (delta * total).astype("float32")
    return maps.sum(axis=-1)


def smoothgrad(model, volumes, output=None, samples=16, noise=0.1, batch_size=None, seed=0,
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
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    batch_size = _common.path_batch(batch_size, x)
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
