"""Construction of the 3D ResNet, ResNetV2, DenseNet, InceptionV3 and ViT families."""

import json
import os

import keras
import numpy as np
import pytest

from kerasbrain import applications
from kerasbrain.applications import densenet, inception_v3, resnet, resnet_v2, vit
from kerasbrain.layers.patch_embedding import PatchEmbedding3D, resize_position_embedding

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = (32, 32, 32, 1)


# ---------------------------------------------------------------------------------------
# Closed-form parameter counts (``dims`` = 2 gives keras.applications' 2D models).


def _conv(k, cin, cout, dims, bias):
    return k**dims * cin * cout + (cout if bias else 0)


def resnet_params(depth, filters=64, dims=3, channels=1, classes=None, layout="keras"):
    kind, blocks = resnet.DEPTHS[depth]
    bias = layout == "keras"
    expansion = 1 if kind == "basic" else 4
    type_a = layout == "medicalnet" and depth in (18, 34)
    total = _conv(7, channels, filters, dims, bias) + 4 * filters
    cin = filters
    for stage, n in enumerate(blocks):
        w = filters * 2**stage
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            if stride != 1 or cin != w * expansion:
                if not type_a:
                    total += _conv(1, cin, w * expansion, dims, bias) + 4 * w * expansion
            if kind == "basic":
                total += _conv(3, cin, w, dims, bias) + _conv(3, w, w, dims, bias) + 8 * w
            else:
                total += (_conv(1, cin, w, dims, bias) + _conv(3, w, w, dims, bias)
                          + _conv(1, w, 4 * w, dims, bias) + 8 * w + 16 * w)
            cin = w * expansion
    return total + (cin * classes + classes if classes else 0)


def resnet_v2_params(depth, filters=64, dims=3, channels=1, classes=None):
    total = _conv(7, channels, filters, dims, True)
    cin = filters
    for stage, n in enumerate(resnet_v2.DEPTHS[depth]):
        w = filters * 2**stage
        for b in range(1, n + 1):
            total += 4 * cin  # preact BN
            if b == 1:
                total += _conv(1, cin, 4 * w, dims, True)
            total += (_conv(1, cin, w, dims, False) + 4 * w + _conv(3, w, w, dims, False)
                      + 4 * w + _conv(1, w, 4 * w, dims, True))
            cin = 4 * w
    return total + 4 * cin + (cin * classes + classes if classes else 0)


