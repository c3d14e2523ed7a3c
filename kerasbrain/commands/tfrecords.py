"""``kerasbrain tfrecords TABLE OUT_DIR``: preprocess a table of scans into TFRecord shards."""


def _shape(text):
    values = tuple(int(v) for v in text.replace("x", ",").split(","))
    if len(values) != 3:
        raise ValueError(f"--shape needs three sizes like 160,192,160, got {text!r}")
    return values


def _number_or_name(text):
    try:
        return float(text)
    except ValueError:
        return text


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tfrecords",
        help="write a table of scans and labels to TFRecord shards + manifest.json",
        description=(
            "Preprocess every image listed in TABLE (CSV/TSV with a path column, or a BIDS "
            "participants.tsv) and write sharded TFRecords with a JSON manifest to OUT_DIR. "
            "Re-running skips shards that are already complete."
        ),
    )
    parser.add_argument("table", help="CSV/TSV table or BIDS participants.tsv")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--labels", help="comma-separated label columns (default: all others)")
    parser.add_argument("--categorical", help="comma-separated label columns to store as "
                        "categories even if they look numeric")
    parser.add_argument("--path-column", default="path")
    parser.add_argument("--id-column", help="unique id column (default participant_id or id)")
    parser.add_argument("--root", help="folder relative paths start from (default: the table's)")
    parser.add_argument("--preset", help="preprocessing preset or weights name, e.g. ukb, brain-age-2022")
    parser.add_argument("--orientation", default="RAS", help="output axis codes (default RAS)")
    parser.add_argument("--spacing", type=float, help="resample to this voxel size (mm)")
    parser.add_argument("--shape", type=_shape, help="crop/pad to X,Y,Z")
    parser.add_argument("--crop", default="center", choices=["center", "bbox"])
    parser.add_argument("--intensity", type=_number_or_name, help="mean, zscore, minmax or a divisor")
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "uint8", "int16"])
    parser.add_argument("--compression", choices=["GZIP", "ZLIB"])
    parser.add_argument("--shards", type=int, help="number of shards")
    parser.add_argument("--shard-size", type=int, default=32, help="volumes per shard (default 32)")
    parser.add_argument("--workers", type=int, help="decoding processes (default: min(cpus, shards))")
    parser.add_argument("--on-error", default="raise", choices=["raise", "skip"])
    parser.add_argument("--prefix", default="data", help="shard file prefix")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerasbrain.data import Preprocessor, write_tfrecords

    if args.preset:
        preprocessor = Preprocessor.for_weights(args.preset)
    else:
        preprocessor = Preprocessor(
            orientation=args.orientation, spacing=args.spacing, shape=args.shape,
            crop=args.crop, intensity=args.intensity,
        )
    report = write_tfrecords(
        args.table,
        args.out_dir,
        labels=args.labels.split(",") if args.labels else None,
        preprocessor=preprocessor,
        categorical=args.categorical.split(",") if args.categorical else (),
        path_column=args.path_column,
        id_column=args.id_column,
        root=args.root,
        dtype=args.dtype,
        compression=args.compression,
        shards=args.shards,
        shard_size=args.shard_size,
        workers=args.workers,
        on_error=args.on_error,
        prefix=args.prefix,
        progress=not args.quiet,
    )
    manifest = report.manifest
    print(
        f"{manifest['count']} volumes in {len(manifest['shards'])} shards "
        f"({len(report.written)} written, {len(report.reused)} already complete) -> {report.manifest_path}"
    )
    for row, path, reason in report.skipped:
        print(f"skipped row {row}: {path}: {reason}")
    return 0
