"""Building blocks that Keras lacks or that are slow for volumes."""

from kerasbrain.layers.depthwise import DepthwiseConv3D
