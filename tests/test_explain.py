"""kerasbrain.explain: completeness, conservation, parity with gradient x input, Grad-CAM
localisation, output/layer names and bad input, on tiny SFCN-like models."""

import keras
import numpy as np
import pytest

from kerasbrain import explain, models, tasks
from kerasbrain.layers.pooling import FastMaxPooling3D

SHAPE = (16, 16, 16)


def sfcn_like(seed=0, head="linear", avg_pool=False):
    """Conv -> BN -> ReLU -> pool twice, 1x1x1 conv, global average pooling, dense; BN
    statistics and biases random so that folding and biases matter."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*SHAPE, 1))
    x = inputs
    for i, width in enumerate((4, 6)):
        x = keras.layers.Conv3D(width, 3, padding="same", bias_initializer="random_normal", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        pool = keras.layers.AveragePooling3D(2) if avg_pool and i else FastMaxPooling3D(2)
        x = pool(x)
    x = keras.layers.Conv3D(4, 1, name="block2_conv")(x)
    x = keras.layers.ReLU(name="block2_relu")(x)
    features = keras.layers.GlobalAveragePooling3D(name="pool")(x)
    if head == "linear":
        out = keras.layers.Dense(1, bias_initializer="random_normal", name="predictions")(features)
        model = keras.Model(inputs, out, name="tiny")
    else:
        backbone = keras.Model(inputs, features, name="backbone")
        model = models.multitask(backbone, [tasks.SoftClassification("age", (40, 90), bins=5),
                                            tasks.Binary("sex")], dropout=0.2, compile=False)
    rng = np.random.default_rng(seed)
    for layer in model.layers + getattr(model.get_layer("backbone"), "layers", []) \
            if head != "linear" else model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                               rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)])
    return model


def volumes(n=2, seed=1):
    """A bright blob of a different brightness per volume, plus noise."""
    rng = np.random.default_rng(seed)
    g = np.indices(SHAPE)
    blob = np.exp(-((g[0] - 5) ** 2 + (g[1] - 10) ** 2 + (g[2] - 7) ** 2) / 12.0)
    scale = np.arange(1, n + 1).reshape(n, 1, 1, 1, 1)
    return (0.2 * rng.uniform(0.0, 1.0, (n, *SHAPE, 1)) + scale * blob[..., None]).astype("float32")


def predict(model, x, output=None):
    out = model.predict(x, verbose=0)
    return np.asarray(out[output] if output else out, dtype="float64")


def test_integrated_gradients_completeness():
    model = sfcn_like()
    x = volumes()
    for baseline in ("zeros", "blur"):
        maps = explain.integrated_gradients(model, x, baseline=baseline, steps=64)
        base = explain.make_baseline(x, baseline)
        delta = predict(model, x)[:, 0] - predict(model, base)[:, 0]
        assert maps.shape == (2, *SHAPE)
        np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), delta, rtol=0.01)


def test_integrated_gradients_of_a_linear_model_is_exact():
    inputs = keras.Input((*SHAPE, 1))
    out = keras.layers.Dense(1, name="out")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, out)
    x = volumes(1)
    w = keras.ops.convert_to_numpy(model.get_layer("out").kernel).reshape(SHAPE)
    maps = explain.integrated_gradients(model, x, steps=3)
    np.testing.assert_allclose(maps[0], x[0, ..., 0] * w, rtol=1e-4, atol=1e-7)


def test_gauss_rule_is_exact_for_a_cubic_model():
    # f = (w.x + b)^3: along the path the integrand is a quadratic in the path parameter,
    # which 2 Gauss-Legendre nodes integrate exactly and 2 midpoint or trapezoid steps do not.
    inputs = keras.Input((*SHAPE, 1))
    d = keras.layers.Dense(1, bias_initializer="ones", name="out")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Multiply()([d, d, d]))
    x = volumes(2)
    delta = predict(model, x)[:, 0] - predict(model, np.zeros_like(x))[:, 0]
    for rule, exact in (("gauss", True), ("midpoint", False), ("trapezoid", False)):
        total = explain.integrated_gradients(model, x, steps=2, rule=rule).sum(axis=(1, 2, 3))
        error = np.abs(total - delta) / np.abs(delta)
        assert (error.max() < 1e-4) == exact, (rule, error)
    alphas, weights = explain.path_nodes(5, "trapezoid")
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])
    with pytest.raises(ValueError, match="rule must be one of"):
        explain.integrated_gradients(model, x, steps=2, rule="simpson")


def test_soft_classification_head_explains_the_expected_age():
    model = sfcn_like(head="multitask")
    x = volumes()
    centres = np.linspace(45, 85, 5)
    maps = explain.integrated_gradients(model, x, output="age", steps=64)
    expected = predict(model, x, "age") @ centres - predict(model, np.zeros_like(x), "age") @ centres
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), expected, rtol=0.01)
    target = explain.resolve_target(model, "age")
    np.testing.assert_allclose(target.weights, centres)
    with pytest.raises(ValueError, match=r"outputs \['age', 'sex'\]"):
        explain.integrated_gradients(model, x, steps=2)
    with pytest.raises(ValueError, match=r"output 'brain_age' not in .*\['age', 'sex'\]"):
        explain.gradcam(model, x, output="brain_age")


def test_lrp_epsilon_is_conservative_and_equals_gradient_times_input():
    model = sfcn_like(avg_pool=True)
    x = volumes()
    f = predict(model, x)[:, 0]
    maps, bias = explain.lrp(model, x, rules="epsilon", return_bias=True)
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)) + bias, f, rtol=0.01)
    # LRP-0 in a ReLU network is gradient x input (biases take their share)
    grads = explain.smoothgrad(model, x, samples=1, noise=0.0)
    exact = explain.lrp(model, x, rules="epsilon:1e-12")
    np.testing.assert_allclose(exact, grads * x[..., 0], rtol=1e-3, atol=1e-3 * np.abs(exact).max())


def test_lrp_rules_and_presets():
    model = sfcn_like()
    x = volumes(1)
    top = explain.lrp(model, x, rules="epsilon", return_bias=True)
    flat = explain.lrp(model, x, rules="flat")
    pyment = explain.lrp(model, x, rules="pyment")
    ab = explain.lrp(model, x, rules={"block2_conv": "alpha2beta1", "block1_conv": "alpha1beta0"})
    for m in (flat, pyment, ab):
        assert m.shape == (1, *SHAPE) and np.all(np.isfinite(m))
    # flat and alpha1beta0 layers of the pyment preset pass all relevance down (no biases)
    assert np.any(pyment != top[0])
    # flat at the first layer spreads each voxel's relevance evenly: no input dependence
    assert np.corrcoef(flat.ravel(), x.ravel())[0, 1] < 0.5
    with pytest.raises(ValueError, match="block0_conv"):
        explain.lrp(model, x, rules={"conv9": "flat"})
    with pytest.raises(ValueError, match="unknown LRP rule"):
        explain.lrp(model, x, rules="gamma")
    with pytest.raises(ValueError, match="4 layers"):
        explain.lrp(model, x, rules=["flat", "epsilon"])


class OctantMask(keras.layers.Layer):
    """Zero every voxel outside the octant x < n/2, y >= n/2, z < n/2."""

    def call(self, x):
        n = SHAPE[0] // 2
        mask = np.zeros((1, *SHAPE, 1), "float32")
        mask[:, :n, n:, :n] = 1.0
        return x * mask


def test_gradcam_points_at_the_octant_the_answer_depends_on():
    inputs = keras.Input((*SHAPE, 1))
    x = OctantMask()(inputs)
    x = keras.layers.Conv3D(4, 3, padding="same", use_bias=False, kernel_initializer="ones", name="conv")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling3D(2, name="features")(x)
    out = keras.layers.Dense(1, kernel_initializer="ones")(keras.layers.GlobalAveragePooling3D()(x))
    model = keras.Model(inputs, out)
    x = volumes(2) + 0.5
    cam = explain.gradcam(model, x)  # the last 3D map: "features", 8^3
    octant = np.zeros(SHAPE, bool)
    octant[:8, 8:, :8] = True
    near = np.zeros(SHAPE, bool)
    near[:12, 4:, :12] = True  # the octant and the reach of the 3x3x3 kernel and upsampling
    for m in cam:
        assert np.unravel_index(np.argmax(m), SHAPE) in set(zip(*np.nonzero(octant), strict=True))
        assert m[octant].sum() / m.sum() > 0.65 and m[~near].max() == 0
    coarse = explain.gradcam(model, x, layer="relu", upsampled=False)
    assert coarse.shape == (2, *SHAPE)
    ig = explain.integrated_gradients(model, x, steps=4)
    assert np.abs(ig[:, ~octant]).max() == 0 and np.abs(ig[:, octant]).sum() > 0
    occ = explain.occlusion(model, x, patch=8)
    assert np.abs(occ[:, ~octant]).max() < 1e-4 * occ.max() and occ[:, octant].min() > 0


def test_hirescam_keeps_where_the_gradient_is():
    # the output reads the features of one octant only (Flatten + Dense): HiResCAM is zero
    # elsewhere, Grad-CAM's channel-mean weights spread over the whole map
    inputs = keras.Input((*SHAPE, 1))
    f = keras.layers.Conv3D(2, 3, padding="same", kernel_initializer="ones", name="features")(inputs)
    dense = keras.layers.Dense(1, name="out")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(f)))
    kernel = np.zeros((*SHAPE, 2, 1), "float32")
    kernel[:8, 8:, :8] = 1.0
    dense.kernel.assign(kernel.reshape(-1, 1))
    x = volumes(2) + 0.5
    octant = np.zeros(SHAPE, bool)
    octant[:8, 8:, :8] = True
    hires = explain.gradcam(model, x, layer="features", variant="hirescam", upsampled=False)
    plain = explain.gradcam(model, x, layer="features", upsampled=False)
    assert hires[:, ~octant].max() == 0 and hires[:, octant].min() > 0
    assert plain[:, ~octant].min() > 0
    # the map sums to the output less the bias (the head is linear in the features)
    np.testing.assert_allclose(hires.sum(axis=(1, 2, 3)), predict(model, x)[:, 0], rtol=1e-4)
    # with global average pooling the gradient is the same everywhere: Grad-CAM = HiResCAM
    gap = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling3D()(f)))
    np.testing.assert_allclose(explain.gradcam(gap, x, layer="features", variant="hirescam"),
                               explain.gradcam(gap, x, layer="features"), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="variant must be one of"):
        explain.gradcam(model, x, variant="scorecam")


def test_bad_inputs_name_the_problem():
    model = sfcn_like()
    x = volumes(1)
    with pytest.raises(ValueError, match=r"layer 'block9' not in .*'block0_conv'"):
        explain.gradcam(model, x, layer="block9")
    with pytest.raises(ValueError, match="not a 3D feature map"):
        explain.gradcam(model, x, layer="pool")
    with pytest.raises(ValueError, match="steps must be an integer of at least 1"):
        explain.integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match=r"baseline shape \(8, 8, 8\) does not match"):
        explain.integrated_gradients(model, x, baseline=np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8, 8, 1\) does not fit"):
        explain.integrated_gradients(model, np.zeros((1, 8, 8, 8, 1)))
    inputs = keras.Input((*SHAPE, 1))
    flat = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)), name="flat")
    with pytest.raises(ValueError, match="has no 3D feature map"):
        explain.gradcam(flat, x)


def test_adaptive_rule_finds_the_kink():
    # f = relu(sum(x) - t): the integrand is 0 before a kink at a* = t / sum(x) and sum(x)
    # after it. An even grid misses the kink by up to half a step; the adaptive rule cuts
    # the one interval whose trapezoid disagrees with f(b) - f(a) until the kink is pinned.
    inputs = keras.Input((*SHAPE, 1))
    total = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(0.0),
                               name="out")(keras.layers.Flatten()(inputs))
    x = np.abs(volumes(1)) + 0.1
    s = float(x.sum())
    out = keras.layers.ReLU()(keras.layers.Lambda(lambda v: v - 0.34 * s)(total))
    model = keras.Model(inputs, out)
    delta = predict(model, x)[0, 0]
    errors = {}
    for rule in ("adaptive", "midpoint", "trapezoid"):
        errors[rule] = abs(explain.integrated_gradients(model, x, steps=16, rule=rule).sum() - delta) / delta
    assert errors["adaptive"] < 0.003 < 0.02 < min(errors["midpoint"], errors["trapezoid"]), errors
    with pytest.raises(ValueError, match="the adaptive rule needs steps >= 2"):
        explain.integrated_gradients(model, x, steps=1)
