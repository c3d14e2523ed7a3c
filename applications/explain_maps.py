"""Where did the model look? Attribution maps for a set of scans, one method or several.

    python applications/explain_maps.py --model kerasbrain-demo/pretrained.keras        # synthetic
    python applications/explain_maps.py --weights ukb --data scans/ --method ig gradcam --out maps/

Writes, per method, a NIfTI map and a PNG overlay per scan (three slices through the peak
and a maximum-intensity projection) on the grid of each input file, plus the cohort
average, and prints where each method's average map puts its weight.
"""

import argparse
import os
import tempfile

import _shared
import nibabel as nib
import numpy as np

import kerasbrain as kb
from kerasbrain import inference
from kerasbrain.explain import cohort

METHODS = ("ig", "smoothgrad", "gradcam", "occlusion", "lrp")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a .keras model (default: the demo's)")
    source.add_argument("--weights", help="registry weights, e.g. ukb (see kerasbrain weights list)")
    _shared.add_data_arguments(parser, default_n=4)
    parser.add_argument("--method", nargs="+", choices=METHODS, default=["ig", "gradcam", "lrp"])
    parser.add_argument("--output", help="model output to explain (multi-task models)")
    parser.add_argument("--space", choices=cohort.SPACES, default="scan", help="grid of the maps")
    parser.add_argument("--steps", type=int, default=16, help="integrated gradients' path points")
    parser.add_argument("--out", default="maps", help="output folder")
    args = parser.parse_args(argv)

    if args.weights:
        predictor = inference.Predictor.from_weights(args.weights)
        decode = cohort.decode_for_weights(args.weights)
    else:
        predictor = inference.Predictor.from_model(args.model or _shared.DEMO_MODEL)
        decode = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            scans = inference.collect_inputs(args.data)
        else:
            print(f"no --data: writing {args.n} synthetic scans")
            grid = predictor.preprocessor.shape or tuple(args.shape)
            kb.datasets.make_cohort(args.n, grid, sites=args.sites[:1], seed=args.seed, out_dir=tmp)
            scans = inference.collect_inputs(tmp)
        print(f"{'method':12s} {'mean sum':>10s}  peak of the average map (voxel, model grid)")
        for method in args.method:
            out = os.path.join(args.out, method)
            options = cohort.method_options(method, steps=args.steps if method == "ig" else None)
            table = cohort.explain_scans(predictor, scans, out, method=method, space_name=args.space,
                                         output=args.output, decode=decode, options=options,
                                         progress=False)
            average = np.asarray(nib.load(os.path.join(out, f"average_{method}.nii.gz")).dataobj)
            peak = np.unravel_index(int(np.argmax(np.abs(average))), average.shape)
            print(f"{method:12s} {table['attribution_sum'].mean():10.4g}  {tuple(int(p) for p in peak)}")
    print(f"maps, overlays and averages in {args.out}/<method>/")


if __name__ == "__main__":
    main()
