"""3D MobileNetV2, EfficientNet, EfficientNetV2 and ConvNeXt: builds, names, inflation."""

import keras
import numpy as np
import pytest

from kerasbrain.applications import convnext, efficientnet, efficientnet_v2, mobilenet_v2
from kerasbrain.applications.inflate import inflate

SMALL = (32, 32, 32, 1)

# The smallest member of each family is built with and without the top (every pooling on
# MobileNetV2, whose code for pooling the others share); the
# others share its code and differ only in tables checked against keras below.
FAMILIES = {
    "MobileNetV2": (lambda **kw: mobilenet_v2.MobileNetV2(alpha=0.35, **kw), 1280),
    "EfficientNetB0": (efficientnet.EfficientNetB0, 1280),
    "EfficientNetV2B0": (efficientnet_v2.EfficientNetV2B0, 1280),
    "ConvNeXtTiny": (convnext.ConvNeXtTiny, 768),
}


@pytest.mark.parametrize(
    "family,include_top,pooling",
    [(family, True, None) for family in sorted(FAMILIES)]
    + [(family, False, "avg") for family in sorted(FAMILIES)]
    + [("MobileNetV2", False, None), ("MobileNetV2", False, "max")],
)
def test_builds_with_each_top_and_pooling(family, include_top, pooling):
    constructor, features = FAMILIES[family]
    model = constructor(
        include_top=include_top, weights=None, input_shape=SMALL, pooling=pooling, classes=3,
    )
    if include_top:
        assert model.output_shape == (None, 3)
    elif pooling is None:
        assert model.output_shape == (None, 1, 1, 1, features)
    else:
        assert model.output_shape == (None, features)


def _weighted_layers(model):
    return {
        layer.name: [tuple(w.shape) for w in layer.weights]
        for layer in model._flatten_layers(include_self=False)
        if layer.weights and not isinstance(layer, keras.Model)
    }


@pytest.mark.backend_independent  # layer structure only
@pytest.mark.parametrize(
    "constructor_3d,constructor_2d,kwargs",
    [
        (mobilenet_v2.MobileNetV2, keras.applications.MobileNetV2, {"alpha": 0.5}),
        (efficientnet.EfficientNetB1, keras.applications.EfficientNetB1, {}),
        (efficientnet_v2.EfficientNetV2S, keras.applications.EfficientNetV2S, {}),
        (convnext.ConvNeXtTiny, keras.applications.ConvNeXtTiny, {}),
    ],
)
def test_layer_names_and_shapes_mirror_keras(constructor_3d, constructor_2d, kwargs):
    """Same weighted layers, by name, as the 2D model; each kernel one spatial axis more."""
    model_3d = constructor_3d(weights=None, input_shape=SMALL, **kwargs)
    model_2d = constructor_2d(weights=None, input_shape=SMALL[1:], **kwargs)
    layers_3d, layers_2d = _weighted_layers(model_3d), _weighted_layers(model_2d)
    auto = [n for n in layers_2d if n.startswith(("normalization", "layer_normalization"))]
    assert set(layers_3d) - set(auto) == set(layers_2d) - set(auto)
    for name, shapes_2d in layers_2d.items():
        if name in auto:
            continue
        for s2, s3 in zip(shapes_2d, layers_3d[name], strict=True):
            if len(s2) == 4:  # kernel (kh, kw, cin, cout): 3D adds kd; grouped -> depthwise
                assert s3[:2] == s2[:2] and s3[2] == s2[0], (name, s2, s3)
                assert s3[3] * s3[4] == s2[2] * s2[3], (name, s2, s3)
            else:
                assert s3 == s2, (name, s2, s3)


def test_variant_tables_match_keras():
    assert efficientnet_v2.DEFAULT_BLOCKS_ARGS == {
        k: v for k, v in keras.src.applications.efficientnet_v2.DEFAULT_BLOCKS_ARGS.items()
    }
    assert efficientnet.DEFAULT_BLOCKS_ARGS == keras.src.applications.efficientnet.DEFAULT_BLOCKS_ARGS
    for variant, config in convnext.MODEL_CONFIGS.items():
        assert config["depths"] == keras.src.applications.convnext.MODEL_CONFIGS[variant]["depths"]
        assert (
            config["projection_dims"]
            == keras.src.applications.convnext.MODEL_CONFIGS[variant]["projection_dims"]
        )


