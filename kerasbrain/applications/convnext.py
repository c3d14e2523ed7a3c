"""ConvNeXt Tiny/Small/Base/Large/XLarge for volumes.

Reference:
    Liu Z, Mao H, Wu C-Y, Feichtenhofer C, Darrell T, Xie S. A ConvNet for the 2020s.
    CVPR 2022.

The graph and layer names are those of ``keras.applications.ConvNeXt*`` (layer names
start with the model name, ``convnext_tiny_stem``, ``convnext_tiny_stage_0_block_0_...``)
with 3D layers; each block's depthwise 7x7 ``Conv2D(groups=C)`` is a 7x7x7
``kerasbrain.layers.DepthwiseConv3D``. ``weights="imagenet"`` inflates the 2D ImageNet
weights layer by layer and needs the default model name.

With ``include_preprocessing=True`` the model normalises its inputs (``[0, 255]`` in)
with ImageNet's mean and variance: per channel for 3 channels and, unlike the 2D model
(which skips the step for other channel counts), the RGB means and variances averaged
for other channel counts. ``preprocess_input`` is the identity.
"""

import keras
import numpy as np
from keras import ops

from kerasbrain.applications import _common
from kerasbrain.layers import DepthwiseConv3D, FastConv3D

MIN_SIZE = 32  # stem stride 4 and three stride-2 downsamplings

