"""Put published or local weights into a Keras model; convert checkpoints once.

Formats: Keras ``.weights.h5``; legacy tf.keras 2 HDF5 (pyment 2022); TensorFlow
checkpoints (pyment v4, a prefix with ``.index`` and ``.data-00000-of-00001``); PyTorch
``.p/.pt/.pth`` read without torch (Peng et al.'s SFCN, MONAI DenseNets as SynthBA's,
MedicalNet/MONAI ResNets). Registry weights are downloaded (``get_file``), converted into a
Keras ``.weights.h5`` beside the download, and that file is reused.
"""

import os
import re
import zipfile

import h5py

from kerasbrain.files import atomic_write
from kerasbrain.weights import (
    download,
    legacy_h5,
    monai_converters,
    sfcn_converters,
    tf_checkpoint,
    torch_pickle,
)
from kerasbrain.weights.registry import MULTITASK_OUTPUTS, WeightSpec, get_spec

TORCH_SUFFIXES = (".p", ".pt", ".pth")
#: root attribute of a converted file: the hash(es) of the checkpoint it came from
SOURCE_ATTR = "kerasbrain_source"
#: (family, file format) -> converter(checkpoint, source, **target) -> layer weights
_CONVERTERS = {
    ("sfcn", "torch"): lambda path, source, **_: sfcn_converters.from_peng(
        torch_pickle.state_dict(path), source=source),
    ("sfcn", "legacy-h5"): lambda path, source, **_: sfcn_converters.from_pyment(
        legacy_h5.read_layers(path), source=source),
    ("sfcn", "tf-checkpoint"): lambda path, source, **_: tf_checkpoint.from_pyment_v4(
        tf_checkpoint.read_layers(path), source=source),
    ("densenet", "torch"): lambda path, source, blocks=None, **_: (
        monai_converters.from_monai_densenet(torch_pickle.state_dict(path), source, blocks)),
    ("resnet", "torch"): lambda path, source, depth=None, **_: (
        monai_converters.from_medicalnet(torch_pickle.state_dict(path), source, depth)),
}
FORMAT_ALIASES = {
    "peng-torch": "torch",
    "pyment-h5": "legacy-h5",
    "pyment-tf-checkpoint": "tf-checkpoint",
    "monai-densenet": "torch",
    "medicalnet": "torch",
}
#: layers that form a head (skipped when loading into a model without its top)
HEAD_LAYERS = (*sfcn_converters.HEAD_LAYERS, *MULTITASK_OUTPUTS)


def family(architecture):
    """``"densenet201"`` -> ``"densenet"``, ``"resnet50"`` -> ``"resnet"``, ``"sfcn"``."""
    return re.sub(r"\d+$", "", architecture)


def file_format(path):
    """``"keras"`` (``.weights.h5``), ``"legacy-h5"`` (tf.keras 2 HDF5), ``"tf-checkpoint"``
    (a TF checkpoint prefix, or its ``.index``/``.data-*`` file) or ``"torch"``."""
    name = os.fspath(path).lower()
    if tf_checkpoint.is_tf_checkpoint(path):
        return "tf-checkpoint"
    if name.endswith((".h5", ".hdf5", ".keras")):
        if legacy_h5.is_legacy_h5(path):
            return "legacy-h5"
        if name.endswith(".weights.h5"):
            return "keras"
        raise ValueError(
            f"{os.fspath(path)}: not a Keras .weights.h5 nor a legacy Keras HDF5 weights file."
        )
    if name.endswith(TORCH_SUFFIXES) or zipfile.is_zipfile(path):
        return "torch"
    raise ValueError(
        f"{os.fspath(path)}: unknown weights format; expected .weights.h5, a legacy Keras "
        f".h5, or a PyTorch checkpoint ({', '.join(TORCH_SUFFIXES)})."
    )


