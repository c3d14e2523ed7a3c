"""3D patch embedding with a class token and learned, resizable position embeddings."""

import keras
import numpy as np
from keras import ops


def linear_resize_matrix(size_in, size_out):
    """``(size_out, size_in)`` matrix of 1D linear interpolation, half-pixel centres.

    Equals ``torch.nn.functional.interpolate(mode="linear", align_corners=False)`` and
    ``jax.image.resize(method="linear")`` for upsampling.
    """
    matrix = np.zeros((size_out, size_in), dtype="float32")
    scale = size_in / size_out
    for i in range(size_out):
        pos = min(max((i + 0.5) * scale - 0.5, 0.0), size_in - 1)
        low = int(np.floor(pos))
        high = min(low + 1, size_in - 1)
        frac = pos - low
        matrix[i, low] += 1.0 - frac
        matrix[i, high] += frac
    return matrix


def resize_position_embedding(embedding, grid_in, grid_out):
    """Trilinearly resize patch position embeddings from ``grid_in`` to ``grid_out``.

    Args:
        embedding: ``(1, 1 + prod(grid_in), dim)``: the class token's entry first.
        grid_in, grid_out: ``(gx, gy, gz)`` patch grids.

    Returns:
        ``(1, 1 + prod(grid_out), dim)`` (a tensor of the active backend).
    """
    grid_in, grid_out = tuple(int(g) for g in grid_in), tuple(int(g) for g in grid_out)
    embedding = ops.convert_to_tensor(embedding)
    if grid_in == grid_out:
        return embedding
    dim = embedding.shape[-1]
    cls, patches = embedding[:, :1], embedding[:, 1:]
    grid = ops.reshape(patches, (*grid_in, dim))
    mx, my, mz = (
        ops.convert_to_tensor(linear_resize_matrix(a, b), dtype=embedding.dtype)
        for a, b in zip(grid_in, grid_out, strict=False)
    )
    grid = ops.einsum("ax,by,cz,xyzd->abcd", mx, my, mz, grid)
    patches = ops.reshape(grid, (1, int(np.prod(grid_out)), dim))
    return ops.concatenate([cls, patches], axis=1)


@keras.saving.register_keras_serializable(package="kerasbrain")
class PatchEmbedding3D(keras.layers.Layer):
    """Cut a volume into cubes, project each to a token, add a class token and positions.

    The projection is a Conv3D with kernel size = stride = ``patch_size`` (voxels beyond
    the last whole patch are dropped). Position embeddings are learned for the patch grid
    of the input shape the layer is built with; weights saved at another grid (another
    input size or patch count) are trilinearly resized when loaded.

    Args:
        hidden_dim: token width.
        patch_size: int or ``(px, py, pz)`` in voxels.

    Input: ``(batch, x, y, z, channels)``. Output: ``(batch, 1 + gx * gy * gz, hidden_dim)``
    with ``g = size // patch``; the class token comes first.
    """

    def __init__(self, hidden_dim, patch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        if isinstance(patch_size, int):
            patch_size = (patch_size,) * 3
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size must be an int or 3 ints, got {patch_size}.")

    def grid_for(self, input_shape):
        """The patch grid ``(gx, gy, gz)`` of an input shape."""
        spatial = input_shape[1:4]
        if any(s is None for s in spatial):
            raise ValueError(
                f"{self.name}: the patch grid needs a fixed input size, got input shape "
                f"{tuple(input_shape)}."
            )
        grid = tuple(s // p for s, p in zip(spatial, self.patch_size, strict=False))
        if min(grid) < 1:
            raise ValueError(
                f"{self.name}: every spatial size must be at least the patch size "
                f"{self.patch_size}; got input shape {tuple(input_shape)}."
            )
        return grid

    def build(self, input_shape):
        self.grid = self.grid_for(input_shape)
        channels = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(*self.patch_size, channels, self.hidden_dim),
            initializer="glorot_uniform", name="kernel",
        )
        self.bias = self.add_weight(shape=(self.hidden_dim,), initializer="zeros", name="bias")
        self.class_token = self.add_weight(
            shape=(1, 1, self.hidden_dim), initializer="zeros", name="class_token"
        )
        self.position_embedding = self.add_weight(
            shape=(1, 1 + int(np.prod(self.grid)), self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )
        # the grid the embeddings were learned on, saved with the weights
        self.grid_variable = self.add_weight(
            shape=(3,), initializer=keras.initializers.Constant(self.grid), dtype="int32",
            trainable=False, name="grid",
        )

    def call(self, inputs):
        x = ops.conv(inputs, self.kernel, strides=self.patch_size, padding="valid")
        x = x + self.bias
        grid = tuple(x.shape[1:4])
        if any(g is None for g in grid):
            raise ValueError(f"{self.name}: the patch grid needs a fixed input size.")
        batch = ops.shape(x)[0]
        tokens = ops.reshape(x, (batch, int(np.prod(grid)), self.hidden_dim))
        cls = ops.broadcast_to(
            ops.cast(self.class_token, tokens.dtype), (batch, 1, self.hidden_dim)
        )
        tokens = ops.concatenate([cls, tokens], axis=1)
        positions = resize_position_embedding(self.position_embedding, self.grid, grid)
        return tokens + ops.cast(positions, tokens.dtype)

    def compute_output_shape(self, input_shape):
        grid = self.grid_for(input_shape)
        return (input_shape[0], 1 + int(np.prod(grid)), self.hidden_dim)

    def load_own_variables(self, store):
        """Load weights, resizing position embeddings saved for another patch grid."""
        names = ["kernel", "bias", "class_token", "position_embedding", "grid"]
        values = {name: np.asarray(store[str(i)]) for i, name in enumerate(names)}
        saved_grid = tuple(int(g) for g in values["grid"])
        if saved_grid != tuple(self.grid):
            values["position_embedding"] = keras.ops.convert_to_numpy(
                resize_position_embedding(values["position_embedding"], saved_grid, self.grid)
            )
            values["grid"] = np.asarray(self.grid, dtype="int32")
        for variable, name in zip(
            (self.kernel, self.bias, self.class_token, self.position_embedding,
             self.grid_variable), names, strict=False,
        ):
            if tuple(variable.shape) != values[name].shape:
                raise ValueError(
                    f"{self.name}: saved {name} has shape {values[name].shape}, the layer "
                    f"expects {tuple(variable.shape)}."
                )
            variable.assign(values[name])

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "patch_size": self.patch_size,
        }