MODEL_CONFIGS = {
    "tiny": {"depths": [3, 3, 9, 3], "projection_dims": [96, 192, 384, 768]},
    "small": {"depths": [3, 3, 27, 3], "projection_dims": [96, 192, 384, 768]},
    "base": {"depths": [3, 3, 27, 3], "projection_dims": [128, 256, 512, 1024]},
    "large": {"depths": [3, 3, 27, 3], "projection_dims": [192, 384, 768, 1536]},
    "xlarge": {"depths": [3, 3, 27, 3], "projection_dims": [256, 512, 1024, 2048]},
}
IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_VARIANCE_RGB = ((0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2)


@keras.saving.register_keras_serializable(package="kerasbrain")
class StochasticDepth(keras.layers.Layer):
    """Drop the whole residual branch of a sample with probability ``drop_path_rate``.

    Identity at inference; in training kept branches are scaled by ``1 / (1 - rate)``.
    """

    def __init__(self, drop_path_rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = drop_path_rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.drop_path_rate:
            return x
        keep_prob = 1.0 - self.drop_path_rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        keep = ops.floor(keep_prob + keras.random.uniform(shape, seed=self.seed_generator))
        return x / keep_prob * keep

    def get_config(self):
        return {**super().get_config(), "drop_path_rate": self.drop_path_rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasbrain")
class LayerScale(keras.layers.Layer):
    """Multiply by a learned per-channel scale ``gamma`` (``(projection_dim,)``)."""

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, _):
        self.gamma = self.add_weight(
            shape=(self.projection_dim,),
            initializer=keras.initializers.Constant(self.init_values),
            trainable=True,
            name="gamma",
        )

    def call(self, x):
        return x * ops.cast(self.gamma, x.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "init_values": self.init_values,
            "projection_dim": self.projection_dim,
        }


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=""):
    """Depthwise 7x7x7 -> LayerNorm -> Dense 4C -> GELU -> Dense C -> scale, residual."""

    def apply(inputs):
        x = DepthwiseConv3D(7, padding="same", name=f"{name}_depthwise_conv")(inputs)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
        x = keras.layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = keras.layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = keras.layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            layer = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
        else:
            layer = keras.layers.Activation("linear", name=f"{name}_identity")
        return keras.layers.Add(name=f"{name}_add")([inputs, layer(x)])

    return apply


def ConvNeXt(
    depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, name="convnext",
    include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
    input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
    constructor_2d=None, remat=None,
):
    """Build a 3D ConvNeXt from stage depths and widths (see ``ConvNeXtTiny``)."""
    family = name
    if weights == "imagenet":
        variant = None if constructor_2d is None else constructor_2d.__name__[len("ConvNeXt"):].lower()
        config = MODEL_CONFIGS.get(variant)
        if config is None or list(depths) != config["depths"] or list(projection_dims) != config["projection_dims"]:
            raise ValueError(
                f"{family}: weights='imagenet' needs one of the ConvNeXt variants "
                f"(Tiny, Small, Base, Large, XLarge) with its own depths and widths."
            )
        if name != f"convnext_{variant}":
            raise ValueError(
                f"{family}: weights='imagenet' pairs layers by name with the 2D model, whose "
                f"layer names start with 'convnext_{variant}'; keep name='convnext_{variant}'."
            )
    spec, weights_file = _common.resolve_weights(weights, architecture=family)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _common.volume_shape(input_shape, MIN_SIZE, include_top, family)
    _common.check_weights_args(weights, include_top, classes, input_shape, family)
    channels = input_shape[-1]

    with _common.remat_scope(remat):
        inputs = _common.model_input(input_tensor, input_shape)
        x = inputs
        if include_preprocessing:
            if channels == 3:
                mean, variance = IMAGENET_MEAN_RGB, IMAGENET_VARIANCE_RGB
            else:
                mean = [float(np.mean(IMAGENET_MEAN_RGB))] * channels
                variance = [float(np.mean(IMAGENET_VARIANCE_RGB))] * channels
            x = keras.layers.Normalization(
                mean=list(mean), variance=list(variance),
                name=f"{name}_prestem_normalization",
            )(x)

        stem = keras.Sequential(
            [
                FastConv3D(
                    projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"
                ),
                keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm"),
            ],
            name=f"{name}_stem",
        )
        downsample_layers = [stem]
        for i in range(3):
            downsample_layers.append(
                keras.Sequential(
                    [
                        keras.layers.LayerNormalization(
                            epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"
                        ),
                        FastConv3D(
                            projection_dims[i + 1], kernel_size=2, strides=2,
                            name=f"{name}_downsampling_conv_{i}",
                        ),
                    ],
                    name=f"{name}_downsampling_block_{i}",
                )
            )

        depth_drop_rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
        cur = 0
        for i in range(4):
            x = downsample_layers[i](x)
            for j in range(depths[i]):
                x = ConvNeXtBlock(
                    projection_dim=projection_dims[i],
                    drop_path_rate=depth_drop_rates[cur + j],
                    layer_scale_init_value=layer_scale_init_value,
                    name=f"{name}_stage_{i}_block_{j}",
                )(x)
            cur += depths[i]

        if include_top:
            x = keras.layers.GlobalAveragePooling3D(name=f"{name}_head_gap")(x)
            x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
            x = keras.layers.Dense(
                classes, activation=classifier_activation, name=f"{name}_head_dense"
            )(x)
        else:
            x = _common.global_pool(x, pooling, name="")
            # keras.applications leaves this final norm unnamed (an automatic name).
            x = keras.layers.LayerNormalization(epsilon=1e-6)(x)

    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    if constructor_2d is not None and include_preprocessing is not True:
        constructor_2d = _common.named_constructor(
            constructor_2d, f"{constructor_2d.__name__}_nopreprocessing",
            include_preprocessing=include_preprocessing,
        )
    return _common.load_model_weights(
        model, weights, spec, weights_file, include_top, constructor_2d
    )


def _variant(variant):
    constructor_2d = getattr(keras.applications, f"ConvNeXt{variant.capitalize().replace('large', 'Large')}")
    config = MODEL_CONFIGS[variant]
    name = constructor_2d.__name__
    return _common.variant(
        ConvNeXt, name, _common.variant_docstring(
            name, f"global average pooling, LayerNorm and the dense classifier "
            f"(``convnext_{variant}_head_*``); a final LayerNorm follows the pooling in every "
            "case, as in Keras",
            "        include_preprocessing: whether the model normalises its inputs (``[0, 255]``\n"
            "            in) with ImageNet statistics.\n"
            "        name: model name and layer-name prefix (keep the default for ImageNet weights).\n"
            "        drop_path_rate: stochastic depth rate of the last block (linear from 0).\n",
            features="width"),
        (config["depths"], config["projection_dims"]), default_name=f"convnext_{variant}",
        extra_args=(("include_preprocessing", True, "include_top"),),
        keywords=(("drop_path_rate", 0.0), ("remat", None)),
        layer_scale_init_value=1e-6, constructor_2d=constructor_2d,
    )


ConvNeXtTiny = _variant("tiny")
ConvNeXtSmall = _variant("small")
ConvNeXtBase = _variant("base")
ConvNeXtLarge = _variant("large")
ConvNeXtXLarge = _variant("xlarge")


def preprocess_input(x, weights="imagenet"):
    """Scale volumes (array or backend tensor) for ``weights``: ``"imagenet"``: nothing, the
    model scales its own inputs (intensities in ``[0, 255]``); a registry or preset name:
    its preset's scaling. Returns float32."""
    return _common.preprocess(x, weights, None)


decode_predictions = _common.imagenet_decode
