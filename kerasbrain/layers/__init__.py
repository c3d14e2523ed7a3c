"""Building blocks that Keras lacks or that are slow in 3D."""

from kerasbrain.layers.depthwise import DepthwiseConv3D  # noqa: F401
from kerasbrain.layers.patch_embedding import PatchEmbedding3D  # noqa: F401
