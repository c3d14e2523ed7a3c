"""Self-supervised pretraining with ``model.fit``: contrastive (SimCLR, y-aware) and
masked-volume modelling (SimMIM for convolutional backbones, MAE for the ViT).

    backbone = kb.applications.SFCN(weights=None, include_top=False, pooling="avg",
                                    input_shape=(96, 96, 96, 1))
    pretrainer = kb.pretraining.Contrastive(backbone, kernel=("age", 5.0))
    pretrainer.compile(optimizer="adam")
    pretrainer.fit(kb.data.tfrecord_dataset("shards", labels=["age"], batch_size=16), epochs=50)
    model = kb.transfer.finetune(pretrainer.backbone, [kb.tasks.Binary("diagnosis")])
"""

from kerasbrain.pretraining.contrastive import Contrastive
from kerasbrain.pretraining.losses import contrastive_loss, masked_mse, nt_xent, y_aware_nt_xent
from kerasbrain.pretraining.masked import MaskedVolume, PixelShuffle3D

__all__ = [
    "Contrastive",
    "MaskedVolume",
    "PixelShuffle3D",
    "contrastive_loss",
    "masked_mse",
    "nt_xent",
    "y_aware_nt_xent",
]
