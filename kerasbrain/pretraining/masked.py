"""Masked-volume modelling as a ``keras.Model`` trained with ``fit``.

Convolutional backbones (SimMIM, Xie et al. 2022; SparK-style input masking): random
cubes of ``patch_size`` voxels are replaced by a learned mask value, the backbone's last
feature map goes through a light decoder (by default a 1x1x1 convolution to
``stride^3 x channels`` values per position and a 3D pixel shuffle, SimMIM's linear
head) and the loss is the mean squared error on the masked voxels only.

ViT backbones (MAE, He et al. 2022): the encoder sees only the visible patch tokens (plus
the class token); a small transformer decoder gets them back with learned mask tokens at
the masked positions and predicts every patch's voxels; same loss.
"""

import math

import keras
import numpy as np
from keras import ops

from kerasbrain.layers.patch_embedding import PatchEmbedding3D
from kerasbrain.pretraining import losses
from kerasbrain.pretraining.contrastive import _with_layer_losses


@keras.saving.register_keras_serializable(package="kerasbrain")
class PixelShuffle3D(keras.layers.Layer):
    """``(batch, gx, gy, gz, sx * sy * sz * c)`` -> ``(batch, gx * sx, gy * sy, gz * sz, c)``."""

    def __init__(self, factors, **kwargs):
        super().__init__(**kwargs)
        self.factors = tuple(int(f) for f in factors)

    def call(self, x):
        (gx, gy, gz), (sx, sy, sz) = x.shape[1:4], self.factors
        c = x.shape[-1] // math.prod(self.factors)
        x = ops.reshape(x, (-1, gx, gy, gz, sx, sy, sz, c))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3, 6, 7))
        return ops.reshape(x, (-1, gx * sx, gy * sy, gz * sz, c))

    def compute_output_shape(self, shape):
        c = shape[-1] // math.prod(self.factors)
        return (shape[0], *(g * s for g, s in zip(shape[1:4], self.factors, strict=True)), c)

    def get_config(self):
        return {**super().get_config(), "factors": list(self.factors)}


def _feature_map(backbone):
    """The backbone's last 5D tensor (the map before global pooling)."""
    for layer in reversed(backbone.layers):
        if isinstance(layer, keras.layers.InputLayer):
            break
        if len(layer.output.shape) == 5:
            return layer.output
    raise ValueError(f"backbone {backbone.name!r} has no 5D feature map to reconstruct from.")


def _upsample_mask(mask, grid, patch):
    """``(batch, gx * gy * gz)`` patch mask -> ``(batch, x, y, z, 1)`` voxel mask."""
    (gx, gy, gz), (px, py, pz) = grid, patch
    mask = ops.reshape(mask, (-1, gx, 1, gy, 1, gz, 1, 1))
    mask = ops.tile(mask, (1, 1, px, 1, py, 1, pz, 1))
    return ops.reshape(mask, (-1, gx * px, gy * py, gz * pz, 1))