def read_checkpoint(path, architecture="sfcn", format=None, **target):
    """Read a PyTorch, legacy-HDF5 or TF checkpoint as Keras layer weights.

    Args:
        path: the checkpoint (a TF checkpoint: its prefix or one of its two files).
        architecture: the kerasbrain family or variant (``"sfcn"``, ``"densenet201"``,
            ``"resnet50"``).
        format: file format (see ``file_format``); by default from the file.
        **target: what the target model is, for clear errors: ``blocks`` (DenseNet),
            ``depth`` (ResNet).

    Returns:
        ``{keras_layer_name: [(source_tensor_name, array), ...]}``.
    """
    source = os.fspath(path)
    fmt = FORMAT_ALIASES.get(format, format)
    if fmt == "tf-checkpoint" or (fmt is None and tf_checkpoint.is_tf_checkpoint(source)):
        source = tf_checkpoint.checkpoint_prefix(source)
        fmt = "tf-checkpoint"
    elif not os.path.isfile(source):
        raise FileNotFoundError(f"Weights file not found: {source}")
    fmt = fmt or file_format(source)
    converter = _CONVERTERS.get((family(architecture), fmt))
    if converter is None:
        raise ValueError(f"{source}: no converter from {fmt!r} checkpoints to {architecture!r}.")
    return converter(source, source, **target)


def checkpoint_config(path, architecture="sfcn"):
    """SFCN settings a local checkpoint needs (``filters``, ``classes``, ``bn_epsilon``,
    and ``head`` where the output layers tell it); ``{}`` for ``.weights.h5``."""
    fmt = file_format(path)
    if fmt == "keras":
        return {}
    layer_weights = read_checkpoint(path, architecture, fmt)
    config = sfcn_converters.config_of(layer_weights)
    config["bn_epsilon"] = 1e-5 if fmt == "torch" else 1e-3
    if fmt == "tf-checkpoint":
        if MULTITASK_OUTPUTS[0] in layer_weights:
            config.update(head="multitask", outputs=MULTITASK_OUTPUTS, pooling="max")
        else:
            config.update(head="regression", output_range=None)
        return config
    heads = (
        {40: "soft_classification", 2: "categorical"}
        if fmt == "torch"
        else {93: "soft_classification", 91: "ranking"}
    )
    if config.get("classes") in heads:
        config["head"] = heads[config["classes"]]
    return config


def assign(model, layer_weights, include_top=True, source="checkpoint"):
    """Set converted weights on ``model``'s layers, all or nothing.

    Every layer of ``model`` that has weights must receive exactly its variables with
    their shapes; with ``include_top=False`` the head tensors are skipped. Anything
    missing, extra or mis-shaped raises ``ValueError`` naming the tensor, before any
    weight is changed.
    """
    targets = {layer.name: layer for layer in model.layers if layer.weights}
    for name, weights in layer_weights.items():
        if name in targets or (not include_top and name in HEAD_LAYERS):
            continue
        raise ValueError(
            f"{source}: tensors {', '.join(n for n, _ in weights)} have no layer {name!r} "
            f"in model {model.name!r}."
        )
    updates = []
    for name, layer in targets.items():
        if name not in layer_weights:
            raise ValueError(
                f"{source}: no tensors for layer {name!r} of model {model.name!r} "
                f"({', '.join(v.path for v in layer.weights)})."
            )
        given = layer_weights[name]
        if len(given) != len(layer.weights):
            raise ValueError(
                f"{source}: layer {name!r} has {len(layer.weights)} variables, the checkpoint "
                f"gives {len(given)} ({', '.join(n for n, _ in given)})."
            )
        for (tensor_name, value), variable in zip(given, layer.weights, strict=True):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"{source}: tensor {tensor_name!r} has shape {tuple(value.shape)} in Keras "
                    f"layout, but {variable.path} has shape {tuple(variable.shape)}."
                )
        updates.append((layer, [value for _, value in given]))
    for layer, values in updates:
        layer.set_weights(values)
    return model


def _save_atomic(model, output, tag):
    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"Converted weights must be saved as .weights.h5, got {output}.")
    with atomic_write(output) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs[SOURCE_ATTR] = tag
    return output


def _convert(path, output, architecture, format, config, tag, include_top, build):
    layer_weights = read_checkpoint(path, architecture, format)
    if family(architecture) == "sfcn":
        config = {**sfcn_converters.config_of(layer_weights), **config}
    if include_top is None or include_top:
        include_top = any(name in layer_weights for name in HEAD_LAYERS)
    model = build(architecture, config, include_top)
    assign(model, layer_weights, include_top=include_top, source=os.fspath(path))
    return _save_atomic(model, output, tag)


