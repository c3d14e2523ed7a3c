"""LinkNet3D: the 3D LinkNet of deepbet's brain extraction (Fisch et al. 2024).

Reference:
    Fisch L, Zumdick S, Barkhau C, et al. deepbet: Fast brain extraction of T1-weighted MRI
    using Convolutional Neural Networks. Computers in Biology and Medicine (2024).
    arXiv:2308.07003 (code and weights MIT-licensed; the ``deepbet`` package on PyPI).

Layout (``filters=(16, 32, 64, 128)`` as published; torch module names in brackets):
stem [init] Conv3D 7x7x7 stride 2 -> InstanceNorm -> ReLU -> MaxPool 3 stride 2; four
encoders [down0..3] of two residual blocks each (Conv 3x3x3 -> IN -> ReLU -> Conv 3x3x3 ->
IN, plus the input or a 1x1x1 stride-2 Conv -> IN projection, then ReLU; the first block
of down1..3 has stride 2); four decoders [up0..3] (Conv 1x1x1 to a quarter of the
channels -> IN -> ReLU, ConvTranspose 3x3x3 -> IN -> ReLU, Conv 1x1x1 -> IN -> ReLU), each
added to the matching encoder output; head [tp_conv1, conv, tp_conv2] ConvTranspose 3x3x3
stride 2 -> IN -> ReLU, Conv 3x3x3 -> IN -> ReLU, ConvTranspose 2x2x2 stride 2, softmax
over 2 channels (background, brain). Instance normalisation has no affine parameters
(epsilon 1e-5), convolutions no bias except in the head.

PyTorch pads symmetrically where Keras' ``"same"`` pads more at the far end, so strided
convolutions and pooling pad explicitly and transposed convolutions crop explicitly: the
outputs equal PyTorch's. Spatial sizes must be multiples of 32.
"""

import os

import keras
import numpy as np
from keras import ops

from kerasbrain.applications import _common