@keras.saving.register_keras_serializable(package="kerasbrain")
class MaskedVolume(keras.Model):
    """Masked-volume pretraining of ``backbone`` (module docstring).

    Args:
        backbone: a ``keras.Model`` with a fixed input size: a convolutional backbone
            (any pooling; its last 5D feature map is decoded) or a kerasbrain ViT (MAE).
        mask_ratio: share of patches masked per volume, in (0, 1).
        patch_size: masked cube side (int or 3 ints, voxels); must divide the input size.
            For a ViT it must be the ViT's own patch size.
        decoder: convolutional backbones: a Keras layer mapping the feature map to a
            volume of the input's shape; ``None``: the linear SimMIM head.
        decoder_dim, decoder_heads: the MAE decoder's width and heads (ViT).
        seed: seed of the masks.

    Calling the model returns ``{"reconstruction": (batch, x, y, z, c), "mask":
    (batch, x, y, z, 1)}`` for a freshly drawn mask (1 = masked).
    """

    def __init__(self, backbone, mask_ratio=0.6, patch_size=16, decoder=None, decoder_dim=128,
                 decoder_heads=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, keras.Model):
            raise TypeError(f"backbone must be a keras.Model, got {type(backbone).__name__}.")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio!r}.")
        self.backbone, self.mask_ratio, self.seed = backbone, float(mask_ratio), seed
        self.patch_size = (int(patch_size),) * 3 if isinstance(patch_size, int | np.integer) \
            else tuple(int(p) for p in patch_size)
        shape = tuple(backbone.input_shape[1:])
        if len(shape) != 4 or any(s is None for s in shape):
            raise ValueError(f"backbone {backbone.name!r} needs a fixed input shape (x, y, z, c), "
                             f"got {shape}.")
        self.volume_shape = shape
        for size, patch in zip(shape[:3], self.patch_size, strict=True):
            if patch < 1 or size % patch:
                raise ValueError(f"patch_size {self.patch_size} does not divide the input size "
                                 f"{shape[:3]}.")
        self.grid = tuple(s // p for s, p in zip(shape[:3], self.patch_size, strict=True))
        self.patches = math.prod(self.grid)
        self.masked = min(self.patches - 1, max(1, round(self.mask_ratio * self.patches)))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.decoder_dim, self.decoder_heads = int(decoder_dim), int(decoder_heads)
        embedding = [layer for layer in backbone.layers if isinstance(layer, PatchEmbedding3D)]
        self.mae = bool(embedding)
        channels = shape[-1]
        if self.mae:
            if decoder is not None:
                raise ValueError("decoder: the ViT's MAE decoder is built in (decoder_dim, decoder_heads).")
            self.embedding = embedding[0]
            if tuple(self.embedding.patch_size) != self.patch_size:
                raise ValueError(f"patch_size {self.patch_size} must be the ViT's patch size "
                                 f"{tuple(self.embedding.patch_size)}.")
            self._build_mae_decoder(channels)
            self.decoder = None
        else:
            self.encoder = keras.Model(backbone.inputs, _feature_map(backbone), name=f"{backbone.name}_map")
            fmap = tuple(self.encoder.output.shape[1:4])
            stride = tuple(s // g for s, g in zip(shape[:3], fmap, strict=True))
            if decoder is None:
                if any(s % g for s, g in zip(shape[:3], fmap, strict=True)):
                    raise ValueError(f"the feature map {fmap} does not tile the input {shape[:3]}: "
                                     f"give a decoder.")
                decoder = keras.Sequential(
                    [keras.layers.Conv3D(math.prod(stride) * channels, 1, name="decoder_projection"),
                     PixelShuffle3D(stride, name="decoder_shuffle")], name="decoder")
            self.decoder = decoder
            self.decoder.build(self.encoder.output.shape)
            self.mask_token = self.add_weight(shape=(channels,), initializer="zeros", name="mask_token")
        self.built = True  # every variable exists: fit's BackupAndRestore may restore at once

    def _build_mae_decoder(self, channels):
        dim, heads = self.decoder_dim, self.decoder_heads
        self.decoder_embed = keras.layers.Dense(dim, name="decoder_embed")
        self.mask_token = self.add_weight(shape=(1, 1, dim), name="mask_token",
                                          initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.decoder_position = self.add_weight(shape=(1, self.patches, dim), name="decoder_position",
                                                initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.decoder_ln1 = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_ln1")
        self.decoder_attention = keras.layers.MultiHeadAttention(heads, dim // heads, name="decoder_attention")
        self.decoder_ln2 = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_ln2")
        self.decoder_mlp1 = keras.layers.Dense(2 * dim, activation="gelu", name="decoder_mlp1")
        self.decoder_mlp2 = keras.layers.Dense(dim, name="decoder_mlp2")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.decoder_pred = keras.layers.Dense(math.prod(self.patch_size) * channels, name="decoder_pred")
        width = self.embedding.hidden_dim
        for layer, shape in ((self.decoder_embed, width), (self.decoder_ln1, dim), (self.decoder_ln2, dim),
                             (self.decoder_mlp1, dim), (self.decoder_mlp2, 2 * dim),
                             (self.decoder_norm, dim), (self.decoder_pred, dim)):
            layer.build((None, None, shape))
        self.decoder_attention.build((None, self.patches, dim), (None, self.patches, dim))

    def build(self, input_shape=None):
        self.built = True

    def _ranks(self, batch):
        """Per volume, each patch's rank in a random order ``(batch, patches)``."""
        noise = keras.random.uniform((batch, self.patches), seed=self.seed_generator)
        order = ops.argsort(noise, axis=1)
        return order, ops.argsort(order, axis=1)

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        batch = ops.shape(x)[0]
        order, rank = self._ranks(batch)
        mask = ops.cast(rank >= self.patches - self.masked, x.dtype)  # (batch, patches)
        voxels = _upsample_mask(mask, self.grid, self.patch_size)
        if self.mae:
            reconstruction = self._mae(x, order, rank, training)
        else:
            filled = x * (1.0 - voxels) + voxels * ops.cast(self.mask_token, x.dtype)
            reconstruction = self.decoder(self.encoder(filled, training=training), training=training)
        return {"reconstruction": reconstruction, "mask": voxels}

    def _mae(self, x, order, rank, training):
        n = self.backbone
        visible = self.patches - self.masked
        tokens = self.embedding(x)
        cls, patches = tokens[:, :1], tokens[:, 1:]
        keep = ops.expand_dims(order[:, :visible], -1)
        h = ops.concatenate([cls, ops.take_along_axis(patches, keep, axis=1)], 1)
        names = {layer.name for layer in n.layers}
        if "embedding_dropout" in names:
            h = n.get_layer("embedding_dropout")(h, training=training)
        i = 0
        while f"block{i}_ln1" in names:
            y = n.get_layer(f"block{i}_ln1")(h)
            y = n.get_layer(f"block{i}_attention")(y, y, training=training)
            if f"block{i}_dropout1" in names:
                y = n.get_layer(f"block{i}_dropout1")(y, training=training)
            h = h + y
            y = n.get_layer(f"block{i}_mlp2")(n.get_layer(f"block{i}_mlp1")(n.get_layer(f"block{i}_ln2")(h)))
            if f"block{i}_dropout2" in names:
                y = n.get_layer(f"block{i}_dropout2")(y, training=training)
            h = h + y
            i += 1
        h = self.decoder_embed(n.get_layer("encoder_norm")(h))[:, 1:]
        mask_tokens = ops.zeros_like(h[:, :1, :1]) + ops.cast(self.mask_token, h.dtype)
        mask_tokens = ops.repeat(mask_tokens, self.masked, axis=1)
        h = ops.concatenate([h, mask_tokens], 1)
        h = ops.take_along_axis(h, ops.expand_dims(rank, -1), axis=1)
        h = h + ops.cast(self.decoder_position, h.dtype)
        y = self.decoder_ln1(h)
        h = h + self.decoder_attention(y, y, training=training)
        h = h + self.decoder_mlp2(self.decoder_mlp1(self.decoder_ln2(h)))
        out = self.decoder_pred(self.decoder_norm(h))  # (batch, patches, prod(patch) * c)
        (gx, gy, gz), (px, py, pz), c = self.grid, self.patch_size, self.volume_shape[-1]
        out = ops.reshape(out, (-1, gx, gy, gz, px, py, pz, c))
        out = ops.transpose(out, (0, 1, 4, 2, 5, 3, 6, 7))
        return ops.reshape(out, (-1, gx * px, gy * py, gz * pz, c))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = losses.masked_mse(x, y_pred["reconstruction"], y_pred["mask"])
        return _with_layer_losses(self, loss)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "mask_ratio": self.mask_ratio,
            "patch_size": list(self.patch_size),
            "decoder": None if self.mae else keras.saving.serialize_keras_object(self.decoder),
            "decoder_dim": self.decoder_dim,
            "decoder_heads": self.decoder_heads,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("decoder") is not None:
            config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
