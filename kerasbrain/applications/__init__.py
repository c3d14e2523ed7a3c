"""3D backbones in the style of ``keras.applications``: one module per family.

Inputs are channels-last volumes ``(x, y, z, channels)`` with one channel by default.
"""

from kerasbrain.applications import sfcn
from kerasbrain.applications.sfcn import SFCN

__all__ = ["SFCN", "sfcn"]
from kerasbrain.applications import densenet, inception_v3, resnet, resnet_v2, vit
from kerasbrain.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from kerasbrain.applications.inception_v3 import InceptionV3
from kerasbrain.applications.inflate import inflate, load_imagenet  # noqa: F811
from kerasbrain.applications.resnet import (
    ResNet10,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    ResNet200,
)
from kerasbrain.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from kerasbrain.applications.vit import ViT, ViTB16, ViTL16

__all__ += [
    "DenseNet121", "DenseNet169", "DenseNet201", "InceptionV3",
    "ResNet10", "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet200",
    "ResNet50V2", "ResNet101V2", "ResNet152V2", "ViT", "ViTB16", "ViTL16",
    "densenet", "inception_v3", "inflate", "load_imagenet", "resnet", "resnet_v2", "vit",
]
from kerasbrain.applications import convnext, efficientnet, efficientnet_v2, mobilenet_v2  # noqa: E402
from kerasbrain.applications.convnext import (  # noqa: E402
    ConvNeXtBase,
    ConvNeXtLarge,
    ConvNeXtSmall,
    ConvNeXtTiny,
    ConvNeXtXLarge,
)
from kerasbrain.applications.efficientnet import (  # noqa: E402
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from kerasbrain.applications.efficientnet_v2 import (  # noqa: E402
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
)
from kerasbrain.applications.mobilenet_v2 import MobileNetV2  # noqa: E402

__all__ += [
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
    "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0",
    "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S",
    "EfficientNetV2M", "EfficientNetV2L", "MobileNetV2",
    "convnext", "efficientnet", "efficientnet_v2", "mobilenet_v2",
]
from kerasbrain.applications import linknet  # noqa: E402
from kerasbrain.applications.linknet import LinkNet3D  # noqa: E402

__all__ += ["LinkNet3D", "linknet"]

#: the one name -> constructor table: lower-case name (= registry architecture) -> constructor
CONSTRUCTORS = {name.lower(): globals()[name] for name in __all__ if name[:1].isupper()}


def get(name):
    """The constructor called ``name``, in any case (``"SFCN"``, ``"densenet201"``,
    ``"ResNet50V2"``); a registry entry's ``architecture`` names one.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    constructor = CONSTRUCTORS.get(str(name).lower())
    if constructor is None:
        known = sorted(n for n in __all__ if n[:1].isupper())
        raise ValueError(f"Unknown architecture {name!r}; kerasbrain.applications has: {', '.join(known)}.")
    return constructor


from kerasbrain.applications.pretrained import PretrainedModel  # noqa: E402  (not a constructor)

__all__ += ["CONSTRUCTORS", "PretrainedModel", "get"]