def densenet_params(depth, growth=32, stem=64, dims=3, channels=1, classes=None):
    total = _conv(7, channels, stem, dims, False) + 4 * stem
    c = stem
    for i, n in enumerate(densenet.BLOCKS[depth]):
        for _ in range(n):
            total += 4 * c + _conv(1, c, 4 * growth, dims, False) + 16 * growth
            total += _conv(3, 4 * growth, growth, dims, False)
            c += growth
        if i < 3:
            total += 4 * c + _conv(1, c, c // 2, dims, False)
            c //= 2
    return total + 4 * c + (c * classes + classes if classes else 0)


def vit_params(grid, patch, hidden, layers, mlp, channels=1, classes=None):
    tokens = 1 + int(np.prod(grid))
    embed = patch**3 * channels * hidden + hidden + hidden + tokens * hidden + 3
    block = 4 * hidden + 4 * (hidden * hidden + hidden) + 2 * hidden * mlp + mlp + hidden
    return embed + layers * block + 2 * hidden + (hidden * classes + classes if classes else 0)


# keras.applications' documented 2D parameter counts (include_top, 1000 classes)
KERAS_2D_COUNTS = {
    ("resnet", 50): 25_636_712, ("resnet", 101): 44_707_176, ("resnet", 152): 60_419_944,
    ("resnet_v2", 50): 25_613_800, ("resnet_v2", 101): 44_675_560,
    ("resnet_v2", 152): 60_380_648,
    ("densenet", 121): 8_062_504, ("densenet", 169): 14_307_880,
    ("densenet", 201): 20_242_984,
}


@pytest.mark.backend_independent
@pytest.mark.parametrize("family,depth", sorted(KERAS_2D_COUNTS))
def test_closed_forms_equal_keras_2d_counts(family, depth):
    count = {
        "resnet": lambda: resnet_params(depth, dims=2, channels=3, classes=1000),
        "resnet_v2": lambda: resnet_v2_params(depth, dims=2, channels=3, classes=1000),
        "densenet": lambda: densenet_params(depth, dims=2, channels=3, classes=1000),
    }[family]()
    assert count == KERAS_2D_COUNTS[(family, depth)]


# ---------------------------------------------------------------------------------------
# Building: every constructor at a tiny width, its parameter count against the closed form.


# Deeper variants differ from these only in their blocks-per-stage tables, which the
# closed forms above check against keras.applications' counts; building them all at
# every width would not fit the test budget (benchmarks/backbones.py builds them all).
@pytest.mark.parametrize("depth", [10, 18, 34, 50])
def test_resnet_builds(depth):
    ctor = getattr(applications, f"ResNet{depth}")
    model = ctor(include_top=False, input_shape=TINY, pooling="avg", filters=4)
    expansion = 1 if depth < 50 else 4
    assert model.output.shape == (None, 32 * expansion)
    assert model.name == f"resnet{depth}"
    assert model.count_params() == resnet_params(depth, filters=4)


@pytest.mark.parametrize("depth", [10, 18, 50])
def test_resnet_medicalnet_layout_matches_torch_state_dict(depth):
    """Every MedicalNet tensor maps by the documented names onto a layer of that shape."""
    with open(os.path.join(FIXTURES, "medicalnet_shapes.json")) as f:
        torch_net = json.load(f)[str(depth)]
    assert torch_net["parameters"] == resnet_params(depth, layout="medicalnet") - sum(
        2 * s[0] for k, s in torch_net["state_dict"].items() if k.endswith("running_mean")
    )
    scale = 8  # build at 64 / 8 channels
    model = resnet.ResNet(depth, include_top=False, input_shape=TINY, filters=64 // scale,
                          block_layout="medicalnet")
    expected = {}
    for key, shape in torch_net["state_dict"].items():
        module, tensor = key.rsplit(".", 1)
        parts = module.split(".")
        if parts[0] in ("conv1", "bn1"):
            layer = "conv1_conv" if parts[0] == "conv1" else "conv1_bn"
        else:
            stage, block = int(parts[0][5:]) + 1, int(parts[1]) + 1
            if parts[2] == "downsample":
                suffix = "0_conv" if parts[3] == "0" else "0_bn"
            else:
                suffix = f"{parts[2][-1]}_{parts[2][:-1]}"
            layer = f"conv{stage}_block{block}_{suffix}"
        scaled = [s if s == 1 or i >= 2 else s // scale for i, s in enumerate(shape)]
        if len(shape) == 5:
            scaled = [*scaled[2:], scaled[1], scaled[0]]
        expected.setdefault(layer, []).append(tuple(scaled))
    actual = {
        layer.name: sorted(tuple(w.shape) for w in layer.weights)
        for layer in model.layers if layer.weights
    }
    assert actual == {name: sorted(shapes) for name, shapes in expected.items()}
    if depth == 18:  # type A shortcut: no weights, a zero-padded subsampled identity
        assert "conv3_block1_0_conv" not in actual
        assert model.get_layer("conv3_block1_0_pad").output.shape[-1] == 16


def test_resnet_v2_builds():
    depth = 50
    ctor = applications.ResNet50V2
    model = ctor(include_top=False, input_shape=TINY, pooling="max", filters=4)
    assert model.output.shape == (None, 128)
    assert model.count_params() == resnet_v2_params(depth, filters=4)


def test_densenet_builds():
    depth = 121
    ctor = applications.DenseNet121
    model = ctor(include_top=False, input_shape=TINY, pooling="avg", growth_rate=2,
                 stem_filters=4)
    assert model.count_params() == densenet_params(depth, growth=2, stem=4)
    assert model.output.shape == (None, model.get_layer("bn").output.shape[-1])


def test_vit_builds_and_counts():
    model = applications.ViT(input_shape=(32, 48, 32, 1), patch_size=16, hidden_dim=32,
                             num_layers=2, num_heads=4, mlp_dim=64, classes=3)
    assert model.output.shape == (None, 3)
    assert model.count_params() == vit_params((2, 3, 2), 16, 32, 2, 64, classes=3)


@pytest.mark.slow
def test_vit_b16_full_size_count():
    model = applications.ViTB16(include_top=False, pooling="token", input_shape=(16, 16, 16, 1))
    assert model.output.shape == (None, 768)
    assert model.count_params() == vit_params((1, 1, 1), 16, 768, 12, 3072)


@pytest.mark.slow
def test_inception_v3_builds_with_top():
    model = applications.InceptionV3(input_shape=(75, 75, 75, 1), classes=5)
    assert model.output.shape == (None, 5)
    assert model.get_layer("mixed10").output.shape == (None, 1, 1, 1, 2048)


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_top_and_pooling(pooling):
    """include_top True/False and every pooling (the top is shared by all families)."""
    builds = {
        "resnet": lambda **kw: resnet.ResNet10(input_shape=TINY, filters=4, **kw),
        "densenet": lambda **kw: densenet.DenseNet(
            (1, 1, 1, 1), input_shape=TINY, growth_rate=2, stem_filters=4, **kw),
        "vit": lambda **kw: vit.ViT(input_shape=TINY, patch_size=8, hidden_dim=8,
                                    num_layers=1, num_heads=2, mlp_dim=8, **kw),
    }
    for family, build in builds.items():
        top = build(include_top=True, classes=7, classifier_activation=None)
        assert top.output.shape == (None, 7), family
        assert top.get_layer("predictions").activation is keras.activations.linear
        bare = build(include_top=False, pooling=pooling)
        features = bare.output.shape
        if pooling is None:
            assert len(features) == 5, family
        else:
            assert len(features) == 2, family
            assert features[-1] == top.get_layer("predictions").input.shape[-1]
            assert bare.layers[-1].name == f"{pooling}_pool"


def test_forward_passes_and_input_tensor():
    x = np.random.default_rng(0).normal(size=(2, 32, 40, 36, 1)).astype("float32")
    for layout in ("keras", "medicalnet"):
        model = resnet.ResNet18(include_top=False, pooling="avg", input_shape=x.shape[1:],
                                filters=4, block_layout=layout)
        y = keras.ops.convert_to_numpy(model(x))
        assert y.shape == (2, 32) and np.isfinite(y).all()
    tensor = keras.Input((32, 32, 32, 2))
    model = densenet.DenseNet((1, 2, 1, 1), input_tensor=tensor, include_top=False,
                              growth_rate=2, stem_filters=4, pooling="avg")
    assert model.inputs[0] is tensor
    y = model(np.ones((1, 32, 32, 32, 2), "float32"))
    # channels: stem 4, +2 -> 6, /2 -> 3, +4 -> 7, /2 -> 3, +2 -> 5, /2 -> 2, +2 -> 4
    assert model.output.shape == (None, 4) and y.shape == (1, 4)


def test_keras_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 32, 1)).astype("float32")
    models = [
        resnet.ResNet18(input_shape=TINY, filters=4, block_layout="medicalnet", classes=3),
        vit.ViT(input_shape=TINY, patch_size=8, hidden_dim=16, num_layers=1, num_heads=2,
                mlp_dim=16, classes=3),
    ]
    for model in models:
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)),
            rtol=1e-5, atol=1e-6,
        )
    assert isinstance(loaded.get_layer("patch_embedding"), PatchEmbedding3D)


