"""Pretrain an SFCN without labels: contrastive (SimCLR, y-aware) or masked-volume modelling.

    python applications/pretrain_selfsupervised.py --out ssl_backbone.keras          # synthetic
    python applications/pretrain_selfsupervised.py --method contrastive --kernel age 5 \\
        --data scans/participants.tsv --shape 64 64 64 --epochs 50 --out ssl.keras
    python applications/pretrain_selfsupervised.py --method masked --patch-size 8 --out mim.keras

Saves the pretrained backbone (``--out``, a plain Keras model with pooled output) with its
preprocessing (``.json`` beside it), ready for ``applications/finetune.py --model`` and
``kb.transfer.finetune``. ``--kernel LABEL SIGMA`` weights positives by an RBF kernel on a
table column (y-aware; empty cells fall back to SimCLR for that scan).
"""

import argparse

import _shared
import keras
import numpy as np

import kerasbrain as kb
from kerasbrain import inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _shared.add_data_arguments(parser, default_n=400)
    parser.add_argument("--method", choices=["contrastive", "masked"], default="contrastive")
    parser.add_argument("--kernel", nargs=2, metavar=("LABEL", "SIGMA"),
                        help="y-aware contrastive loss on this label (kernel width in its units)")
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--mask-ratio", type=float, default=0.6)
    parser.add_argument("--patch-size", type=int, default=8, help="masked cube side (voxels)")
    parser.add_argument("--filters", type=int, nargs=6, default=(8, 16, 32, 32, 32, 32),
                        help="SFCN widths (published: 32 64 128 256 256 64)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", default="ssl_backbone.keras", help="backbone file (.keras)")
    args = parser.parse_args(argv)

    prep = _shared.preprocessor_for(args)
    x, table = _shared.load_data(args, prep)
    keras.utils.set_random_seed(args.seed)
    backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=x.shape[1:],
                                    pooling="avg", filters=args.filters, dropout=0.0)
    y = None
    if args.method == "masked":
        model = kb.pretraining.MaskedVolume(backbone, mask_ratio=args.mask_ratio, patch_size=args.patch_size,
                                            seed=args.seed)
    else:
        kernel = None
        if args.kernel:
            label, sigma = args.kernel[0], float(args.kernel[1])
            if label not in table:
                parser.error(f"--kernel: no column {label!r} in the table ({list(table.columns)})")
            kernel = (label, sigma)
            y = {label: np.asarray(table[label], dtype="float32")}
            print(f"y-aware on {label} (sigma {sigma}): {int(np.isfinite(y[label]).sum())} of {len(x)} labelled")
        model = kb.pretraining.Contrastive(backbone, temperature=args.temperature, kernel=kernel, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=2)

    inference.save_model(model.backbone, args.out, prep, volumes=x[:64, ..., 0],
                         description=f"SFCN backbone pretrained without labels ({args.method}) on {len(x)} scans")
    print(f"loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}; saved {args.out}")


if __name__ == "__main__":
    main()
