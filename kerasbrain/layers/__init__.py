"""Building blocks that Keras lacks or that are slow for volumes."""

from kerasbrain.layers import augment
from kerasbrain.layers.augment import (
    Augmentation3D,
    RandomAffine3D,
    RandomCrop3D,
    RandomFlip3D,
    RandomIntensity,
    RandomShift3D,
    augmentation,
)
from kerasbrain.layers.batchnorm import FastBatchNormalization
from kerasbrain.layers.conv import FastConv3D
from kerasbrain.layers.depthwise import DepthwiseConv3D
from kerasbrain.layers.patch_embedding import PatchEmbedding3D
from kerasbrain.layers.pooling import FastMaxPooling3D
from kerasbrain.layers.views import (
    RandomBlur3D,
    RandomCutout3D,
    RandomResizedCrop3D,
    view_augmentation,
)

__all__ = [
    "Augmentation3D",
    "DepthwiseConv3D",
    "FastBatchNormalization",
    "FastConv3D",
    "FastMaxPooling3D",
    "PatchEmbedding3D",
    "RandomAffine3D",
    "RandomBlur3D",
    "RandomCrop3D",
    "RandomCutout3D",
    "RandomFlip3D",
    "RandomIntensity",
    "RandomResizedCrop3D",
    "RandomShift3D",
    "augment",
    "augmentation",
    "view_augmentation",
]
