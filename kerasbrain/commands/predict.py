"""``kerasbrain predict``: predictions for every scan, one CSV row each."""

import argparse
import collections
import os
import sys
import warnings

from kerasbrain.files import write_text

MAX_SHOWN = 5  # warnings of one kind printed; the rest are counted
EXIT_SOME_FAILED = 3  # the CSV is written, but some scans could not be read
HELP = "predict every scan with a pretrained or fine-tuned model; write one CSV row per scan"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict", help=HELP, description=HELP + ".",
        epilog="Examples:\n"
               "  kerasbrain predict sub-01_T1w.nii.gz --weights ukb -o ages.csv\n"
               "  kerasbrain predict bids/ --model finetuned.keras --age-column age --qc qc/ -o out.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.epilog += ("\n\nExit status: 0 every scan predicted; 3 some scans could not be read "
                      "(their rows have an error and no prediction); 1 nothing predicted.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="NIfTI/MGZ files, folders (searched recursively), BIDS datasets "
                             "(folder with participants.tsv) or CSV/TSV tables with a path column")
    parser.add_argument("--weights", metavar="NAME|PATH",
                        help="registry weights (see `kerasbrain weights list`), or a .keras file; "
                             "with --model: whose preprocessing to use when the model has no sidecar")
    parser.add_argument("--model", metavar="FILE.keras",
                        help="a saved model (its preprocessing comes from FILE.json next to it)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="CSV file to write")
    parser.add_argument("--table", metavar="FILE",
                        help="CSV/TSV with participant_id (or id) and labels to join by scan id")
    parser.add_argument("--age-column", metavar="NAME",
                        help="column of chronological age: adds the brain-age gap "
                             "(default: 'age' when present and the model predicts age)")
    parser.add_argument("--bias-correction", metavar="FILE.json",
                        help="fitted kerasbrain.brainage.BiasCorrection (JSON) for the gap")
    parser.add_argument("--path-column", default="path", help="image path column of tables")
    parser.add_argument("--qc", metavar="DIR", help="write one PNG of the preprocessed central slices per scan")
    parser.add_argument("--prepare", action="store_true",
                        help="skull-strip and register raw heads first (`kerasbrain prepare`) into "
                             "OUT_prepared/, with its QC report")
    parser.add_argument("--batch-size", type=int, default=4, help="scans per model call (default 4)")
    parser.add_argument("--adapt", action="store_true",
                        help="first re-estimate the model's BatchNorm statistics on the scans being "
                             "predicted (AdaBN; needs tens of scans from one site; reads every scan twice)")
    parser.add_argument("--explain", metavar="METHOD", choices=("ig", "smoothgrad", "gradcam", "occlusion", "lrp"),
                        help="also write an attribution map per scan (see `kerasbrain explain`); "
                             "adds the map_<METHOD> column")
    parser.add_argument("--explain-dir", metavar="DIR",
                        help="folder for the maps (default: <OUT>_maps next to the CSV)")
    from kerasbrain.commands.explain import add_method_arguments

    add_method_arguments(parser, prefix="explain-")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerasbrain import inference

    if not args.model and not args.weights:
        raise ValueError("give --weights NAME|PATH or --model FILE.keras")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_path = args.model or (args.weights if str(args.weights).endswith(".keras") else None)
    if model_path:
        predictor = inference.Predictor.from_model(model_path, weights=None if args.model is None
                                                   else args.weights)
    elif os.path.exists(args.weights):
        raise ValueError(f"--weights {args.weights}: a weights file needs its architecture; "
                         "save the whole model as .keras and pass --model")
    else:
        predictor = inference.Predictor.from_weights(args.weights)

    scans = inference.collect_inputs(args.inputs, path_column=args.path_column)
    if args.table:
        scans = inference.merge_table(scans, args.table)
    age_column = args.age_column
    if age_column is None and "age" in scans.columns and predictor.info.get("brain_age_task"):
        age_column = "age"
    if args.prepare:
        from kerasbrain.commands.prepare import prepare_scans

        folder = os.path.splitext(args.output)[0] + "_prepared"
        print(f"preparing {len(scans)} scan(s) into {folder}", file=sys.stderr)
        scans = prepare_scans(scans, folder, weights=predictor.preprocessor.name or args.weights,
                              title=f"kerasbrain predict --prepare -o {args.output}")
    if args.adapt:
        from kerasbrain.transfer import adapt_batchnorm

        print(f"adapting BatchNorm statistics to {len(scans)} scan(s)", file=sys.stderr)
        volumes = _readable_volumes(predictor, scans["path"])  # unreadable scans fail below
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            adapt_batchnorm(predictor.model, volumes, batch_size=args.batch_size)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    print(f"predicting {len(scans)} scan(s)", file=sys.stderr)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predictor.predict(scans, batch_size=args.batch_size, qc_dir=args.qc,
                                   age_column=age_column, bias_correction=args.bias_correction)
    shown = collections.Counter()
    for warning in caught:
        kind = warning.category.__name__
        shown[kind] += 1
        if shown[kind] <= MAX_SHOWN:
            print(f"warning: {warning.message}", file=sys.stderr)
    for kind, count in shown.items():
        if count > MAX_SHOWN:
            print(f"warning: {count - MAX_SHOWN} more {kind}s; the input_warnings column of "
                  f"{args.output} lists them per scan", file=sys.stderr)

    if args.explain:
        from kerasbrain.commands.explain import explain_into

        maps_dir = args.explain_dir or os.path.splitext(args.output)[0] + "_maps"
        maps = explain_into(predictor, scans, maps_dir, args.explain, args)
        result[f"map_{args.explain}"] = [os.path.join(maps_dir, name) for name in maps["map"]]
        print(f"{args.explain} maps in {maps_dir}", file=sys.stderr)

    write_text(args.output, result.to_csv(index=False, float_format="%.6g"))
    print(f"wrote {args.output} ({len(result)} rows)" + (f"; QC images in {args.qc}" if args.qc else ""),
          file=sys.stderr)
    failed = [error for error in result["error"] if error]
    if failed:
        print(f"{len(failed)} of {len(result)} scan(s) failed (no prediction; see the error "
              f"column of {args.output}):", file=sys.stderr)
        for error in failed:
            print(f"  {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _readable_volumes(predictor, paths):
    """Preprocessed volumes of the scans that load; the others get their error row later."""
    for path in paths:
        try:
            yield predictor.preprocess(path)[0]
        except Exception:  # noqa: BLE001 - predict reports it in the error column
            continue

