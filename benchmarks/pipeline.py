"""Input pipeline throughput at 160x192x160: volumes per second.

(a) nibabel .nii.gz + preprocessing (UK Biobank preset: reorient, divide by mean, crop
    182x218x182 -> 160x192x160), (b) TFRecord read + parse (+ augmentation) for
    float16 and uint8 storage, (c) the same bytes from raw .npy files in page cache
    (np.load of the float16 array: the limit). Each per core and with all cores.

    python benchmarks/pipeline.py [--volumes 16] [--seconds 10] [--ixi ../shared/data/ixi50]
        [--json out.json]

Synthetic volumes are generated in a temporary folder; with --ixi, (a) uses the real
IXI heads instead (resampled 2 -> 1 mm and cropped/padded to 160x192x160).
Prints a table, then one JSON object.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPE = (160, 192, 160)


def synthetic_heads(folder, count, seed=0):
    """MNI-sized (182x218x182, LAS, 1 mm) ellipsoid 'brains' with noise, as .nii.gz."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n, dtype="float32") for n in (182, 218, 182)], indexing="ij"))
    radius = (grid ** 2 / np.array([0.8, 0.85, 0.75], dtype="float32")[:, None, None, None] ** 2).sum(0)
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (90, -126, -72)
    paths = []
    for i in range(count):
        brain = (radius < 1) * (600 + 200 * np.sin(8 * grid[0] + i) * np.cos(6 * grid[1]))
        noisy = (brain + rng.normal(0, 20, brain.shape) * (radius < 1)).clip(0).astype("float32")
        path = os.path.join(folder, f"sub-{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(noisy, affine), path)
        paths.append(path)
    return paths


def _preprocess(args):
    path, config = args
    from kerasbrain.data import Preprocessor

    return Preprocessor.from_config(config)(path).shape


def nifti_rate(paths, config, workers, seconds):
    """(a): volumes/s decoding + preprocessing, in `workers` processes."""
    from kerasbrain.data import Preprocessor

    done, start = 0, time.perf_counter()
    if workers == 1:
        prep = Preprocessor.from_config(config)
        while time.perf_counter() - start < seconds or done == 0:
            prep(paths[done % len(paths)])
            done += 1
        return done / (time.perf_counter() - start)
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_preprocess, [(paths[0], config)] * workers))  # start workers
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or done == 0:
            batch = [(paths[(done + i) % len(paths)], config) for i in range(2 * workers)]
            done += len(list(pool.map(_preprocess, batch)))
        return done / (time.perf_counter() - start)


def tfrecord_rate(folder, augment, workers, seconds, batch_size=4):
    """(b): volumes/s through tfrecord_dataset (read, parse, dequantise, [augment], batch)."""
    import tensorflow as tf

    from kerasbrain.data import tfrecord_dataset

    ds = tfrecord_dataset(folder, batch_size=batch_size, repeat=True, augment=augment, seed=0, verify=False)
    options = tf.data.Options()
    if workers == 1:
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    iterator = iter(ds)
    next(iterator)  # warm-up: tracing, page cache
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        volumes = next(iterator)[0]
        done += int(volumes.shape[0])
    return done / (time.perf_counter() - start)


def _load_npy(path):
    return np.load(path).shape


