"""Where a contrastive training step spends its time: each view augmentation layer, and
the backbone's forward + backward pass on one batch of N and on one of 2N volumes.

Times are medians of ``--repeats`` calls of compiled functions (``tf.function``), in ms,
for a batch of ``--batch-size`` volumes of ``--shape`` voxels and an SFCN of ``--filters``
widths (the published ones by default). TensorFlow only.

    KERAS_BACKEND=tensorflow PYTHONPATH=. nice -n 5 python benchmarks/pretraining_step_profile.py \\
        --shape 32 32 32 --filters 4 8 16 32 32 32 --batch-size 32
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import kerasbrain as kb


def milliseconds(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 32, 32])
    parser.add_argument("--filters", type=int, nargs=6, default=[32, 64, 128, 256, 256, 64])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch_size, *args.shape, 1), dtype="float32") + 0.5)
    views = kb.layers.view_augmentation(seed=0)
    result = {"shape": args.shape, "filters": args.filters, "batch_size": args.batch_size, "ms": {}}
    for layer in views.layers:
        step = tf.function(lambda v, layer=layer: layer(v, training=True))
        result["ms"][type(layer).__name__] = milliseconds(lambda step=step: step(x), args.repeats)
    step = tf.function(lambda v: views(v, training=True))
    result["ms"]["view_augmentation"] = milliseconds(lambda: step(x), args.repeats)

    backbone = kb.applications.SFCN(weights=None, include_top=False, input_shape=(*args.shape, 1),
                                    pooling="avg", filters=args.filters, dropout=0.0)
    head = keras.layers.Dense(1)
    head.build((None, backbone.output.shape[-1]))
    variables = backbone.trainable_variables + head.trainable_variables

    @tf.function
    def forward_backward(v):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(head(backbone(v, training=True))))
        return tape.gradient(loss, variables)

    result["ms"]["backbone N"] = milliseconds(lambda: forward_backward(x), args.repeats)
    doubled = tf.concat([x, x], 0)
    result["ms"]["backbone 2N"] = milliseconds(lambda: forward_backward(doubled), args.repeats)
    result["load_average"] = os.getloadavg()
    for name, value in result["ms"].items():
        print(f"{name:20s} {value:8.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
