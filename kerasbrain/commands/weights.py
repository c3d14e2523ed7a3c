"""``kerasbrain weights``: list, download, locate and convert pretrained weights.

    kerasbrain weights list [--architecture sfcn]
    kerasbrain weights download NAME [--architecture sfcn]
    kerasbrain weights path NAME
    kerasbrain weights convert FILE [-o OUT.weights.h5]
"""

import os


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "weights",
        help="list, download, locate and convert pretrained weights",
        description="Pretrained weights: the registry, verified downloads into the Keras "
        "cache ($KERAS_HOME/models/kerasbrain), and conversion of published checkpoints.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    list_parser = actions.add_parser("list", help="print the registry as a table")
    list_parser.add_argument("--architecture", help="only weights for this family, e.g. sfcn")
    download = actions.add_parser(
        "download", help="download and verify a weight file (prints license and citation)"
    )
    download.add_argument("name", help="registry name, e.g. ukb or brain-age-2022:ranking")
    download.add_argument("--architecture", default=None, help="family (default: the entry's)")
    path = actions.add_parser("path", help="print the cache path of a weight file")
    path.add_argument("name", help="registry name")
    convert = actions.add_parser(
        "convert", help="convert a PyTorch (.p/.pt/.pth) or legacy Keras .h5 checkpoint"
    )
    convert.add_argument("file", help="checkpoint to convert")
    convert.add_argument(
        "-o", "--output", help="output .weights.h5 (default: FILE with that suffix)"
    )
    convert.add_argument("--architecture", default="sfcn", help="family (default: sfcn)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerasbrain import weights
    from kerasbrain.weights import download

    if args.action == "list":
        rows = weights.list_weights(architecture=args.architecture)
        if not rows:
            print(f"no weights for architecture {args.architecture!r}")
            return 1
        return 0
    if args.action == "download":
        spec = weights.get_spec(args.name, architecture=args.architecture)
        if all(download.cached_file(f) for f in spec.files):
            download.print_provenance(spec)
        paths = weights.get_file(spec.architecture, spec.key)
        for p in [paths] if isinstance(paths, str) else paths:
            print(p)
        return 0
    if args.action == "path":
        spec = weights.get_spec(args.name)
        folder = download.cache_dir()
        for file_spec in spec.files:
            p = os.path.join(folder, file_spec.filename)
            state = "verified" if download.cached_file(file_spec) else "not downloaded"
            print(f"{p}\t{state}")
        return 0
    if args.action == "convert":
        if not os.path.isfile(args.file):
            raise FileNotFoundError(f"checkpoint not found: {args.file}")
        out = weights.convert(args.file, args.output, architecture=args.architecture)
        print(out)
        return 0
    return 2
