"""Transfer learning: fine-tuning strategies, learning-curve experiments, feature spaces.

    model = kb.transfer.finetune(base, [kb.tasks.Binary("diagnosis")], strategy="frozen")
    model.fit(x, y, epochs=30)
"""

from kerasbrain.transfer.blocks import blocks, set_trainable_blocks
from kerasbrain.transfer.strategies import STRATEGIES, copy_model, finetune

__all__ = ["STRATEGIES", "blocks", "copy_model", "finetune", "set_trainable_blocks"]