def test_every_constructor_is_exported():
    import kerasbrain.applications as apps

    names = (
        ["MobileNetV2"]
        + [f"EfficientNetB{i}" for i in range(8)]
        + [f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")]
        + [f"ConvNeXt{s}" for s in ("Tiny", "Small", "Base", "Large", "XLarge")]
    )
    for name in names:
        assert callable(getattr(apps, name)), name
        assert getattr(apps, name).__name__ == name


def test_keras_round_trip_and_forward(tmp_path):
    model = efficientnet.EfficientNetB0(
        include_top=False, weights=None, input_shape=SMALL, pooling="avg"
    )
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + SMALL).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (1, 1280) and np.isfinite(out).all()
    path = tmp_path / "effnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), out, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_convnext_round_trip(tmp_path):
    model = convnext.ConvNeXtTiny(
        include_top=True, weights=None, input_shape=SMALL, classes=2, drop_path_rate=0.1
    )
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + SMALL).astype("float32")
    out = model.predict(x, verbose=0)
    path = tmp_path / "convnext.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), out, rtol=1e-5, atol=1e-5)


def _inflation_check(constructor_3d, constructor_2d, layer_name, size=64, depth=16, **kwargs):
    """Constant-along-z volume -> the 2D model's map at the central depth (interior)."""
    model_2d = constructor_2d(weights=None, input_shape=(size, size, 1), include_top=False, **kwargs)
    rng = np.random.default_rng(0)
    for w in model_2d.weights:  # non-trivial BatchNorm statistics and scales
        if "moving_variance" in w.path or "gamma" in w.path:
            w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))
        elif "moving_mean" in w.path or "beta" in w.path:
            w.assign(rng.normal(0, 0.1, size=w.shape).astype("float32"))
    model_3d = constructor_3d(
        weights=None, input_shape=(size, size, depth, 1), include_top=False, **kwargs
    )
    inflate(model_2d, model_3d)
    image = rng.uniform(0, 1, size=(1, size, size, 1)).astype("float32")
    volume = np.repeat(image[:, :, :, None, :], depth, axis=3)
    sub_2d = keras.Model(model_2d.inputs, model_2d.get_layer(layer_name).output)
    sub_3d = keras.Model(model_3d.inputs, model_3d.get_layer(layer_name).output)
    features_2d = sub_2d.predict(image, verbose=0)
    features_3d = sub_3d.predict(volume, verbose=0)
    centre = features_3d.shape[3] // 2
    got = features_3d[:, :, :, centre]
    scale = np.abs(features_2d).max()
    assert scale > 0
    np.testing.assert_allclose(got / scale, features_2d / scale, atol=1e-4)


@pytest.mark.slow
def test_inflation_property_mobilenet_v2():
    # block_2 is at 1/4 resolution with a receptive field of 19 voxels: the central of its
    # 8 slices sees no z border of a 32-slice volume.
    _inflation_check(mobilenet_v2.MobileNetV2, keras.applications.MobileNetV2,
                     "block_2_add", depth=32, alpha=0.35)


@pytest.mark.slow
def test_inflation_property_efficientnet_b0():
    # The first squeeze-excite pools over the whole volume, z borders included, so the
    # property holds up to the last map before it (stem, normalization, depthwise).
    _inflation_check(efficientnet.EfficientNetB0, keras.applications.EfficientNetB0,
                     "block1a_activation", depth=32)


@pytest.mark.slow
def test_inflation_property_convnext_tiny():
    _inflation_check(convnext.ConvNeXtTiny, keras.applications.ConvNeXtTiny,
                     "convnext_tiny_stage_0_block_0_identity", depth=32, include_preprocessing=False)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: mobilenet_v2.MobileNetV2(weights=None, input_shape=(16, 32, 32, 1)), "at least 32"),
        (lambda: convnext.ConvNeXtTiny(weights=None, input_shape=(32, 31, 32, 1)), "at least 32"),
        (lambda: efficientnet.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 32, 1)),
         "3 input channels"),
        (lambda: efficientnet_v2.EfficientNetV2B0(weights="imagenet", classes=5,
                                                  input_shape=(32, 32, 32, 3)), "classes must be 1000"),
        (lambda: mobilenet_v2.MobileNetV2(weights="imagenet", alpha=0.6, include_top=False,
                                          input_shape=SMALL), "alpha"),
        (lambda: convnext.ConvNeXtTiny(weights="imagenet", name="mine", include_top=False,
                                       input_shape=SMALL), "convnext_tiny"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
