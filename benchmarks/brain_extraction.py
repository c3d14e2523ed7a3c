"""Brain extraction in Keras vs the original deepbet 1.0.2 (PyTorch) on real T1 heads.

    # parity, TIV and time per scan, both frameworks in one process (needs torch + deepbet)
    python benchmarks/brain_extraction.py parity [--ixi ../shared/data/ixi50] [--limit N]
        [--json benchmarks/results/brain_extraction_ixi50.json]
    # time per scan and peak memory of one framework in its own process
    python benchmarks/brain_extraction.py speed --framework keras|torch [--limit 5] [--json F]

parity, per head: deepbet's ``BrainExtraction.run`` and ``kb.data.extract_brain`` on the
file; each network's brain probability map in both pipelines: max abs difference, with the
max abs difference of the two networks' inputs (the same box and, up to float32 rounding
of the normalisation, the same values; beyond ``--same-input`` Keras is rerun on deepbet's
exact input); Dice of the two final masks; TIV (cm^3) of both; the time of each pipeline.
Prints a table, then one JSON object (also written to --json).
"""

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: ../shared/data/ixi50 beside the repository (or beside its parent folder)
IXI = next((p for p in (os.path.join(_ROOT, "..", "shared", "data", "ixi50"),
                        os.path.join(_ROOT, "..", "..", "shared", "data", "ixi50"))
            if os.path.isdir(p)), os.path.join(_ROOT, "..", "shared", "data", "ixi50"))


