"""3D Vision Transformers: ViTB16, ViTL16 and the generic ``ViT``.

Reference:
    Dosovitskiy A et al. An Image is Worth 16x16 Words: Transformers for Image Recognition
    at Scale. ICLR 2021.

The volume is cut into ``patch_size`` cubes (``kerasbrain.layers.PatchEmbedding3D``:
linear projection, class token, learned position embeddings), followed by pre-norm
transformer blocks (LayerNorm -> multi-head self-attention -> residual, LayerNorm -> MLP
with GELU -> residual) and a final LayerNorm. Position embeddings are learned for the
patch grid of the build size and trilinearly resized when weights saved at another size
are loaded (``model.load_weights``), so a model trained at one size can be rebuilt at
another (``input_shape=...``) and loaded.

Layer names: ``patch_embedding``, ``block{i}_ln1``, ``block{i}_attention``,
``block{i}_add1``, ``block{i}_ln2``, ``block{i}_mlp1``, ``block{i}_mlp2``, ``block{i}_add2``,
``encoder_norm``, ``predictions``.

keras.applications has no ViT, so there are no ImageNet weights to inflate.

Rematerialisation (``remat=``): see ``_common.remat_scope``; ``remat=True`` recomputes every
layer in the backward pass, so the attention layers do not keep their attention matrices
(``heads x tokens x tokens`` per example), which dominate memory at full volume sizes.
"""

import keras

from kerasbrain.applications import _common
from kerasbrain.layers.patch_embedding import PatchEmbedding3D

#: variant -> (hidden_dim, num_layers, num_heads, mlp_dim)
VARIANTS = {"B": (768, 12, 12, 3072), "L": (1024, 24, 16, 4096)}


def ViT(
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="vit", *, patch_size=16, hidden_dim=768,
    num_layers=12, num_heads=12, mlp_dim=3072, dropout=0.0, attention_dropout=0.0,
    layer_norm_epsilon=1e-6, remat=None,
):
    """Instantiate a 3D Vision Transformer.

    Args:
        include_top: whether to add the dense ``predictions`` layer on the class token.
        weights: ``None``, a registry name or a weights file (no ImageNet weights).
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(x, y, z, channels)`` with fixed spatial sizes (default
            ``(160, 192, 160, 1)``), each at least the patch size; voxels beyond the last
            whole patch are dropped.
        pooling: without the top: ``None`` (the patch tokens as a 5D map
            ``(batch, gx, gy, gz, hidden_dim)``), ``"avg"`` / ``"max"`` over the patch
            tokens, or ``"token"`` (the class token).
        classes, classifier_activation: the top's outputs and activation.
        name: model name.
        patch_size: int or ``(px, py, pz)`` voxels.
        hidden_dim, num_layers, num_heads, mlp_dim: transformer sizes.
        dropout, attention_dropout: dropout rates after embeddings/MLP and inside
            attention.
        layer_norm_epsilon: LayerNorm epsilon.
        remat: rematerialisation (see ``_common.remat_scope``).

    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else see ``pooling``.
    """
    spec, weights_file = _common.resolve_weights(weights, architecture="vit")
    patch = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
    input_shape = _common.volume_shape(input_shape, min(patch), include_top, "ViT")
    for size, p in zip(input_shape[:3], patch, strict=False):
        if size is None or size < p:
            raise ValueError(
                f"ViT: input_shape needs fixed spatial sizes of at least the patch size "
                f"{patch}; got {tuple(input_shape)}."
            )
    _common.check_weights_args(
        weights, include_top, classes, input_shape, "ViT", imagenet_available=False
    )
    if pooling not in (None, "avg", "max", "token"):
        raise ValueError(f"ViT: pooling must be None, 'avg', 'max' or 'token', got {pooling!r}.")
    if hidden_dim % num_heads:
        raise ValueError(f"ViT: hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}.")

    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        embedding = PatchEmbedding3D(hidden_dim, patch, name="patch_embedding")
        x = embedding(inputs)
        grid = embedding.grid_for((None, *input_shape))
        if dropout:
            x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
        for i in range(num_layers):
            x = encoder_block(
                x, num_heads, mlp_dim, dropout, attention_dropout, layer_norm_epsilon,
                name=f"block{i}",
            )
        x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="encoder_norm")(x)
        if include_top or pooling == "token":
            x = keras.layers.Cropping1D((0, x.shape[1] - 1), name="class_token")(x)
            x = keras.layers.Flatten(name="class_token_flat")(x)
            if include_top:
                x = keras.layers.Dense(
                    classes, activation=classifier_activation, name="predictions"
                )(x)
        else:
            x = keras.layers.Cropping1D((1, 0), name="patch_tokens")(x)
            x = keras.layers.Reshape((*grid, hidden_dim), name="token_map")(x)
            x = _common.global_pool(x, pooling, name="")
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    return _common.load_model_weights(model, weights, spec, weights_file, include_top)


def encoder_block(x, num_heads, mlp_dim, dropout, attention_dropout, epsilon, name):
    """Pre-norm transformer block on ``(batch, tokens, dim)``."""
    dim = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_ln1")(x)
    y = keras.layers.MultiHeadAttention(
        num_heads, dim // num_heads, dropout=attention_dropout, name=f"{name}_attention"
    )(y, y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout1")(y)
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_ln2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
    y = keras.layers.Dense(dim, name=f"{name}_mlp2")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout2")(y)
    return keras.layers.Add(name=f"{name}_add2")([x, y])


def _constructor(variant, patch):
    hidden_dim, num_layers, num_heads, mlp_dim = VARIANTS[variant]
    return _common.variant(
        ViT, f"ViT{variant}{patch}",
        f"Instantiate the 3D ViT-{variant}/{patch} (width {hidden_dim}, {num_layers} blocks, "
        f"{num_heads} heads, MLP {mlp_dim}, {patch}^3 patches).\n\n"
        "    Arguments as ``ViT`` without the transformer sizes.",
        default_name=f"vit_{variant.lower()}{patch}",
        keywords=(("patch_size", patch), ("dropout", 0.0), ("attention_dropout", 0.0), ("remat", None)),
        hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads, mlp_dim=mlp_dim,
    )


ViTB16 = _constructor("B", 16)
ViTL16 = _constructor("L", 16)


def preprocess_input(x, weights=None):
    """Scale volumes (array or backend tensor ``(..., x, y, z, channels)``) for ``weights``:
    ``None``: each volume standardised to zero mean and unit standard deviation (float32;
    there are no ImageNet weights for the 3D ViT, this is a neutral default); a registry or
    preset name: its preset's scaling.
    """
    if weights is not None:
        return _common.preset_preprocess(x, weights)
    import numpy as np

    x = _common.as_array(x)
    axes = tuple(range(x.ndim - 4, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return (x - mean) / np.where(std > 0, std, 1.0)


def decode_predictions(preds, top=5):
    """Not meaningful without ImageNet weights: raises with an explanation."""
    raise ValueError(
        "vit.decode_predictions: the 3D ViT has no ImageNet top to decode; decode a "
        "trained head with the task that trained it (kerasbrain.tasks)."
    )
