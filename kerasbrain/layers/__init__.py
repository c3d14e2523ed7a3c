"""Building blocks Keras lacks for 3D volumes."""

from kerasbrain.layers import augment as augment
from kerasbrain.layers.augment import Augmentation3D as Augmentation3D
from kerasbrain.layers.augment import RandomAffine3D as RandomAffine3D
from kerasbrain.layers.augment import RandomCrop3D as RandomCrop3D
from kerasbrain.layers.augment import RandomFlip3D as RandomFlip3D
from kerasbrain.layers.augment import RandomIntensity as RandomIntensity
from kerasbrain.layers.augment import RandomShift3D as RandomShift3D
from kerasbrain.layers.augment import augmentation as augmentation