def converted_file(spec, build):
    """The converted ``.weights.h5`` of a registry entry: downloaded, verified and
    converted on first use into ``build(architecture, config, include_top)``'s model, then
    reused (its ``kerasbrain_source`` attribute records the published hash it came from)."""
    spec = get_spec(spec)
    tag = ",".join(f.git_blob_sha1 or f.sha256 for f in spec.files)
    output = os.path.join(download.cache_dir(), f"{spec.key.replace(':', '-')}.weights.h5")
    if os.path.isfile(output):
        try:
            with h5py.File(output, "r") as f:
                if f.attrs.get(SOURCE_ATTR) == tag:
                    return output
        except OSError:
            pass
        os.remove(output)
    paths = download.get_file(spec.architecture, spec.key)
    if not isinstance(paths, str):
        if FORMAT_ALIASES.get(spec.format) != "tf-checkpoint":
            raise ValueError(f"Weights {spec.key!r} have {len(paths)} files; no converter for them.")
        paths = tf_checkpoint.checkpoint_prefix(paths[0])
    return _convert(paths, output, spec.architecture, spec.format, spec.config, tag, True, build)


def _has_top(model):
    return any(layer.name in HEAD_LAYERS for layer in model.layers)


def target_of(architecture):
    """What a checkpoint must match for ``architecture``: DenseNet ``blocks``, ResNet ``depth``."""
    fam = family(architecture)
    depth = architecture[len(fam):]
    if fam == "densenet" and depth:
        blocks = {d: b for b, d in monai_converters.DENSENET_DEPTHS.items()}.get(int(depth))
        return {"blocks": blocks} if blocks else {}
    if fam == "resnet" and depth.isdigit():
        return {"depth": int(depth)}
    return {}


def _is_path(weights):
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and (os.path.sep in weights or os.path.exists(weights))
    )


def load_weights(model, weights, include_top=None, architecture=None, build=None):
    """Load registry or local weights into ``model``.

    Args:
        model: a kerasbrain application model (e.g. ``SFCN(weights=None, ...)``).
        weights: a registry name or ``WeightSpec`` (downloaded, verified, converted once
            and cached), or a path to ``.weights.h5``, legacy Keras ``.h5`` or a PyTorch
            ``.p/.pt/.pth`` checkpoint.
        include_top: whether ``model`` has the head; ``False`` loads the trunk only.
            Default: whether the model has a ``predictions`` layer.
        architecture: what ``model`` is (``"sfcn"``, ``"densenet201"``, ``"resnet18"``),
            for reading a checkpoint; default ``model.name`` (the constructors' names).
        build: ``build(architecture, config, include_top)`` -> the model a registry
            checkpoint converts into (the family's ``checkpoint_model``); without it a
            registry checkpoint is assigned to ``model`` directly and not cached.

    Returns:
        ``model``.

    Raises:
        ValueError: unknown name (lists the known ones), or weights that do not fit the
            model (names the tensor); ``FileNotFoundError`` for a missing file.
    """
    if include_top is None:
        include_top = _has_top(model)
    architecture = architecture or model.name
    if isinstance(weights, WeightSpec) or not _is_path(weights):
        spec = get_spec(weights)
        if build is None:
            paths = download.get_file(spec.architecture, spec.key)
            if not isinstance(paths, str):
                paths = tf_checkpoint.checkpoint_prefix(paths[0])
            layer_weights = read_checkpoint(paths, spec.architecture, spec.format,
                                            **target_of(architecture))
            assign(model, layer_weights, include_top, source=f"weights {spec.key!r} ({paths})")
            return model
        path = converted_file(spec, build)
        _load_keras(model, path, source=f"weights {spec.key!r} ({path})")
        return model
    path = os.fspath(weights)
    if not os.path.isfile(path):
        if tf_checkpoint.has_checkpoint_file(path):
            tf_checkpoint.checkpoint_prefix(path)  # names the missing .index or .data file
        else:
            raise FileNotFoundError(f"Weights file not found: {path}")
    fmt = file_format(path)
    if fmt == "keras":
        _load_keras(model, path, source=path)
    else:
        if (family(architecture), fmt) not in _CONVERTERS:
            raise ValueError(
                f"{path}: no converter from {fmt!r} checkpoints to {architecture!r}; pass "
                "architecture= (e.g. 'sfcn', 'densenet201', 'resnet18') when the model's name "
                "is not its architecture.")
        layer_weights = read_checkpoint(path, architecture, fmt, **target_of(architecture))
        assign(model, layer_weights, include_top, source=path)
    return model


def _load_keras(model, path, source):
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"{source}: does not fit model {model.name!r}: {error}") from error