def npy_rate(paths, workers, seconds):
    """(c): volumes/s reading the stored float16 bytes from .npy files in page cache.

    No cast: numpy's float16 -> float32 conversion is slower than the read itself.
    """
    for path in paths:
        _load_npy(path)  # page cache
    done, start = 0, time.perf_counter()
    if workers == 1:
        while time.perf_counter() - start < seconds or done == 0:
            _load_npy(paths[done % len(paths)])
            done += 1
        return done / (time.perf_counter() - start)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        while time.perf_counter() - start < seconds or done == 0:
            done += len(list(pool.map(_load_npy, [paths[(done + i) % len(paths)] for i in range(4 * workers)])))
    return done / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=16, help="synthetic volumes to generate")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per measurement")
    parser.add_argument("--ixi", help="ixi50 folder: use its heads for (a)")
    parser.add_argument("--json", help="also write the JSON here")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="'all cores' = this many")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from kerasbrain.data import Preprocessor, load_volume, write_tfrecords

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {args.volumes} synthetic heads in {tmp} ...", file=sys.stderr)
        heads = synthetic_heads(tmp, args.volumes)
        prep = Preprocessor.for_weights("ukb")
        config = prep.get_config()
        sources = heads
        if args.ixi:
            import pandas as pd

            table = pd.read_csv(os.path.join(args.ixi, "participants.tsv"), sep="\t")
            sources = [os.path.join(args.ixi, p) for p in table["path"]][: args.volumes]
            config = Preprocessor(spacing=1.0, shape=SHAPE, intensity="mean").get_config()
        folders = {}
        for dtype in ("float16", "uint8"):
            folders[dtype] = os.path.join(tmp, dtype)
            write_tfrecords([{"path": p} for p in heads], folders[dtype], preprocessor=prep,
                            dtype=dtype, shard_size=4, progress=False)
        npys = []
        for i, path in enumerate(heads):
            npy = os.path.join(tmp, f"raw-{i:03d}.npy")
            np.save(npy, prep(path).astype("float16"))
            npys.append(npy)
        assert load_volume(heads[0]).shape == (182, 218, 182)

        for workers in (1, args.cores):
            scope = "1 core" if workers == 1 else f"{workers} cores"
            measure = [
                ("(a) nibabel .nii.gz + preprocessing", lambda w=workers: nifti_rate(sources, config, w, args.seconds)),
                ("(b) TFRecord float16", lambda w=workers: tfrecord_rate(folders["float16"], None, w, args.seconds)),
                ("(b) TFRecord uint8", lambda w=workers: tfrecord_rate(folders["uint8"], None, w, args.seconds)),
                ("(b) TFRecord float16 + augmentation", lambda w=workers: tfrecord_rate(folders["float16"], True, w, args.seconds)),
                ("(b) TFRecord uint8 + augmentation", lambda w=workers: tfrecord_rate(folders["uint8"], True, w, args.seconds)),
                ("(c) raw .npy float16 read (page cache)", lambda w=workers: npy_rate(npys, w, args.seconds)),
            ]
            for name, run in measure:
                rate = run()
                results.append({"pipeline": name, "workers": workers, "volumes_per_s": round(rate, 2)})
                print(f"  {name:<40} {scope:>9}: {rate:8.2f} volumes/s", file=sys.stderr)

    def rate(prefix, workers):
        return next(r["volumes_per_s"] for r in results if r["pipeline"] == prefix and r["workers"] == workers)

    ratios = {}
    for workers in (1, args.cores):
        a = rate("(a) nibabel .nii.gz + preprocessing", workers)
        c = rate("(c) raw .npy float16 read (page cache)", workers)
        for dtype in ("float16", "uint8"):
            b = rate(f"(b) TFRecord {dtype}", workers)
            ratios[f"{dtype}, {workers} worker(s)"] = {"b_over_a": round(b / a, 1), "b_over_c": round(b / c, 2)}

    print(f"\n| pipeline (volumes/s at {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}) | 1 core | {args.cores} cores |")
    print("|---|---:|---:|")
    for name in dict.fromkeys(r["pipeline"] for r in results):
        print(f"| {name} | {rate(name, 1):.2f} | {rate(name, args.cores):.2f} |")
    print("\n| storage, workers | (b) / (a) (target >= 10) | (b) / (c) (target >= 0.5) |")
    print("|---|---:|---:|")
    for key, value in ratios.items():
        print(f"| {key} | {value['b_over_a']} | {value['b_over_c']} |")
    report = {
        "benchmark": "pipeline",
        "shape": list(SHAPE),
        "volumes": args.volumes,
        "seconds_per_measurement": args.seconds,
        "cores": args.cores,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "source_a": "ixi50" if args.ixi else "synthetic 182x218x182 .nii.gz, ukb preset",
        "results": results,
        "ratios": ratios,
    }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