DEFAULT_FILTERS = (16, 32, 64, 128)
MIN_SIZE = 64  # the deepest encoder keeps 2x2x2 voxels to normalise
#: input shape without registry weights (deepbet's are 256^3 and, localiser, 128^3)
DEFAULT_INPUT_SHAPE = (128, 128, 128, 1)
#: deepbet's intensity normalisation: z-scored [0, 1] intensities mapped to this mean / std
NORMALIZED_MEAN, NORMALIZED_STD = 0.449, 0.226
INSTANCE_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="kerasbrain")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation without scale or offset (PyTorch's ``InstanceNorm3d``).

    Each sample and channel of a ``(batch, x, y, z, channels)`` tensor is shifted to mean
    0 and scaled by ``1 / sqrt(var + epsilon)`` (biased variance, computed in two passes).
    """

    def __init__(self, epsilon=INSTANCE_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        centred = inputs - _spatial_mean(inputs)
        return centred * ops.rsqrt(_spatial_mean(ops.square(centred)) + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _spatial_mean(x):
    """Mean over the spatial axes, one axis at a time: a float32 sum over millions of
    voxels in one reduction loses digits on some backends (TensorFlow's CPU kernel)."""
    for axis in range(1, len(x.shape) - 1):
        x = ops.mean(x, axis=axis, keepdims=True)
    return x


class _Builder:
    """Creates the layers and records, per torch module name, what each one is."""

    def __init__(self, initializer):
        self.modules = {}  # torch module name -> (kind, settings)
        self.initializer = initializer

    def conv(self, x, name, filters, kernel, stride=1, padding=0, bias=False):
        self.modules[name] = ("Conv3d", {"stride": stride, "padding": padding, "bias": bias})
        layer_name = keras_name(name)
        if padding and stride > 1:
            x = keras.layers.ZeroPadding3D(padding, name=f"{layer_name}_pad")(x)
        mode = "same" if padding and stride == 1 and 2 * padding == kernel - 1 else "valid"
        if padding and mode == "valid" and stride == 1:
            raise ValueError(f"{name}: unsupported padding {padding} for kernel {kernel}.")
        return keras.layers.Conv3D(filters, kernel, strides=stride, padding=mode, use_bias=bias,
                                   kernel_initializer=self.initializer, name=layer_name)(x)

    def conv_transpose(self, x, name, filters, kernel, stride, padding, output_padding,
                       bias=False):
        self.modules[name] = ("ConvTranspose3d", {
            "stride": stride, "padding": padding, "output_padding": output_padding, "bias": bias,
        })
        layer_name = keras_name(name)
        x = keras.layers.Conv3DTranspose(filters, kernel, strides=stride, padding="valid",
                                         use_bias=bias, kernel_initializer=self.initializer,
                                         name=layer_name)(x)
        # 'valid' gives (n - 1) * stride + kernel voxels; PyTorch drops `padding` at the
        # start and `padding - output_padding` at the end
        crop = (padding, padding - output_padding)
        if crop != (0, 0):
            x = keras.layers.Cropping3D((crop,) * 3, name=f"{layer_name}_crop")(x)
        return x

    def norm(self, x, name, relu=True):
        self.modules[name] = ("InstanceNorm3d", {"eps": INSTANCE_NORM_EPSILON})
        x = InstanceNormalization(name=keras_name(name))(x)
        if relu:
            x = keras.layers.ReLU(name=f"{keras_name(name)}_relu")(x)
        return x

    def max_pool(self, x, name):
        # zero padding equals PyTorch's -inf padding here: the input is a ReLU output
        self.modules[name] = ("MaxPool3d", {"kernel": 3, "stride": 2, "padding": 1})
        x = keras.layers.ZeroPadding3D(1, name=f"{keras_name(name)}_pad")(x)
        return keras.layers.MaxPooling3D(3, strides=2, name=keras_name(name))(x)

    def block(self, x, name, filters, stride):
        y = self.conv(x, f"{name}.double_conv.0", filters, 3, stride, 1)
        y = self.norm(y, f"{name}.double_conv.1")
        y = self.conv(y, f"{name}.double_conv.3", filters, 3, 1, 1)
        y = self.norm(y, f"{name}.double_conv.4", relu=False)
        if stride > 1 or x.shape[-1] != filters:
            x = self.conv(x, f"{name}.downsample.0", filters, 1, stride, 0)
            x = self.norm(x, f"{name}.downsample.1", relu=False)
        y = keras.layers.Add(name=f"{keras_name(name)}_add")([y, x])
        return keras.layers.ReLU(name=f"{keras_name(name)}_out")(y)

    def up(self, x, name, filters, stride):
        mid = x.shape[-1] // 4
        x = self.norm(self.conv(x, f"{name}.conv1.0", mid, 1), f"{name}.conv1.1")
        x = self.conv_transpose(x, f"{name}.tp_conv.0", mid, 3, stride, 1, stride - 1)
        x = self.norm(x, f"{name}.tp_conv.1")
        return self.norm(self.conv(x, f"{name}.conv2.0", filters, 1), f"{name}.conv2.1")


def keras_name(torch_name):
    """Keras layer name of a torch module: ``"down1.block1.double_conv.0"`` ->
    ``"down1_block1_double_conv_0"``."""
    return torch_name.replace(".", "_")


def LinkNet3D(
    weights="deepbet",
    input_tensor=None,
    input_shape=None,
    classes=2,
    classifier_activation="softmax",
    name="linknet3d",
    *,
    filters=None,
):
    """Instantiate LinkNet3D, optionally with deepbet's brain-extraction weights.

    Args:
        weights: ``None`` (random), ``"deepbet"`` (the brain mask network, 256^3 input),
            ``"deepbet-bbox"`` (the 128^3 localiser), or the path to a TorchScript archive
            of a LinkNet3d (read without torch; its widths are taken from the file).
        input_tensor: optional Keras tensor to use as the input.
        input_shape: ``(x, y, z, 1)``, each size a multiple of 32; default 256^3 for
            ``"deepbet"``, 128^3 for ``"deepbet-bbox"`` and otherwise.
        classes: output channels (2 for deepbet: background, brain).
        classifier_activation: ``"softmax"`` over channels (deepbet's) or ``None``.
        name: model name.
        filters: encoder widths (4 values; default deepbet's ``(16, 32, 64, 128)``).

    Returns:
        ``keras.Model`` mapping ``(batch, x, y, z, 1)`` normalised intensities (see
        ``preprocess_input``) to ``(batch, x, y, z, classes)`` probabilities.

    Raises:
        ValueError: unknown weights, a bad shape, or an archive that does not match the
            architecture (the message names the module or tensor).
    """
    archive, root, default = None, None, DEFAULT_INPUT_SHAPE
    if weights is not None:
        archive, default = _weights_file(weights)
        from kerasbrain.weights import torchscript

        root = torchscript.load(archive)
        widths, classes = _widths(root, archive)
        if filters is not None and tuple(filters) != widths:
            raise ValueError(f"{name}: filters={tuple(filters)} but {archive} has {widths}.")
        filters = widths
    filters = tuple(filters or DEFAULT_FILTERS)
    if len(filters) != 4:
        raise ValueError(f"{name}: filters must have 4 values, got {filters}.")
    input_shape = _common.obtain_input_shape(input_shape, default, MIN_SIZE, False, name=name)
    for size in input_shape[:3]:
        if size is not None and size % 32:
            raise ValueError(f"{name}: spatial sizes must be multiples of 32, got {input_shape}.")
    inputs = _common.model_input(input_tensor, input_shape)
    # loaded weights replace the initial values: zeros skip a random-number kernel per shape
    build = _Builder("glorot_uniform" if root is None else "zeros")
    x0 = build.conv(inputs, "init.0", filters[0], 7, 2, 3)
    x0 = build.max_pool(build.norm(x0, "init.1"), "init.3")
    skips, x = [x0], x0
    for i, width in enumerate(filters):
        x = build.block(x, f"down{i}.block1", width, 1 if i == 0 else 2)
        x = build.block(x, f"down{i}.block2", width, 1)
        skips.append(x)
    outs = (filters[2], filters[1], filters[0], filters[0])
    for i, width in enumerate(outs):
        x = build.up(x, f"up{i}", width, 1 if i == 3 else 2)
        x = keras.layers.Add(name=f"up{i}_skip")([x, skips[3 - i]])
    half = filters[0] // 2
    x = build.conv_transpose(x, "tp_conv1.0", half, 3, 2, 1, 1, bias=True)
    x = build.norm(x, "tp_conv1.1")
    x = build.norm(build.conv(x, "conv.0", half, 3, 1, 1, bias=True), "conv.1")
    x = build.conv_transpose(x, "tp_conv2", classes, 2, 2, 0, 0, bias=True)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    model = keras.Model(_common.model_inputs_for(input_tensor, inputs), x, name=name)
    if root is not None:
        _assign(model, root, build.modules, archive)
    return model


def _weights_file(weights):
    """``(local archive path, default input shape)`` of a registry name or a path."""
    if _common.is_weights_path(weights):
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"Weights file not found: {weights}")
        return os.fspath(weights), DEFAULT_INPUT_SHAPE
    from kerasbrain import weights as weights_lib

    spec = weights_lib.get_spec(weights, architecture="linknet3d")
    return weights_lib.get_file(spec.architecture, spec.key), spec.input_shape


def _tensor(root, name, source):
    module_name, _, attribute = name.rpartition(".")
    for path, module in root.named_modules():
        if path == module_name and attribute in module.tensors():
            return module.tensors()[attribute]
    raise ValueError(f"{source}: tensor {name!r} is missing; not a LinkNet3d archive?")


def _widths(root, source):
    """``(filters, classes)`` of the LinkNet3d in an archive, from its tensor shapes."""
    filters = tuple(
        int(_tensor(root, f"down{i}.block2.double_conv.0.weight", source).shape[0])
        for i in range(4)
    )
    classes = int(_tensor(root, "tp_conv2.weight", source).shape[1])
    return filters, classes


def _archive_settings(module, kind, path, source):
    """The layer settings a module's TorchScript code passes to torch."""
    function = {"Conv3d": "_convolution", "ConvTranspose3d": "_convolution",
                "InstanceNorm3d": "instance_norm", "MaxPool3d": "max_pool3d"}[kind]
    calls = module.calls(function)
    if len(calls) != 1:
        raise ValueError(
            f"{source}: module {path!r} ({kind}) should make one torch.{function} call in "
            f"the archive's code/, found {len(calls)}."
        )
    args = calls[0]
    if kind == "InstanceNorm3d":
        if args[1:5] != [None] * 4 or args[5] is not True:
            raise ValueError(f"{source}: module {path!r}: only InstanceNorm3d without affine "
                             "parameters or running statistics is supported.")
        return {"eps": float(args[7])}
    if kind == "MaxPool3d":
        kernel, stride, padding, dilation = args[1:5]
        if len({*kernel}) != 1 or len({*stride}) != 1 or len({*padding}) != 1 or {*dilation} != {1}:
            raise ValueError(f"{source}: module {path!r}: anisotropic or dilated pooling.")
        return {"kernel": kernel[0], "stride": stride[0], "padding": padding[0]}
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    if ({*dilation} != {1} or groups != 1 or len({*stride}) != 1 or len({*padding}) != 1
            or len({*output_padding}) != 1 or transposed != (kind == "ConvTranspose3d")):
        raise ValueError(f"{source}: module {path!r}: unsupported convolution settings {args[3:9]}.")
    settings = {"stride": stride[0], "padding": padding[0], "bias": args[2] is not None}
    if transposed:
        settings["output_padding"] = output_padding[0]
    return settings


def _assign(model, root, expected, source):
    """Check the archive against the built layers, then set every weight (all or nothing)."""
    found = {path: module for path, module in root.named_modules()
             if module.kind in ("Conv3d", "ConvTranspose3d", "InstanceNorm3d", "MaxPool3d")}
    for path in found.keys() - expected.keys():
        raise ValueError(f"{source}: module {path!r} ({found[path].kind}) has no counterpart "
                         f"in {model.name!r}.")
    updates = []
    for path, (kind, settings) in expected.items():
        module = found.get(path)
        if module is None or module.kind != kind:
            got = "missing" if module is None else module.kind
            raise ValueError(f"{source}: module {path!r} should be a {kind}, it is {got}.")
        actual = _archive_settings(module, kind, path, source)
        if actual != settings:
            raise ValueError(f"{source}: module {path!r} has settings {actual}, "
                             f"{model.name!r} expects {settings}.")
        if kind not in ("Conv3d", "ConvTranspose3d"):
            continue
        layer = model.get_layer(keras_name(path))
        tensors = module.tensors()
        names = ["weight", "bias"] if settings["bias"] else ["weight"]
        if sorted(tensors) != sorted(names):
            raise ValueError(f"{source}: module {path!r} has tensors {sorted(tensors)}, "
                             f"expected {names}.")
        values = [np.transpose(tensors["weight"], (2, 3, 4, 1, 0))]
        if settings["bias"]:
            values.append(tensors["bias"])
        for tensor, value, variable in zip(names, values, layer.weights, strict=True):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"{source}: tensor '{path}.{tensor}' has shape {tuple(value.shape)} in "
                    f"Keras layout, but {variable.path} has shape {tuple(variable.shape)}."
                )
        updates.append((layer, [v.astype("float32") for v in values]))
    if not root.calls("softmax"):
        raise ValueError(f"{source}: the archive's forward does not end in a softmax.")
    for layer, values in updates:
        layer.set_weights(values)


