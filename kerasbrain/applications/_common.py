"""Checks shared by every 3D application: input shapes, weights arguments, pooling."""

import os

import keras

from kerasbrain.applications._preprocessing import (  # noqa: F401  (the families call them here)
    as_array,
    imagenet_decode,
    imagenet_preprocess,
    preprocess,
    preset_preprocess,
)


def obtain_input_shape(
    input_shape, default_shape, min_size, include_top, weights_fixed_shape=False, name="model"
):
    """Validate a channels-last volume shape ``(x, y, z, channels)`` and fill in defaults.

    Args:
        input_shape: user-given shape or None.
        default_shape: the shape the family (or its weights) was built for.
        min_size: the smallest spatial size per axis the family accepts.
        include_top: whether the classification top is included; a top whose weights fix
            the input size (``weights_fixed_shape``) requires ``default_shape``.
        name: model name used in error messages.

    Returns:
        The shape as a tuple of 4 entries (spatial entries may be None without a top).
    """
    if input_shape is None:
        return tuple(default_shape)
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{name}: input_shape must be (x, y, z, channels) for a channels-last volume, "
            f"got {input_shape}."
        )
    if include_top and weights_fixed_shape and tuple(input_shape[:3]) != tuple(default_shape[:3]):
        raise ValueError(
            f"{name}: include_top=True with these weights needs input_shape "
            f"{tuple(default_shape)}, got {input_shape}. Use include_top=False (with "
            f"pooling='avg' or 'max') to run the backbone on another size."
        )
    for size in input_shape[:3]:
        if size is not None and size < min_size:
            raise ValueError(
                f"{name}: every spatial size must be at least {min_size} voxels; "
                f"got input_shape {input_shape}."
            )
    if input_shape[3] is None or input_shape[3] < 1:
        raise ValueError(f"{name}: input_shape needs a positive channel count, got {input_shape}.")
    return input_shape


def model_input(input_tensor, input_shape, name="volume"):
    """The model's input: ``input_tensor`` wrapped as a Keras input, or a new Input."""
    if input_tensor is None:
        return keras.Input(shape=input_shape, name=name)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape, name=name)
    return input_tensor


def model_inputs_for(input_tensor, fallback):
    """The tensors to pass as ``keras.Model(inputs=...)`` (keras.applications convention)."""
    if input_tensor is not None:
        return keras.utils.get_source_inputs(input_tensor)
    return fallback


