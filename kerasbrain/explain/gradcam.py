"""Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ and HiResCAM for 3D feature maps, and
occlusion (Zeiler & Fergus 2014)."""

import numpy as np

from kerasbrain.explain import _common
from kerasbrain.explain.backend import forward_function, gradient_function


def feature_layer(graph, layer=None):
    """The step whose output is the 3D feature map: ``layer`` (a name) or the last one."""
    if layer is not None:
        step = graph.step(layer)
        if len(step.outputs) != 1 or len(graph.shape(step.outputs[0])) != 5:
            shapes = [graph.shape(o) for o in step.outputs]
            raise ValueError(f"layer {layer!r} gives {shapes}, not a 3D feature map "
                             "(batch, x, y, z, channels)")
        return step
    for step in reversed(graph.steps):
        if len(step.outputs) == 1 and len(graph.shape(step.outputs[0])) == 5:
            return step
    raise ValueError(f"model {graph.model.name!r} has no 3D feature map (no layer gives "
                     "(batch, x, y, z, channels)); Grad-CAM needs one: use integrated_gradients or lrp")


def upsample(maps, shape):
    """Trilinear resize of ``(n, a, b, c)`` maps to ``(n, *shape)``, voxel edges aligned."""
    from scipy import ndimage

    out = []
    for m in maps:
        zoom = [s / a for s, a in zip(shape, m.shape, strict=True)]
        up = ndimage.zoom(m, zoom, order=1, mode="nearest", grid_mode=True)
        out.append(up[: shape[0], : shape[1], : shape[2]])
    return np.stack(out).astype("float32")


VARIANTS = ("gradcam", "gradcam++", "hirescam")


def feature_gradients(model, volumes, layer=None, output=None, batch_size=None, index=None, decode=None):
    """Yield the volumes' batch shape ``(n, x, y, z, c)``, then per batch of volumes
    ``(A, dF/dA)``: the 3D feature map ``(b, i, j, k, channels)`` of ``layer`` and the
    gradient of the explained value with respect to it (float64, same shape)."""
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    batch_size = _common.path_batch(batch_size, x)
    step = feature_layer(graph, layer)
    feature_id = step.outputs[0]
    # values the layers after the feature map take from before it (skip connections)
    index_of = graph.steps.index(step)
    produced = {feature_id}
    needed = set()
    for later in graph.steps[index_of + 1:]:
        needed.update(i for i in later.inputs if i not in produced)
        produced.update(later.outputs)
    needed.discard(feature_id)
    keep = [feature_id, *sorted(needed)]
    trunk = forward_function(lambda t, w: graph.run(t, keep=keep)[1], model)
    yield x.shape
    for start in range(0, len(x), batch_size):
        rows = list(range(start, min(len(x), start + batch_size)))
        kept = trunk(x[rows])
        cache = {k: v for k, v in kept.items() if k != feature_id}
        head = gradient_function(
            lambda a, w, cache=cache: target(graph.run(a, start=step.name, cache=cache)[0], w), model)
        _, grads = head(kept[feature_id], target.rows(rows))
        yield np.asarray(kept[feature_id], dtype="float64"), np.asarray(grads, dtype="float64")


