"""``kerasbrain prepare``: raw T1 heads -> skull-stripped brains registered to MNI152.

Writes into OUT_DIR, per scan: ``<id>_brain.nii.gz`` and ``<id>_mask.nii.gz`` (native
grid), ``<id>_mni.nii.gz`` (the registered brain on the weight set's grid: the model's
input before intensity scaling and cropping), ``<id>_transform.json`` (MNI -> native
world affine) and ``<id>_qc.png``; then ``prepared.csv`` (one row per scan, paths
relative to OUT_DIR, ``tiv_cm3``, ``dice``, ``template_correlation``, ``flags``) and
``report.html`` (every scan's QC image, worst first).
"""

import argparse
import os
import sys
import warnings

HELP = "skull-strip and register raw T1 heads to MNI152 for a weight set; QC report"
TABLE = "prepared.csv"
REPORT = "report.html"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "prepare", help=HELP, description=HELP + ".",
        epilog="Examples:\n"
               "  kerasbrain prepare raw/ prepared/ --weights ukb\n"
               "  kerasbrain predict prepared/prepared.csv --weights ukb -o ages.csv\n"
               "  kerasbrain predict raw/ --weights ukb --prepare -o ages.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="NIfTI/MGZ files, folders, BIDS datasets or CSV/TSV tables")
    parser.add_argument("output", metavar="OUT_DIR", help="folder for the prepared scans")
    parser.add_argument("--weights", default="ukb", metavar="NAME",
                        help="weight set whose grid and preprocessing to prepare for (default ukb)")
    parser.add_argument("--path-column", default="path", help="image path column of tables")
    parser.set_defaults(func=run)
    return parser


def _save(volume, path):
    import nibabel as nib

    from kerasbrain.files import atomic_write

    with atomic_write(path) as tmp:
        nib.save(nib.Nifti1Image(volume.array, volume.affine), tmp)


def prepare_scans(scans, out_dir, weights="ukb", title=None):
    """Prepare every scan of a table (``id``, ``path``) into ``out_dir``.

    Returns:
        The table with ``source`` (the raw scan), ``path`` (the registered brain, absolute),
        ``brain``, ``mask``, ``transform``, ``qc``, ``tiv_cm3``, ``dice``,
        ``template_correlation``, ``flags`` and ``prepare_warnings``; also written to
        ``out_dir/prepared.csv`` (relative paths) with ``out_dir/report.html``.
    """
    import keras
    import numpy as np

    from kerasbrain.data import qc
    from kerasbrain.data.io import Volume, load_volume
    from kerasbrain.data.pipeline import flags, prepare
    from kerasbrain.data.registration import template_on_grid
    from kerasbrain.files import write_text

    os.makedirs(out_dir, exist_ok=True)
    template = template_on_grid(weights)
    result = scans.reset_index(drop=True).copy()
    columns = {key: [] for key in ("source", "path", "brain", "mask", "transform", "qc",
                                   "tiv_cm3", "dice", "template_correlation", "flags",
                                   "prepare_warnings")}
    entries = []
    bar = keras.utils.Progbar(len(result), unit_name="scan")
    for scan_id, source in zip(result["id"], result["path"], strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            native = load_volume(source, check=False)
            _, details = prepare(native, weights=weights, return_details=True)
        notes = [str(w.message) for w in caught]
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        names = {key: os.path.join(out_dir, f"{scan_id}_{key}{suffix}") for key, suffix in (
            ("brain", ".nii.gz"), ("mask", ".nii.gz"), ("mni", ".nii.gz"),
            ("transform", ".json"), ("qc", ".png"))}
        _save(details["brain"], names["brain"])
        _save(details["mask"], names["mask"])
        _save(details["registered"], names["mni"])
        details["transform"].save(names["transform"])
        shown = Volume(np.nan_to_num(native.array), native.affine)
        png = qc.overlay_png(shown, details["mask"], details["registered"], template,
                             title=str(scan_id))
        qc.write_png(png, names["qc"])
        reasons = flags(details["tiv_cm3"], details["dice"], details["template_correlation"])
        for key, value in (("source", source), ("path", names["mni"]), ("brain", names["brain"]),
                           ("mask", names["mask"]), ("transform", names["transform"]),
                           ("qc", names["qc"]), ("tiv_cm3", round(details["tiv_cm3"], 2)),
                           ("dice", round(details["dice"], 4)),
                           ("template_correlation", round(details["template_correlation"], 3)),
                           ("flags", "; ".join(reasons)), ("prepare_warnings", "; ".join(notes))):
            columns[key].append(value)
        entries.append({"id": scan_id, "png": png, "tiv_cm3": details["tiv_cm3"],
                        "dice": details["dice"], "flags": reasons,
                        "template_correlation": details["template_correlation"]})
        bar.add(1)
    for key, values in columns.items():
        result[key] = values
    written = result.copy()
    for key in ("path", "brain", "mask", "transform", "qc"):
        written[key] = [os.path.relpath(p, out_dir) for p in written[key]]
    write_text(os.path.join(out_dir, TABLE), written.to_csv(index=False))
    qc.write_report(entries, os.path.join(out_dir, REPORT),
                    title=title or f"kerasbrain prepare --weights {weights}")
    return result


def run(args):
    from kerasbrain.data.inputs import collect_inputs

    scans = collect_inputs(args.inputs, path_column=args.path_column)
    print(f"preparing {len(scans)} scan(s) for {args.weights}", file=sys.stderr)
    result = prepare_scans(scans, args.output, weights=args.weights)
    flagged = int((result["flags"] != "").sum())
    print(f"wrote {len(result)} scan(s) to {args.output}; {TABLE}, {REPORT} "
          f"({flagged} flagged)", file=sys.stderr)
    return 0