def preprocess_input(x, weights="deepbet", low=None, high=None):
    """deepbet's intensity normalisation, per volume (NaNs count as 0).

    ``clip((x - low) / (high - low), 0, 1)``, z-scored over the whole volume (sample
    standard deviation), then ``* 0.226 + 0.449``.

    Args:
        x: array or backend tensor ``(x, y, z)``, ``(x, y, z, 1)`` or
            ``(batch, x, y, z, 1)`` of raw intensities.
        weights: ``"deepbet"`` or ``"deepbet-bbox"`` (both normalise alike).
        low, high: intensity window; default the 0.5 and 99.5 percentiles of each volume.

    Returns:
        float32 numpy array of the same shape.
    """
    if weights not in ("deepbet", "deepbet-bbox"):
        raise ValueError(f"preprocess_input: weights must be 'deepbet' or 'deepbet-bbox', "
                         f"got {weights!r}.")
    x = np.nan_to_num(np.asarray(keras.ops.convert_to_numpy(x), dtype="float32"))
    if x.ndim == 5:
        return np.stack([preprocess_input(v, weights, low, high) for v in x])
    if low is None or high is None:
        low, high = np.quantile(x, (0.005, 0.995))
    if not high > low:
        raise ValueError(f"preprocess_input: empty intensity window [{low}, {high}]: a "
                         "constant image?")
    x = np.clip((x - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    std = x.std(ddof=1)
    if not std > 0:
        raise ValueError("preprocess_input: the image has no contrast after windowing.")
    return ((x - x.mean()) / std * NORMALIZED_STD + NORMALIZED_MEAN).astype("float32")


def decode_predictions(preds, threshold=0.5):
    """Brain masks from LinkNet3D outputs: ``(batch, x, y, z, 2)`` -> boolean
    ``(batch, x, y, z)``, brain where its probability exceeds ``threshold``."""
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    if preds.ndim != 5 or preds.shape[-1] != 2:
        raise ValueError(f"decode_predictions: expects (batch, x, y, z, 2) probabilities, "
                         f"got shape {preds.shape}.")
    return preds[..., 1] > threshold