def class_activation(a, g, variant="gradcam"):
    """The map before the ReLU, ``(b, a, b, c)``, from features ``a`` and gradients ``g``.

    ``"gradcam"``: ``sum_c mean(g_c) a_c``; ``"gradcam++"``: channel weights
    ``sum alpha * ReLU(g_c)`` with ``alpha = g^2 / (2 g^2 + sum(a_c) g^3)`` (Chattopadhay et
    al. 2018, exponential-output form); ``"hirescam"``: ``sum_c g_c a_c`` voxel by voxel
    (Draelos & Carin 2020), the map's sum is then the first-order change of the value
    when the features are removed.
    """
    if variant == "gradcam":
        return (g.mean(axis=(1, 2, 3), keepdims=True) * a).sum(axis=-1)
    if variant == "gradcam++":
        g2 = g * g
        denominator = 2.0 * g2 + a.sum(axis=(1, 2, 3), keepdims=True) * g2 * g
        alpha = np.where(denominator != 0, g2 / np.where(denominator != 0, denominator, 1.0), 0.0)
        weights = (alpha * np.maximum(g, 0.0)).sum(axis=(1, 2, 3), keepdims=True)
        return (weights * a).sum(axis=-1)
    if variant == "hirescam":
        return (g * a).sum(axis=-1)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def gradcam(model, volumes, layer=None, output=None, batch_size=None, index=None, decode=None,
            upsampled=True, variant="gradcam"):
    """Grad-CAM: ``ReLU(sum_c mean(dF/dA_c) * A_c)`` on a 3D feature map ``A``.

    ``variant="hirescam"`` gives ``ReLU(sum_c dF/dA_c * A_c)``, the gradient kept voxel by
    voxel: it localises small structures that the channel means average away.

    Args:
        model: a functional Keras model with one volume input.
        volumes: ``(x, y, z)``, ``(x, y, z, c)`` or a batch ``(n, x, y, z, c)``.
        layer: name of the layer whose output is the feature map; ``None``: the last
            layer with a 3D output (SFCN: ``block5_relu``).
        output, index, decode: what to explain (see `kerasbrain.explain.resolve_target`).
        batch_size: volumes per model call (default: as many as make 4 M voxels, 1 at
            160x192x160, at most 8).
        upsampled: resize the maps to the input grid (trilinear); else the feature grid.
        variant: ``"gradcam"``, ``"gradcam++"`` or ``"hirescam"`` (see `class_activation`).

    Returns:
        float32 ``(n, x, y, z)`` maps (non-negative, arbitrary units).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    batches = feature_gradients(model, volumes, layer, output, batch_size, index, decode)
    shape = next(batches)
    maps = np.concatenate([np.maximum(class_activation(a, g, variant), 0.0) for a, g in batches])
    maps = maps.astype("float32")
    return upsample(maps, shape[1:4]) if upsampled else maps


def occlusion(model, volumes, patch=16, stride=None, value=0.0, output=None, batch_size=None,
              index=None, decode=None):
    """Occlusion: how much the explained value drops when a cube of voxels is set to ``value``.

    Args:
        patch: cube side in voxels (int or 3 ints).
        stride: step between cubes (default: ``patch``, no overlap).
        value: intensity the occluded voxels get.
        batch_size: occluded copies per model call (default: as many as make 4 M voxels,
            1 at 160x192x160, at most 8).
        Other arguments as `gradcam`.

    Returns:
        float32 ``(n, x, y, z)``: ``f(x) - f(x occluded)`` averaged over the cubes
        covering each voxel (units of the explained value).
    """
    graph, x, target = _common.prepare(model, volumes, output, index, decode)
    batch_size = _common.path_batch(batch_size, x)
    spatial = x.shape[1:4]
    patch = np.broadcast_to(np.asarray(patch, dtype=int), (3,))
    stride = patch if stride is None else np.broadcast_to(np.asarray(stride, dtype=int), (3,))
    if np.any(patch < 1) or np.any(stride < 1) or np.any(patch > spatial):
        raise ValueError(f"patch {patch.tolist()} and stride {stride.tolist()} must be at least 1 "
                         f"and fit the volume {spatial}")
    starts = [sorted({*range(0, n - p + 1, s), n - p}) for n, p, s in zip(spatial, patch, stride, strict=True)]
    corners = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    run = forward_function(_common.model_value(graph, target), model)
    maps = np.zeros((len(x), *spatial), dtype="float64")
    for i in range(len(x)):
        w = target.rows([i])
        reference = float(run(x[i:i + 1], w)[0])
        counts = np.zeros(spatial)
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            batch = np.repeat(x[i:i + 1], len(chunk), axis=0)
            for k, (a, b, c) in enumerate(chunk):
                batch[k, a:a + patch[0], b:b + patch[1], c:c + patch[2]] = value
            values = run(batch, w)
            for (a, b, c), v in zip(chunk, values, strict=True):
                region = (i, slice(a, a + patch[0]), slice(b, b + patch[1]), slice(c, c + patch[2]))
                maps[region] += reference - float(v)
                counts[region[1:]] += 1
        maps[i] /= np.maximum(counts, 1)
    return maps.astype("float32")
