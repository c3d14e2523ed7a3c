"""Self-supervised losses in ``keras.ops`` (every backend).

NT-Xent (SimCLR; Chen et al. 2020): for ``2N`` embeddings (two views of ``N`` volumes),
L2-normalised, similarities ``s_ij = z_i . z_j / temperature``; each embedding's positive
is the other view of its volume and every other embedding is a negative::

    loss = mean_i  -log( exp(s_i,pos(i)) / sum_{k != i} exp(s_ik) )

y-aware InfoNCE (Dufumier et al., MICCAI 2021): positives are weighted by an RBF kernel
on a continuous label ``y`` (e.g. age)::

    w_ij = exp(-(y_i - y_j)^2 / (2 sigma^2)),  j != i, normalised to sum 1 over j
    loss = mean_i  -sum_{j != i} w_ij log( exp(s_ij) / sum_{k != i} exp(s_ik) )

A volume whose label is missing (NaN) keeps the NT-Xent weights (its other view only),
and counts as nobody else's positive. With every label missing it is NT-Xent.
"""

from keras import ops


def _check_batch(z1, z2):
    if len(z1.shape) != 2 or tuple(z1.shape) != tuple(z2.shape):
        raise ValueError(f"the two views' embeddings must both be (batch, d); got shapes "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}.")
    if z1.shape[0] is not None and z1.shape[0] < 2:
        raise ValueError(f"contrastive losses need at least 2 volumes per batch (the other "
                         f"volumes are the negatives); got a batch of {z1.shape[0]}.")


def check_temperature(temperature):
    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    return temperature


def pair_weights(batch, labels=None, sigma=None):
    """``(2N, 2N)`` positive weights, rows summing to 1 (zero diagonal).

    Rows ``0..N-1`` are the first views, ``N..2N-1`` the second. Without ``labels``:
    one-hot on the other view (NT-Xent). With ``labels`` ``(N,)`` (NaN = missing): the
    RBF kernel of width ``sigma`` between present labels, the other view always 1.
    """
    eye = ops.eye(batch)
    other_view = ops.concatenate([ops.concatenate([ops.zeros_like(eye), eye], 1),
                                  ops.concatenate([eye, ops.zeros_like(eye)], 1)], 0)
    if labels is None:
        return other_view
    y = ops.reshape(ops.cast(labels, "float32"), (-1,))
    present = ops.logical_not(ops.isnan(y))
    y = ops.where(present, y, ops.zeros_like(y))
    y = ops.concatenate([y, y], 0)
    present = ops.concatenate([present, present], 0)
    kernel = ops.exp(-ops.square(y[:, None] - y[None, :]) / (2.0 * float(sigma) ** 2))
    both = ops.logical_and(present[:, None], present[None, :])
    weights = ops.where(both, kernel, other_view)
    weights = weights * (1.0 - ops.eye(2 * batch))
    return weights / ops.sum(weights, axis=1, keepdims=True)


def contrastive_loss(z1, z2, temperature=0.1, labels=None, sigma=None):
    """NT-Xent, or the y-aware loss when ``labels`` and ``sigma`` are given (module docstring).

    Args:
        z1, z2: ``(N, d)`` embeddings of the two views (row ``i`` of both: volume ``i``).
        temperature: softmax temperature (> 0).
        labels: ``(N,)`` or ``(N, 1)`` continuous labels, NaN where missing.
        sigma: RBF kernel width, in the labels' units.

    Returns:
        Scalar loss (mean over the ``2N`` embeddings).
    """
    _check_batch(z1, z2)
    temperature = check_temperature(temperature)
    if labels is not None and not (sigma is not None and float(sigma) > 0):
        raise ValueError(f"the y-aware loss needs a kernel width sigma > 0, got {sigma!r}.")
    return _loss(z1, z2, temperature, labels, sigma)


def nt_xent(z1, z2, temperature=0.1):
    """NT-Xent (SimCLR) of two views' embeddings ``(N, d)``; see the module docstring."""
    return contrastive_loss(z1, z2, temperature)


def y_aware_nt_xent(z1, z2, labels, sigma, temperature=0.1):
    """The y-aware InfoNCE of Dufumier et al. (2021); see the module docstring."""
    return contrastive_loss(z1, z2, temperature, labels, sigma)


def _loss(z1, z2, temperature, labels=None, sigma=None):
    """The loss without checks (traced inside ``fit``, where the batch size may be unknown)."""
    z = ops.concatenate([z1, z2], 0)
    z = ops.cast(z, "float32")
    z = z / ops.sqrt(ops.maximum(ops.sum(ops.square(z), axis=1, keepdims=True), 1e-12))
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    batch = ops.shape(z1)[0]
    self_mask = ops.eye(2 * batch)
    logits = logits - 1e9 * self_mask
    log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    weights = pair_weights(batch, labels, sigma)
    return -ops.mean(ops.sum(weights * ops.where(self_mask > 0, 0.0, log_prob), axis=1))


def masked_mse(volumes, reconstruction, mask):
    """Mean squared error over the masked voxels only.

    Args:
        volumes, reconstruction: ``(batch, x, y, z, channels)``.
        mask: ``(batch, x, y, z, 1)``, 1 where a voxel was masked.

    Returns:
        ``sum(mask * (reconstruction - volumes)^2) / (sum(mask) * channels)``.
    """
    volumes = ops.cast(volumes, "float32")
    reconstruction = ops.cast(reconstruction, "float32")
    mask = ops.cast(mask, "float32")
    error = ops.sum(mask * ops.square(reconstruction - volumes))
    count = ops.sum(mask) * volumes.shape[-1]
    return error / ops.maximum(count, 1.0)