def heads(folder, limit=None):
    """``[(participant_id, sex, path)]`` from ixi50's participants.tsv."""
    with open(os.path.join(folder, "participants.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rows = [(r["participant_id"], r["sex"], os.path.join(folder, r["path"])) for r in rows]
    return rows[:limit] if limit else rows


class _Recorder:
    """Wraps a Keras model (``predict``) or a TorchScript module (called): keeps the last
    input and brain probability."""

    def __init__(self, model):
        self.model, self.input, self.output = model, None, None

    def predict(self, x, verbose=0):
        out = self.model.predict(x, verbose=verbose)
        self.input, self.output = np.asarray(x)[0, ..., 0], np.asarray(out)[0, ..., 1]
        return out

    def __call__(self, x):
        out = self.model(x)
        self.input, self.output = x[0, 0].cpu().numpy(), out[0, 1].cpu().numpy()
        return out

    def __getattr__(self, name):  # deepbet asks its networks for .parameters()
        return getattr(self.model, name)


def machine():
    try:
        model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in model.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "load_average": os.getloadavg()}


def dice(a, b):
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def parity(args):
    import keras
    import torch
    from deepbet import BrainExtraction

    import kerasbrain as kb
    from kerasbrain.data import brain as brain_lib

    torch.set_num_threads(args.threads)
    bet = BrainExtraction(no_gpu=True)
    bet.bbox_model, bet.model = _Recorder(bet.bbox_model), _Recorder(bet.model)
    localiser, network = (_Recorder(m) for m in brain_lib.default_models())
    rows = []
    print(f"{'participant':16s} {'sex':3s} {'bbox diff':>10s} {'main diff':>10s} "
          f"{'dice':>7s} {'TIV keras':>9s} {'TIV torch':>9s} {'t keras':>7s} {'t torch':>7s}")
    for pid, sex, path in heads(args.ixi, args.limit):
        start = time.perf_counter()
        _, torch_mask, torch_tiv = bet.run(path)
        torch_s = time.perf_counter() - start
        start = time.perf_counter()
        _, mask, tiv = kb.data.extract_brain(path, models=(localiser, network))
        keras_s = time.perf_counter() - start
        diffs, input_diffs = [], []
        for ours, theirs in ((localiser, bet.bbox_model), (network, bet.model)):
            if ours.input.shape != theirs.input.shape:
                raise RuntimeError(f"{pid}: the two pipelines cropped different boxes")
            input_diffs.append(float(np.abs(ours.input - theirs.input).max()))
            if input_diffs[-1] > args.same_input:  # rerun Keras on deepbet's exact input
                ours.predict(theirs.input[None, ..., None])
            diffs.append(float(np.abs(ours.output - theirs.output).max()))
        row = {
            "participant_id": pid, "sex": sex,
            "bbox_prob_max_abs_diff": diffs[0], "prob_max_abs_diff": diffs[1],
            "bbox_input_max_abs_diff": input_diffs[0], "input_max_abs_diff": input_diffs[1],
            "mask_dice": dice(mask.array > 0, np.asarray(torch_mask.dataobj) > 0),
            "tiv_cm3_keras": tiv, "tiv_cm3_torch": float(torch_tiv),
            "seconds_keras": keras_s, "seconds_torch": torch_s,
        }
        rows.append(row)
        if args.json:  # partial results survive an interrupted sweep
            _write(args.json, _parity_result(rows, args, keras, torch, done=False))
        print(f"{pid:16s} {sex:3s} {diffs[0]:10.2e} {diffs[1]:10.2e} {row['mask_dice']:7.4f} "
              f"{tiv:9.1f} {torch_tiv:9.1f} {keras_s:7.2f} {torch_s:7.2f}", flush=True)
    return _parity_result(rows, args, keras, torch, done=True)


def _parity_result(rows, args, keras, torch, done):
    tivs = np.asarray([r["tiv_cm3_keras"] for r in rows])
    sexes = np.asarray([r["sex"] for r in rows])
    summary = {
        "heads": len(rows),
        "bbox_prob_max_abs_diff": max(r["bbox_prob_max_abs_diff"] for r in rows),
        "prob_max_abs_diff": max(r["prob_max_abs_diff"] for r in rows),
        "mask_dice_min": min(r["mask_dice"] for r in rows),
        "tiv_cm3_range": [float(tivs.min()), float(tivs.max())],
        "tiv_cm3_mean_men": float(tivs[sexes == "M"].mean()) if (sexes == "M").any() else None,
        "tiv_cm3_mean_women": float(tivs[sexes == "F"].mean()) if (sexes == "F").any() else None,
        "seconds_keras_median_after_first": float(np.median([r["seconds_keras"] for r in rows[1:]]))
        if len(rows) > 1 else None,
        "seconds_torch_median_after_first": float(np.median([r["seconds_torch"] for r in rows[1:]]))
        if len(rows) > 1 else None,
        "seconds_keras_first": rows[0]["seconds_keras"],
        "seconds_torch_first": rows[0]["seconds_torch"],
    }
    return {"mode": "parity", "complete": done, "keras_backend": keras.backend.backend(),
            "torch": torch.__version__, "threads": args.threads, "machine": machine(),
            "summary": summary, "rows": rows}


def speed(args):
    """Time per scan and peak resident memory of one framework, in this process."""
    paths = [p for _, _, p in heads(args.ixi, args.limit)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    if args.framework == "torch":
        import torch
        from deepbet import BrainExtraction

        torch.set_num_threads(args.threads)
        start = time.perf_counter()
        bet = BrainExtraction(no_gpu=True)
        load_s = time.perf_counter() - start
        for path in paths:
            start = time.perf_counter()
            bet.run(path)
            times.append(time.perf_counter() - start)
        version = torch.__version__
    else:
        import keras

        import kerasbrain as kb
        from kerasbrain.data import brain as brain_lib

        start = time.perf_counter()
        brain_lib.default_models()
        load_s = time.perf_counter() - start
        for path in paths:
            start = time.perf_counter()
            kb.data.extract_brain(path)
            times.append(time.perf_counter() - start)
        version = f"keras {keras.__version__} ({keras.backend.backend()})"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "mode": "speed", "framework": args.framework, "version": version,
        "threads": args.threads, "machine": machine(), "scans": len(times),
        "model_load_seconds": load_s, "seconds_first_scan": times[0],
        "seconds_per_scan_median_after_first": float(np.median(times[1:])) if len(times) > 1
        else None,
        "seconds": times, "peak_rss_mib": peak / 1024, "rss_after_imports_mib": rss0 / 1024,
    }
    print(f"{args.framework}: load {load_s:.1f} s, first scan {times[0]:.1f} s, then median "
          f"{result['seconds_per_scan_median_after_first']} s/scan; peak RSS "
          f"{peak / 1024:.0f} MiB")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["parity", "speed"])
    parser.add_argument("--framework", choices=["keras", "torch"], default="keras")
    parser.add_argument("--ixi", default=IXI, help="ixi50 folder (participants.tsv, t1/)")
    parser.add_argument("--limit", type=int, default=None, help="first N heads only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", default=None, help="also write the JSON here")
    parser.add_argument(
        "--same-input", type=float, default=1e-5,
        help="parity: the pipelines' network inputs may differ by this much (float32 "
        "rounding of the normalisation); beyond, Keras reruns on deepbet's exact input")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.ixi, "participants.tsv")):
        parser.error(f"no ixi50 folder at {args.ixi} (use --ixi)")
    result = parity(args) if args.mode == "parity" else speed(args)
    print(json.dumps(result, indent=1))
    if args.json:
        _write(args.json, result)


def _write(path, result):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
