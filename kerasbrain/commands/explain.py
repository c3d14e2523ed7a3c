"""``kerasbrain explain``: an attribution map per scan (NIfTI + PNG) and the cohort average."""

import argparse
import os
import sys

from kerasbrain.files import write_text

HELP = "attribution maps (integrated gradients, Grad-CAM, LRP, ...) for every scan"


def add_method_arguments(parser, prefix=""):
    """Options shared by ``explain`` and ``predict --explain``."""
    parser.add_argument(f"--{prefix}output", dest="explain_output", metavar="NAME",
                        help="model output to explain (multi-task models; default: the brain-age task)")
    parser.add_argument(f"--{prefix}space", dest="explain_space", default="scan",
                        choices=("model", "scan", "native"),
                        help="grid of the maps: the model input, the input file (default), or the "
                             "native scan through the saved registration transform")
    parser.add_argument("--steps", type=int, help="integrated gradients: gradients on the path (default 32; 64 for "
                                                  "attributions that sum to the output within about 1%%); "
                                                  "smoothgrad: noisy samples (default 16)")
    parser.add_argument("--baseline", choices=("zeros", "blur"), help="integrated gradients' baseline")
    parser.add_argument("--layer", help="Grad-CAM: layer of the 3D feature map (default: the last)")
    parser.add_argument("--variant", choices=("gradcam", "gradcam++", "hirescam"),
                        help="Grad-CAM: channel weights (default gradcam; hirescam: gradient x "
                             "feature voxel by voxel)")
    parser.add_argument("--rules", help="LRP rules: epsilon, alpha1beta0, flat or pyment (default epsilon)")
    parser.add_argument("--patch", type=int, help="occlusion: cube side in voxels (default 16)")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "explain", help=HELP, description=HELP + ".",
        epilog="Examples:\n"
               "  kerasbrain explain scans/ --model m.keras --method ig -o maps/\n"
               "  kerasbrain explain sub-01_T1w.nii.gz --weights ukb --method gradcam -o maps/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="NIfTI/MGZ files, folders, BIDS datasets or CSV/TSV tables (as predict)")
    parser.add_argument("--model", metavar="FILE.keras", help="a saved model (preprocessing from FILE.json)")
    parser.add_argument("--weights", metavar="NAME", help="registry weights (or, with --model, "
                                                         "whose preprocessing to use)")
    parser.add_argument("--method", default="ig", choices=("ig", "smoothgrad", "gradcam", "occlusion", "lrp"),
                        help="attribution method (default ig: integrated gradients)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the maps")
    parser.add_argument("--path-column", default="path", help="image path column of tables")
    add_method_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def load_predictor(model, weights):
    from kerasbrain import inference

    if not model and not weights:
        raise ValueError("give --weights NAME or --model FILE.keras")
    if model:
        return inference.Predictor.from_model(model, weights=weights)
    if os.path.exists(weights):
        raise ValueError(f"--weights {weights}: a weights file needs its architecture; save the "
                         "whole model as .keras and pass --model")
    return inference.Predictor.from_weights(weights)


def explain_into(predictor, scans, out_dir, method, args):
    """Run `kerasbrain.explain.cohort.explain_scans` with the parsed options."""
    from kerasbrain.explain import cohort

    options = cohort.method_options(method, steps=args.steps, baseline=args.baseline,
                                    layer=args.layer, rules=args.rules, patch=args.patch,
                                    variant=args.variant)
    decode = None
    if getattr(args, "weights", None) and not getattr(args, "model", None):
        decode = cohort.decode_for_weights(args.weights)
    return cohort.explain_scans(predictor, scans, out_dir, method=method,
                                space_name=args.explain_space, output=args.explain_output,
                                decode=decode, options=options)


def run(args):
    from kerasbrain import inference

    predictor = load_predictor(args.model, args.weights)
    scans = inference.collect_inputs(args.inputs, path_column=args.path_column)
    print(f"explaining {len(scans)} scan(s) with {args.method}", file=sys.stderr)
    table = explain_into(predictor, scans, args.out, args.method, args)
    write_text(os.path.join(args.out, "maps.csv"), table.to_csv(index=False, float_format="%.6g"))
    print(f"wrote {len(table)} map(s), the average and maps.csv to {args.out}", file=sys.stderr)
    return 0
