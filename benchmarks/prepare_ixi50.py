"""`kb.data.prepare` on the 50 real IXI heads: registration overlap, TIV, time, memory.

For every head: Keras deepbet brain extraction, SimpleITK affine registration to the
MNI152 template, resampling into FSL's MNI152 1 mm grid (``ukb``), the model input.
Measured per scan: Dice of the registered brain mask with the template's brain mask
(and of the unregistered mask, for reference), TIV, correlation with the T1 template,
wall and CPU seconds of extraction and of registration (+ resampling); the process's
peak resident memory at the end.

    KERAS_BACKEND=tensorflow nice -n 5 python benchmarks/prepare_ixi50.py \
        --data ../shared/data/ixi50 -o benchmarks/results/prepare_ixi50.json
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import time

import numpy as np


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ixi50")
    parser.add_argument("--weights", default="ukb")
    parser.add_argument("--n", type=int, default=None, help="only the first N heads")
    parser.add_argument("--skip", type=int, default=0, help="start after the first SKIP heads")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    import keras
    import pandas as pd

    from kerasbrain.data.brain import extract_brain
    from kerasbrain.data.pipeline import template_correlation
    from kerasbrain.data.preprocess import Preprocessor
    from kerasbrain.data.registration import (
        apply_transform,
        register,
        registration_overlap,
        resample_to_grid,
    )

    table = pd.read_csv(os.path.join(args.data, "participants.tsv"), sep="\t")
    table = table.iloc[args.skip: args.n]
    preprocessor = Preprocessor.for_weights(args.weights)
    rows = []
    for _, scan in table.iterrows():
        path = os.path.join(args.data, scan["path"])
        cpu, wall = time.process_time(), time.perf_counter()
        brain, mask, tiv = extract_brain(path)
        extract = (time.perf_counter() - wall, time.process_time() - cpu)
        cpu, wall = time.process_time(), time.perf_counter()
        registered, transform = register(brain, grid=args.weights)
        moved = apply_transform(mask, transform, grid=args.weights)
        preprocessor(registered)
        registration = (time.perf_counter() - wall, time.process_time() - cpu)
        row = {
            "id": scan["participant_id"], "sex": scan["sex"], "age": float(scan["age"]),
            "batch": scan["batch"],
            "dice": registration_overlap(moved, grid=args.weights),
            "unregistered_dice": registration_overlap(
                resample_to_grid(mask, np.eye(4), args.weights), grid=args.weights),
            "tiv_cm3": tiv,
            "template_correlation": template_correlation(registered, grid=args.weights),
            "extract_wall_s": extract[0], "extract_cpu_s": extract[1],
            "register_wall_s": registration[0], "register_cpu_s": registration[1],
        }
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
        write(rows, args, keras.backend.backend())


def write(rows, args, backend):
    """Summary and rows to ``args.output`` (rewritten after every scan)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    summary = {key: {"min": float(frame[key].min()), "median": float(frame[key].median()),
                     "max": float(frame[key].max())}
               for key in ("dice", "unregistered_dice", "tiv_cm3", "template_correlation",
                           "extract_wall_s", "extract_cpu_s", "register_wall_s",
                           "register_cpu_s")}
    summary["heads_with_dice_below_0.93"] = int((frame["dice"] < 0.93).sum())
    summary["tiv_mean_by_sex"] = frame.groupby("sex")["tiv_cm3"].mean().round(1).to_dict()
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_end": os.getloadavg(),
           "backend": backend, "weights": args.weights, "summary": summary,
           "scans": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".part", "w") as handle:
        json.dump(out, handle, indent=1)
    os.replace(args.output + ".part", args.output)


if __name__ == "__main__":
    main()
