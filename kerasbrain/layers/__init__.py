"""Building blocks that Keras lacks or that are slow for volumes."""

from kerasbrain.layers.augment import Augmentation3D
from kerasbrain.layers.augment import RandomAffine3D
from kerasbrain.layers.augment import RandomCrop3D
from kerasbrain.layers.augment import RandomFlip3D
from kerasbrain.layers.augment import RandomIntensity
from kerasbrain.layers.augment import RandomShift3D
from kerasbrain.layers.augment import augmentation
from kerasbrain.layers.depthwise import DepthwiseConv3D
from kerasbrain.layers.patch_embedding import PatchEmbedding3D