def global_pool(x, pooling, name):
    """Apply ``pooling`` in {None, 'avg', 'max'} to a 5D feature map."""
    if pooling is None:
        return x
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling3D(name=f"{name}avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling3D(name=f"{name}max_pool")(x)
    raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")


def correct_pad(inputs, kernel_size):
    """Zero padding ``((x0, x1), (y0, y1), (z0, z1))`` before a stride-2 'valid' conv.

    The 3D form of ``keras.applications.imagenet_utils.correct_pad``: pads
    ``kernel_size // 2`` on the far side and one less on the near side of even axes.
    """
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size,) * 3
    pads = []
    for size, k in zip(inputs.shape[1:4], kernel_size, strict=True):
        adjust = 1 if size is None else 1 - size % 2
        pads.append((k // 2 - adjust, k // 2))
    return tuple(pads)


def named_constructor(constructor, name, **kwargs):
    """``constructor`` with ``kwargs`` bound, under its own ``__name__`` (a cache key).

    For 2D twins that need more than ``include_top``/``weights`` (e.g. MobileNetV2's
    ``alpha``), passed to ``load_model_weights`` as ``constructor_2d``.
    """

    def bound(**more):
        return constructor(**kwargs, **more)

    bound.__name__ = bound.__qualname__ = name
    return bound


def is_weights_path(weights):
    """True when ``weights`` names a local file rather than a registry entry."""
    return isinstance(weights, (str, os.PathLike)) and (
        os.path.sep in str(weights) or os.path.exists(weights)
    )


# ---------------------------------------------------------------------------------------
# Pieces shared by the keras.applications-style families (ResNet, DenseNet, Inception,
# ViT, ...): argument checks, the classification top, rematerialisation, weight loading.

#: the size a family's constructors use when no ``input_shape`` is given
DEFAULT_VOLUME = (160, 192, 160)


def check_weights_args(
    weights, include_top, classes, input_shape, family, imagenet_available=True
):
    """Reject impossible ``weights=`` / ``classes`` / channel combinations early.

    Args:
        weights: the constructor's ``weights`` argument.
        include_top: whether the 1000-class ImageNet top is kept.
        classes: requested number of classes.
        input_shape: the (already completed) ``(x, y, z, channels)`` shape.
        family: constructor name for error messages, e.g. ``"ResNet50"``.
        imagenet_available: whether keras.applications publishes 2D ImageNet weights
            for this family (so that they can be inflated).
    """
    if weights != "imagenet":
        return
    if not imagenet_available:
        raise ValueError(
            f"{family}: weights='imagenet' is not available: keras.applications publishes "
            f"no 2D ImageNet weights for {family} to inflate. Use weights=None, a registry "
            "name (kerasbrain.weights.list_weights()) or a weights file."
        )
    if include_top and classes != 1000:
        raise ValueError(
            f"{family}: weights='imagenet' with include_top=True keeps the 1000-class "
            f"ImageNet classifier, so classes must be 1000; got classes={classes}. Use "
            "include_top=False (and your own head) for another number of classes."
        )
    channels = input_shape[-1]
    if include_top and channels != 3:
        raise ValueError(
            f"{family}: weights='imagenet' with include_top=True needs 3 input channels "
            f"(got input_shape {tuple(input_shape)}): the ImageNet classifier describes RGB "
            "photographs, which only a 3-channel input with the RGB kernels kept as they "
            "are can stand for. For 1-channel (or other) volumes use include_top=False: "
            "the first convolution's RGB kernels are then summed and spread over the "
            "input channels."
        )


def classifier_top(x, include_top, pooling, classes, classifier_activation, pool_name=""):
    """The keras.applications top: ``avg_pool`` + Dense ``predictions``, or pooling only.

    Layer names match keras.applications (``avg_pool``, ``max_pool``, ``predictions``).
    """
    if include_top:
        x = keras.layers.GlobalAveragePooling3D(name=f"{pool_name}avg_pool")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions"
        )(x)
    return global_pool(x, pooling, name=pool_name)


def remat_scope(remat):
    """The context under which a family builds its layers, given its ``remat`` argument.

    Keras applies rematerialisation per layer, fixed when the layer is created
    (``keras.RematScope``): during the backward pass each affected layer's forward
    computation is redone instead of keeping its intermediate tensors.

    Args:
        remat: ``None``/``False`` (off), ``True`` or ``"full"`` (every layer),
            ``"activations"`` (only the activation functions inside layers), or a
            ``keras.RematScope`` instance for other modes (Keras 3.15's ``"larger_than"``
            mode fails on the TensorFlow backend inside functional models).
    """
    import contextlib

    if remat is None or remat is False:
        return contextlib.nullcontext()
    if isinstance(remat, keras.RematScope):
        return remat
    if remat is True:
        return keras.RematScope(mode="full")
    if remat in ("full", "activations"):
        return keras.RematScope(mode=remat)
    raise ValueError(
        "remat must be None, True, 'full', 'activations' or a "
        f"keras.RematScope; got {remat!r}."
    )


def resolve_weights(weights, architecture):
    """Split ``weights`` into (registry spec or None, file path or None).

    ``None`` and ``"imagenet"`` give ``(None, None)``; a path gives the path; any other
    string is looked up in the registry for ``architecture``.
    """
    if weights is None or weights == "imagenet":
        return None, None
    if is_weights_path(weights):
        return None, weights
    from kerasbrain import weights as weights_lib

    return weights_lib.get_spec(weights, architecture=architecture), None


def check_registry_head(spec, include_top, classes, family, default=None):
    """The one policy for registry weights whose head does not fit the request: a
    ``classes`` other than the head's (or the constructor's ``default``, meaning "the
    head's") raises, pointing to ``include_top=False``.

    Returns:
        the number of classes to build: the head's with registry weights, else ``classes``.
    """
    if spec is None or not include_top or "classes" not in spec.config:
        return classes
    head = spec.config["classes"]
    if classes not in (head, default):
        raise ValueError(
            f"{family}: weights={spec.key!r} have a head with {head} outputs; got "
            f"classes={classes}. Use include_top=False to put a new head on the backbone."
        )
    return head


def load_model_weights(model, weights, spec, weights_file, include_top, constructor_2d=None,
                       architecture=None, build=None):
    """Load what ``weights`` asks for into a freshly built family model.

    ``"imagenet"`` inflates ``constructor_2d``'s 2D ImageNet weights (cached), a registry
    spec or a file goes through ``kerasbrain.weights.load_weights`` (told the model's
    ``architecture`` and how to ``build`` the model a registry checkpoint converts into).
    With a registry spec the result is a `PretrainedModel` that records it.
    """
    if weights == "imagenet":
        from kerasbrain.applications.inflate import load_imagenet

        load_imagenet(model, constructor_2d, include_top=include_top)
    elif weights_file is not None and str(weights_file).endswith(".weights.h5"):
        from kerasbrain.weights.loading import _load_keras

        _load_keras(model, weights_file, source=weights_file)
    elif spec is not None or weights_file is not None:
        from kerasbrain import weights as weights_lib

        weights_lib.load_weights(model, spec if spec is not None else weights_file,
                                 include_top=include_top, architecture=architecture, build=build)
    from kerasbrain.applications.pretrained import with_preset

    return with_preset(model, spec)


def checkpoint_builder(constructor):
    """``build(architecture, config, include_top)`` for a ``constructor(depth, ...)`` family
    (DenseNet, ResNet): the model a published checkpoint converts into, input size open."""

    def build(architecture, config, include_top):
        depth = int("".join(c for c in architecture if c.isdigit()))
        keys = ("bn_epsilon", "block_layout", "filters", "growth_rate", "stem_filters")
        kwargs = {k: config[k] for k in keys if k in config}
        if include_top:
            kwargs.update(classes=config.get("classes", 1), classifier_activation=None)
        return constructor(depth, include_top=include_top, weights=None,
                           input_shape=(None, None, None, 1), **kwargs)

    return build


def volume_shape(input_shape, min_size, include_top, name, channels=1):
    """``obtain_input_shape`` with the families' default ``(160, 192, 160, channels)``."""
    return obtain_input_shape(
        input_shape, (*DEFAULT_VOLUME, channels), min_size, include_top, name=name
    )


#: the arguments every keras.applications-style constructor takes, in order
_STANDARD_ARGS = (("include_top", True), ("weights", None), ("input_tensor", None),
                  ("input_shape", None), ("pooling", None), ("classes", 1000),
                  ("classifier_activation", "softmax"))


def variant(build, name, doc, args=(), *, default_name, extra_args=(), keywords=(), **fixed):
    """One variant of a family as a ``keras.applications``-style constructor.

    The constructor takes the standard arguments (``include_top`` ... ``name``, in the
    ``keras.applications`` order; ``extra_args`` are ``(name, default, after)`` pairs
    placed after the argument ``after``), then the keyword-only family arguments
    ``keywords`` (``(name, default)`` pairs), and calls
    ``build(*args, **fixed, **arguments)``.

    Args:
        build: the family builder (``ResNet``, ``EfficientNet``...).
        name: the constructor's name (``"ResNet50"``).
        doc: its docstring.
        args: positional arguments of ``build`` fixed by the variant (``depth``...).
        default_name: the model's default name (``"resnet50"``).
        fixed: keyword arguments of ``build`` fixed by the variant.
    """
    import inspect

    standard = [*_STANDARD_ARGS, ("name", default_name)]
    for arg, default, after in extra_args:
        standard.insert([n for n, _ in standard].index(after) + 1, (arg, default))
    kind = inspect.Parameter
    signature = inspect.Signature(
        [kind(n, kind.POSITIONAL_OR_KEYWORD, default=d) for n, d in standard]
        + [kind(n, kind.KEYWORD_ONLY, default=d) for n, d in keywords])

    def constructor(*call_args, **call_kwargs):
        bound = signature.bind(*call_args, **call_kwargs)
        bound.apply_defaults()
        return build(*args, **fixed, **bound.arguments)

    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = doc
    constructor.__signature__ = signature
    return constructor


def variant_docstring(name, top, arguments="", note="", features="features", size=None):
    """The docstring of a family variant whose weights inflate 2D ImageNet weights.

    ``top``: what ``include_top`` adds; ``arguments``: the family's own ``Args`` lines
    (8-space indented); ``note``: a paragraph after ``Args``; ``size``: the 2D model's
    default image size.
    """
    size = f"\n            (The 2D model's default image size is {size}.)" if size else ""
    note = f"\n    {note}\n" if note else ""
    return f"""Instantiate the 3D {name} architecture.

    Args:
        include_top: whether to include {top}.
        weights: ``None`` (random), ``"imagenet"`` (the 2D {name} ImageNet weights
            inflated to 3D, cached; with the top the input needs 3 channels), a
            registry name or the path of a weights file.
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(x, y, z, channels)``, every spatial size at least 32. Defaults to
            ``(160, 192, 160, 1)``.{size}
        pooling: without the top: ``None`` (5D map), ``"avg"`` or ``"max"``.
        classes: number of classes of the top.
        classifier_activation: activation of the top (``None`` for logits).
{arguments}        remat: rematerialisation (gradient checkpointing: activations recomputed in the
            backward pass, less memory on full-size volumes for about one more forward
            pass of compute): ``None``, ``True``/``"full"``, ``"activations"`` or a
            ``keras.RematScope`` (see ``_common.remat_scope``).
{note}
    Returns:
        A ``keras.Model``: ``(batch, classes)`` with the top, else the map
        ``(batch, x/32, y/32, z/32, {features})`` or pooled ``(batch, {features})``.
    """
