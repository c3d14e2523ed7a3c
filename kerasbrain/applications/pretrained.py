"""A model built with a published weight set that knows which one (saved with it)."""

import keras


@keras.saving.register_keras_serializable(package="kerasbrain")
class PretrainedModel(keras.Model):
    """A functional model built with registry weights.

    ``preset`` is the weight set's registry key (``"ukb"``, ``"brain-age-2022:regression"``),
    part of ``get_config`` so it survives ``.keras`` save/load. `kerasbrain.transfer.finetune`
    reads the preset's tasks to carry its heads over to new tasks, and
    `kerasbrain.inference.Predictor` its preprocessing and decoding.
    """

    def __init__(self, *args, preset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.preset = preset

    def get_config(self):
        return {**super().get_config(), "preset": self.preset}


def with_preset(model, spec):
    """``model`` (same layers) as a `PretrainedModel` recording ``spec.key``; ``model`` itself
    when ``spec`` is None (random, ImageNet or file weights)."""
    if spec is None:
        return model
    return PretrainedModel(model.input, model.output, name=model.name, preset=spec.key)
