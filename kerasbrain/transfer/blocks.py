"""Group a backbone's layers into ordered blocks, for "last k blocks trainable".

Blocks are read from layer names: SFCN ``block3_conv`` -> ``block3``; keras.applications
style ``conv5_block3_1_conv`` -> ``conv5_block3``, ``block_16_expand`` -> ``block_16``,
``block6a_expand_conv`` -> ``block6a``, ``..._stage_3_block_1_...`` -> ``stage_3``,
``mixed7`` -> ``mixed7``, ``layer3...`` -> ``layer3``, ``transformer_block_2`` ->
``transformer_block_2``. Layers before the first block form ``stem``; unnamed layers after
a block (final BatchNorm, pooling) join the block before them.
"""

import re

import keras

_PATTERNS = [
    re.compile(r"(conv\d+_block\d+)(?:_|$)"),
    re.compile(r"(transformer_block_?\d+|encoder_layer_?\d+)"),
    re.compile(r"(stage_?\d+)(?:_|$)"),
    re.compile(r"^(block_?\d+[a-z]?)(?:_|$)"),
    re.compile(r"^(mixed\d+)"),
    re.compile(r"^(layer_?\d+)"),
]


def flat_layers(model):
    """All layers of ``model`` in order, descending into nested models."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(flat_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            out.append(layer)
    return out


def block_name(layer_name):
    """The block a layer name belongs to, or ``None``."""
    for pattern in _PATTERNS:
        match = pattern.search(layer_name)
        if match:
            return match.group(1)
    return None


def blocks(model):
    """Ordered blocks of ``model``'s layers.

    Args:
        model: a backbone (or any model; nested models are descended into).

    Returns:
        list of ``(block name, [layers])`` in network order, ``stem`` first when present.
    """
    groups = {}
    current = "stem"
    for layer in flat_layers(model):
        name = block_name(layer.name)
        if name is not None:
            current = name
        groups.setdefault(current, []).append(layer)
    return list(groups.items())


def set_trainable_blocks(model, k):
    """Make only the last ``k`` blocks of ``model`` trainable (the rest frozen, which
    also puts their BatchNorm layers in inference mode). Returns the trainable block names."""
    groups = blocks(model)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"trainable_blocks must be a positive int, got {k!r}.")
    if k > len(groups):
        raise ValueError(f"trainable_blocks={k} but the backbone has {len(groups)} blocks: "
                         f"{[name for name, _ in groups]}.")
    model.trainable = True
    for _, layers in groups[:-k]:
        for layer in layers:
            layer.trainable = False
    return [name for name, _ in groups[-k:]]
