"""Do attribution maps find the regions the disease changes? And what do they cost?

Synthetic cohort (`kerasbrain.datasets.synthetic`) with ``disease_years=0``: the disease
acts only through its regional atrophy (smaller hippocampi, larger temporal horns). A tiny
SFCN classifies disease; for integrated gradients, Grad-CAM and LRP we measure:

- the share of absolute attribution inside the affected regions (hippocampus and
  temporal-horn ellipsoids at their largest, plus a margin) over their share of the
  brain's volume (1 = no better than chance; target >= 3);
- IG completeness at steps=64 (|sum - (f(x) - f(x0))| / |f(x) - f(x0)|) and LRP-epsilon
  conservation on the logit (|sum R + bias part - logit| / |logit|);
- a deletion curve: the mean predicted probability after replacing the top-k% voxels of
  each map (and of random maps) by the blurred volume;
- time per volume at 160x192x160 (SFCN, full width, random weights) on the CPU.

    KERAS_BACKEND=tensorflow PYTHONPATH=. nice -n 5 python benchmarks/explain_synthetic.py \
        --json benchmarks/results/explain_synthetic_2cpu.json
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

from kerasbrain import explain
from kerasbrain.applications import SFCN
from kerasbrain.datasets import synthetic
from kerasbrain.files import write_json

FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


def region_masks(shape, fov=192.0, margin=4.0):
    """Affected regions and brain, as boolean masks on the RAS grid of `make_cohort`."""
    spacing = fov / np.asarray(shape)
    grid = np.meshgrid(*[(np.arange(s) - (s - 1) / 2.0) * sp for s, sp in zip(shape, spacing, strict=True)],
                       indexing="ij")

    def ellipsoid(centre, radii):
        return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0

    region = np.zeros(shape, bool)
    for side in (-1.0, 1.0):  # hippocampi (6, 17, 6) mm, horns up to (6, 18, 6) mm, at size 1.07
        region |= ellipsoid((side * 24.0, -4.0, -14.0), np.array([6.0, 17.0, 6.0]) * 1.07 + margin)
        region |= ellipsoid((side * 27.0, -8.0, -10.0), np.array([6.0, 18.0, 6.0]) * 1.07 + margin)
    brain = ellipsoid(synthetic._BRAIN_CENTRE, synthetic._BRAIN_RADII)
    return region & brain, brain


def classifier(size, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = SFCN(weights=None, include_top=False, input_shape=(size,) * 3 + (1,),
                    filters=(8, 16, 16, 16, 16, 16), pooling="avg")
    logit = keras.layers.Dense(1, name="logit")(keras.layers.Dropout(0.2)(backbone.output))
    out = keras.layers.Activation("sigmoid", name="disease")(logit)
    return keras.Model(backbone.input, out), keras.Model(backbone.input, logit)


def normalise(x):
    return (x / x.mean(axis=(1, 2, 3), keepdims=True))[..., None].astype("float32")


def deletion(model, x, maps, fractions, seed=0):
    """Mean prediction after replacing the top fraction of voxels (by map value) by the blur."""
    blurred = explain.make_baseline(x, "blur", sigma=4.0)
    out = []
    for fraction in fractions:
        xs = x.copy()
        k = int(round(fraction * maps[0].size))
        if k:
            for i, m in enumerate(maps):
                top = np.argpartition(m.ravel(), -k)[-k:]
                flat = xs[i].reshape(-1)
                flat[top] = blurred[i].reshape(-1)[top]
        out.append(float(model.predict(xs, verbose=0).mean()))
    return out


def timing(methods, repeats=1):
    """Seconds (wall and CPU) per volume at 160x192x160 for each method."""
    model = SFCN(weights=None, input_shape=(160, 192, 160, 1))
    centres = np.arange(42.5, 82, 1.0)
    x = np.random.default_rng(0).random((1, 160, 192, 160, 1)).astype("float32")
    rows = {}
    for name, call in methods.items():
        warm, call = call if isinstance(call, tuple) else (call, call)
        warm(model, x, centres)  # warm-up (tracing, compilation)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            call(model, x, centres)
        rows[name] = {"wall_s": (time.perf_counter() - wall) / repeats,
                      "cpu_s": (time.process_time() - cpu) / repeats}
        print(f"  {name:28s} {rows[name]['wall_s']:8.1f} s wall {rows[name]['cpu_s']:8.1f} s CPU", flush=True)
    return rows


def timings(full):
    """The 160x192x160 timing table (see `timing`)."""
    print("time per volume at 160x192x160 (SFCN, random weights):", flush=True)
    methods = {
        "forward": lambda m, v, c: m.predict(v, verbose=0),
        "gradient (1 IG/SmoothGrad step)": lambda m, v, c: explain.smoothgrad(m, v, samples=1, noise=0.0, decode=c),
        "gradcam": lambda m, v, c: explain.gradcam(m, v, decode=c),
        "lrp (epsilon)": lambda m, v, c: explain.lrp(m, v, decode=c),
        "lrp (pyment)": lambda m, v, c: explain.lrp(m, v, rules="pyment", decode=c),
    }
    if full:  # the whole methods, each warmed up by a short run of itself
        methods.update({
            "ig steps=32": (lambda m, v, c: explain.integrated_gradients(m, v, steps=8, decode=c),
                            lambda m, v, c: explain.integrated_gradients(m, v, steps=32, decode=c)),
            "smoothgrad samples=16": (lambda m, v, c: explain.smoothgrad(m, v, samples=4, decode=c),
                                      lambda m, v, c: explain.smoothgrad(m, v, samples=16, decode=c)),
            "occlusion patch=32 stride=32": (
                lambda m, v, c: explain.occlusion(m, v, patch=(80, 96, 160), decode=c),  # 4 patches
                lambda m, v, c: explain.occlusion(m, v, patch=32, stride=32, decode=c)),
        })
    rows = timing(methods)
    if not full:  # passes times the time of one pass
        step = rows["gradient (1 IG/SmoothGrad step)"]
        rows["ig steps=32 (32 gradients)"] = {k: 32 * v for k, v in step.items()}
        rows["smoothgrad samples=16"] = {k: 16 * v for k, v in step.items()}
        rows["occlusion patch=32 (151 forwards)"] = {k: 151 * v for k, v in rows["forward"].items()}
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--explained", type=int, default=12, help="test volumes explained")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--timing-only", action="store_true", help="only the 160x192x160 timings")
    parser.add_argument("--full-timing", action="store_true",
                        help="time integrated gradients, SmoothGrad and occlusion whole (slow) "
                             "instead of multiplying the time of one pass")
    parser.add_argument("--json")
    args = parser.parse_args()
    started = time.time()
    if args.timing_only:
        rows = timings(args.full_timing)
        print(json.dumps({"timing_160x192x160": rows, "backend": keras.backend.backend(),
                          "load_average": os.getloadavg(), "seconds": time.time() - started}))
        return
    shape = (args.size,) * 3
    volumes, table = synthetic.make_cohort(args.n, shape=shape, sites=[0], seed=0, age_range=(60, 80),
                                           disease_prevalence=0.5, disease_years=0.0)
    x, y = normalise(volumes), table["disease"].to_numpy("float32")
    n_train = int(0.75 * args.n)
    model, logit_model = classifier(args.size)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["accuracy", "auc"])
    model.fit(x[:n_train], y[:n_train], batch_size=8, epochs=args.epochs, verbose=2,
              validation_data=(x[n_train:], y[n_train:]))
    test_loss, test_acc, test_auc = model.evaluate(x[n_train:], y[n_train:], verbose=0)
    print(f"test accuracy {test_acc:.3f} AUC {test_auc:.3f}", flush=True)

    region, brain = region_masks(shape)
    share_volume = region.sum() / brain.sum()
    sick = np.flatnonzero(y[n_train:] == 1)[: args.explained] + n_train
    xe = x[sick]
    t = time.time()
    maps = {
        "ig": explain.integrated_gradients(model, xe, baseline="blur", steps=64),
        **{f"{variant}_{layer}": explain.gradcam(model, xe, layer=layer, variant=variant)
           for variant in ("gradcam", "gradcam++", "hirescam")
           for layer in ("block1_relu", "block2_relu", "block3_relu", "block5_relu")},
        "lrp_epsilon": explain.lrp(model, xe, rules="epsilon"),
        "lrp_pyment": explain.lrp(model, xe, rules="pyment"),
    }
    print(f"maps in {time.time() - t:.0f} s", flush=True)
    results = {"test_accuracy": test_acc, "test_auc": test_auc, "explained_volumes": len(sick),
               "region_share_of_brain": float(share_volume), "methods": {}}
    rng = np.random.default_rng(0)
    curves = {"random": deletion(model, xe, rng.random((len(xe), *shape)), FRACTIONS)}
    for name, m in maps.items():
        a = np.abs(m)
        share = float(np.mean(a[:, region].sum(axis=1) / a.reshape(len(a), -1).sum(axis=1)))
        curves[name] = deletion(model, xe, m, FRACTIONS)
        results["methods"][name] = {"region_share": share, "ratio": share / share_volume}
    # completeness and conservation
    base = explain.make_baseline(xe, "blur")
    delta = model.predict(xe, verbose=0)[:, 0] - model.predict(base, verbose=0)[:, 0]
    ig_error = np.abs(maps["ig"].sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
    r, bias = explain.lrp(logit_model, xe, rules="epsilon", return_bias=True)
    logits = logit_model.predict(xe, verbose=0)[:, 0]
    lrp_error = np.abs(r.sum(axis=(1, 2, 3)) + bias - logits) / np.abs(logits)
    ig_logit = explain.integrated_gradients(logit_model, xe, baseline="blur", steps=64)
    delta_logit = logit_model.predict(xe, verbose=0)[:, 0] - logit_model.predict(base, verbose=0)[:, 0]
    ig_logit_error = np.abs(ig_logit.sum(axis=(1, 2, 3)) - delta_logit) / np.abs(delta_logit)
    rules = {}  # completeness of each quadrature rule at 64 gradients (and midpoint at 128);
    # maps["ig"] and ig_logit used the default rule, adaptive
    done = {("adaptive", 64, "probability"): maps["ig"], ("adaptive", 64, "logit"): ig_logit}
    for rule, steps in [*((r, 64) for r in explain.RULES), ("midpoint", 128)]:
        for name, m, d in (("probability", model, delta), ("logit", logit_model, delta_logit)):
            if steps != 64 and name == "logit":
                continue
            ig = done.get((rule, steps, name))
            if ig is None:
                ig = explain.integrated_gradients(m, xe, baseline="blur", steps=steps, rule=rule)
            e = np.abs(ig.sum(axis=(1, 2, 3)) - d) / np.abs(d)
            label = rule if steps == 64 else f"{rule}{steps}"
            rules[f"{label}_{name}"] = {"max": float(e.max()), "median": float(np.median(e))}
            print(f"IG completeness, {label:11s} rule, {name:11s}: max {e.max():.2e} median {np.median(e):.2e}",
                  flush=True)
    results["ig_completeness_by_rule"] = rules
    results.update({"ig_completeness_error_max": float(ig_error.max()),
                    "ig_logit_completeness_error_max": float(ig_logit_error.max()),
                    "ig_completeness_error_median": float(np.median(ig_error)),
                    "lrp_conservation_error_max": float(lrp_error.max()),
                    "lrp_input_share_of_logit_median": float(np.median(r.sum(axis=(1, 2, 3)) / logits)),
                    "deletion_fractions": list(FRACTIONS), "deletion_curves": curves})

    print(f"\nregion share of brain volume {share_volume:.4f}; accuracy {test_acc:.3f}, AUC {test_auc:.3f}")
    print(f"{'method':24s} {'share':>8s} {'ratio':>7s}  deletion curve (mean p) at {FRACTIONS}")
    for name in maps:
        row = results["methods"][name]
        print(f"{name:24s} {row['region_share']:8.4f} {row['ratio']:7.2f}  "
              + " ".join(f"{v:.3f}" for v in curves[name]))
    print(f"{'random':24s} {'':8s} {'':7s}  " + " ".join(f"{v:.3f}" for v in curves["random"]))
    print(f"IG completeness error (steps=64): probability max {ig_error.max():.2e}, logit max "
          f"{ig_logit_error.max():.2e}; LRP-epsilon conservation "
          f"error: max {lrp_error.max():.2e}", flush=True)

    if not args.skip_timing:
        results["timing_160x192x160"] = timings(args.full_timing)
    results.update({"backend": keras.backend.backend(), "cpu": platform.processor() or platform.machine(),
                    "load_average": os.getloadavg(), "seconds": time.time() - started})
    print(json.dumps(results))
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
