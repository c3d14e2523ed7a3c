"""Transfer learning: fine-tuning strategies, learning-curve experiments, feature spaces.

    model = kb.transfer.finetune(base, [kb.tasks.Binary("diagnosis")], strategy="frozen")
    model.fit(x, y, epochs=30)
"""

from kerasbrain.transfer.adapt import BatchNormAdaptationWarning, adapt_batchnorm, batchnorm_layers
from kerasbrain.transfer.blocks import blocks, set_trainable_blocks
from kerasbrain.transfer.features import (
    embed,
    extract_features,
    feature_associations,
    plot_embedding,
)
from kerasbrain.transfer.learning_curve import (
    compare,
    learning_curve,
    plot_learning_curve,
    score,
    summarize,
)
from kerasbrain.transfer.strategies import STRATEGIES, copy_model, finetune

__all__ = [
    "STRATEGIES",
    "BatchNormAdaptationWarning",
    "adapt_batchnorm",
    "batchnorm_layers",
    "blocks",
    "compare",
    "copy_model",
    "embed",
    "extract_features",
    "feature_associations",
    "finetune",
    "learning_curve",
    "plot_embedding",
    "plot_learning_curve",
    "score",
    "set_trainable_blocks",
    "summarize",
]