def test_remat_gives_the_same_gradients():
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 32, 1)).astype("float32")
    plain = resnet.ResNet10(include_top=False, pooling="avg", input_shape=TINY, filters=4)
    remat = resnet.ResNet10(include_top=False, pooling="avg", input_shape=TINY, filters=4,
                            remat=True)
    remat.set_weights(plain.get_weights())
    assert remat.get_layer("conv1_conv")._remat_mode is not None

    def grads(model):
        if keras.backend.backend() == "jax":
            import jax

            def loss(trainable):
                y, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x)
                return (y**2).sum()

            return jax.grad(loss)([v.value for v in model.trainable_variables])
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y = model(x)
            loss = tf.reduce_sum(y**2)
        return tape.gradient(loss, model.trainable_variables)

    for a, b in zip(grads(plain), grads(remat), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Position embeddings


def test_position_embedding_resize_is_trilinear():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(1, 1 + 2 * 3 * 2, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(resize_position_embedding(emb, (2, 3, 2), (4, 6, 3)))
    assert out.shape == (1, 1 + 72, 4)
    np.testing.assert_array_equal(out[:, 0], emb[:, 0])
    import jax

    ref = jax.image.resize(emb[0, 1:].reshape(2, 3, 2, 4), (4, 6, 3, 4), method="trilinear")
    np.testing.assert_allclose(out[0, 1:].reshape(4, 6, 3, 4), np.asarray(ref), atol=1e-6)
    try:
        import torch
    except ImportError:
        return
    grid = torch.from_numpy(emb[0, 1:].reshape(2, 3, 2, 4)).permute(3, 0, 1, 2)[None]
    ref = torch.nn.functional.interpolate(grid, size=(4, 6, 3), mode="trilinear",
                                          align_corners=False)[0].permute(1, 2, 3, 0)
    np.testing.assert_allclose(out[0, 1:].reshape(4, 6, 3, 4), ref.numpy(), atol=1e-6)


def test_vit_weights_load_at_another_size(tmp_path):
    kw = dict(include_top=False, pooling="token", patch_size=8, hidden_dim=8, num_layers=1,
              num_heads=2, mlp_dim=8)
    small = vit.ViT(input_shape=(16, 16, 16, 1), **kw)
    path = str(tmp_path / "small.weights.h5")
    small.save_weights(path)
    large = vit.ViT(input_shape=(32, 24, 16, 1), **kw)
    large.load_weights(path)
    emb = large.get_layer("patch_embedding")
    assert tuple(keras.ops.convert_to_numpy(emb.grid_variable)) == (4, 3, 2)
    expected = resize_position_embedding(
        small.get_layer("patch_embedding").position_embedding, (2, 2, 2), (4, 3, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(emb.position_embedding),
                               keras.ops.convert_to_numpy(expected), atol=1e-6)
    # a volume constant over space gives the same class token whatever the input size,
    # up to the resized position embeddings: check it runs and is finite
    y = keras.ops.convert_to_numpy(large(np.ones((1, 32, 24, 16, 1), "float32")))
    assert y.shape == (1, 8) and np.isfinite(y).all()


# ---------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("build,minimum", [
    (lambda: resnet.ResNet50(input_shape=(31, 64, 64, 1), filters=4), "32"),
    (lambda: densenet.DenseNet121(input_shape=(64, 16, 64, 1)), "32"),
    (lambda: inception_v3.InceptionV3(input_shape=(74, 75, 75, 1)), "75"),
    (lambda: vit.ViTB16(input_shape=(15, 32, 32, 1)), "16"),
])
def test_input_below_minimum(build, minimum):
    with pytest.raises(ValueError, match=minimum):
        build()


def test_imagenet_errors():
    with pytest.raises(ValueError, match="3 input channels"):
        resnet.ResNet50(weights="imagenet", input_shape=TINY)
    with pytest.raises(ValueError, match="classes must be 1000"):
        densenet.DenseNet121(weights="imagenet", classes=10, input_shape=(32, 32, 32, 3))
    for build, family in [(resnet.ResNet18, "ResNet18"), (resnet.ResNet10, "ResNet10"),
                          (resnet.ResNet200, "ResNet200"), (vit.ViTB16, "ViT")]:
        with pytest.raises(ValueError, match=f"no 2D ImageNet weights for {family}"):
            build(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match="block_layout='keras'"):
        resnet.ResNet50(weights="imagenet", include_top=False, block_layout="medicalnet")
    with pytest.raises(ValueError, match="filters=64"):
        resnet.ResNet50(weights="imagenet", include_top=False, filters=4)
    with pytest.raises(ValueError, match="growth_rate=32"):
        densenet.DenseNet121(weights="imagenet", include_top=False, growth_rate=2)
