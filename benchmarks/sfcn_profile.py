"""Where an SFCN training step's time goes on TensorFlow: each layer alone, beside the step.

Times, in one process, the forward pass and the forward + backward pass (gradients of the
input and the weights) of every layer of ``kerasbrain.applications.SFCN`` on its own input
shape, the SGD update of all weights, and the whole ``train_on_batch`` step. Layers are
summed by kind (convolution, BatchNormalization, ReLU, max pooling, head); what the sum
leaves of the step is the cost of running them together (memory traffic between layers,
the loss, Keras' step). BatchNormalization and max pooling are also timed as TensorFlow's
fused batch-norm kernel and ``keras.layers.MaxPooling3D`` (rows in brackets: not in the
sum). ``--env NAME=VALUE,...`` (repeatable) runs one process per
setting, interleaved over ``--rounds``, e.g. oneDNN on and off:

    PYTHONPATH=. nice -n 5 python benchmarks/sfcn_profile.py --size 64 96 64 --batch 2 \\
        --env TF_ENABLE_ONEDNN_OPTS=1,ONEDNN_MAX_CPU_ISA=AVX2 --env TF_ENABLE_ONEDNN_OPTS=0

Prints a table (seconds per step, median over rounds) and a JSON line.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_rates import _time as _best  # noqa: E402  (fastest of the repeats, after one warm-up)

KINDS = {"FastConv3D": "convolution", "Conv3D": "convolution", "BatchNormalization": "batchnorm",
         "ReLU": "relu", "FastMaxPooling3D": "max pooling", "MaxPooling3D": "max pooling"}


def _fused_batchnorm(layer):
    """TensorFlow's fused kernel (FusedBatchNormV3), which Keras 3 does not use."""
    import tensorflow as tf

    def call(x):
        return tf.compat.v1.nn.fused_batch_norm(x, layer.gamma, layer.beta, epsilon=layer.epsilon,
                                                data_format="NDHWC", is_training=True)[0]
    return call


def _keras_max_pooling(layer):
    import keras

    return keras.layers.MaxPooling3D(layer.pool_size)


#: kind -> another implementation of the same layer, timed beside it
_ALTERNATIVES = {"batchnorm": _fused_batchnorm, "max pooling": _keras_max_pooling}


def _worker(size, batch, repeats):
    import keras
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    from kerasbrain.applications import SFCN
    from kerasbrain.layers import conv_gradient

    model = SFCN(weights=None, input_shape=(*size, 1), classes=40)
    rng = np.random.default_rng(0)
    layers = []
    for layer in model.layers[1:]:
        x = tf.constant(rng.normal(size=(batch, *layer.input.shape[1:])).astype("float32"))
        dy = tf.constant(rng.normal(size=(batch, *layer.output.shape[1:])).astype("float32"))

        @tf.function
        def forward(x, layer=layer):
            return layer(x, training=True)

        @tf.function
        def both(x, dy, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=dy)

        kind = KINDS.get(type(layer).__name__, "head")
        row = {"name": layer.name, "kind": kind,
               "forward_s": _best(lambda f=forward, x=x: f(x), repeats),
               "forward_backward_s": _best(lambda f=both, x=x, dy=dy: f(x, dy), repeats)}
        alternative = _ALTERNATIVES.get(kind)
        if alternative is not None:
            other = alternative(layer)
            both_alt = tf.function(lambda x, dy, f=other: tf.gradients(f(x), x, dy))
            row["alternative_forward_backward_s"] = _best(lambda f=both_alt, x=x, dy=dy: f(x, dy), repeats)
        layers.append(row)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    grads = [tf.constant(rng.normal(size=w.shape).astype("float32")) for w in model.trainable_weights]
    optimizer.build(model.trainable_variables)
    update = tf.function(lambda: optimizer.apply(grads, model.trainable_variables))
    sgd = _best(update, repeats)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=keras.losses.KLDivergence())
    x = rng.normal(size=(batch, *size, 1)).astype("float32")
    y = rng.dirichlet(np.ones(40), size=batch).astype("float32")
    step = _best(lambda: model.train_on_batch(x, y), repeats)
    return {"onednn": _pywrap_util_port.IsMklEnabled(),
            "forward_gradients": conv_gradient.forward_gradients(),
            "layers": layers, "sgd_update_s": sgd, "train_step_s": step}


def _run(args, env):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--size", *map(str, args.size),
               "--batch", str(args.batch), "--repeats", str(args.repeats)]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", **env)
    result = subprocess.run(command, env=full_env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise RuntimeError(f"worker with {env} failed: {result.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def _summary(run):
    kinds = {}
    for layer in run["layers"]:
        total = kinds.setdefault(layer["kind"], [0.0, 0.0])
        total[0] += layer["forward_s"]
        total[1] += layer["forward_backward_s"]
    parts = sum(t[1] for t in kinds.values()) + run["sgd_update_s"]
    alternatives = {}
    for layer in run["layers"]:
        if "alternative_forward_backward_s" in layer:
            label = {"batchnorm": "fused batchnorm", "max pooling": "MaxPooling3D"}[layer["kind"]]
            alternatives[label] = alternatives.get(label, 0.0) + layer["alternative_forward_backward_s"]
    return {**{k: v[1] for k, v in kinds.items()}, **alternatives, "sgd update": run["sgd_update_s"],
            "sum of parts": parts, "train step": run["train_step_s"],
            "step - parts": run["train_step_s"] - parts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=(64, 96, 64))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE[,NAME=VALUE] (repeatable)")
    parser.add_argument("--json", help="also write the JSON results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(tuple(args.size), args.batch, args.repeats)))
        return 0
    envs = [dict(item.split("=", 1) for item in text.split(",")) for text in args.env] or [{}]
    load = os.getloadavg()[0]
    rounds = [[_run(args, env) for env in envs] for _ in range(args.rounds)]
    summaries = [[_summary(r) for r in runs] for runs in zip(*rounds, strict=True)]
    medians = [{k: float(np.median([s[k] for s in runs])) for k in runs[0]} for runs in summaries]
    print(f"SFCN {'x'.join(map(str, args.size))}, batch {args.batch}: seconds per step (forward + "
          f"backward of each layer alone, summed by kind), median of {args.rounds} round(s); "
          f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    labels = [",".join(f"{k}={v}" for k, v in env.items()) or "default" for env in envs]
    print(f"{'':<16}" + "".join(f"{label[:30]:>32}" for label in labels))
    for key in medians[0]:
        print(f"{key:<16}" + "".join(f"{m[key]:>24.3f} ({m[key] / m['train step']:4.0%})" for m in medians))
    result = {"benchmark": "sfcn_profile", "size": list(args.size), "batch": args.batch,
              "load_average": [load, os.getloadavg()[0]], "settings": envs, "summary": medians,
              "runs": rounds}
    print(json.dumps(result))
    if args.json:
        # imported here: importing kerasbrain sets TF_ENABLE_ONEDNN_OPTS for the workers
        from kerasbrain.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
