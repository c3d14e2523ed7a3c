"""One object that carries a run's scale settings to the code that builds and fits a model.

    plan = kb.scale.configure(precision="mixed_bfloat16", distribution={"devices": "all"},
                              gradient_accumulation_steps=4)
    train = kb.data.tfrecord_dataset("data/", labels=["age"], **plan.data_kwargs(32))
    with plan.scope():
        model = ...                      # built here: dtype policy, replicas, remat
        model.compile(optimizer=plan.optimizer("adam"), loss=..., **plan.compile_kwargs)
        plan.check(model)
        model.fit(plan.prepare_dataset(train), epochs=10)
"""

import contextlib
import dataclasses

import keras

from kerasbrain.scale import distribution as dist_lib
from kerasbrain.scale import precision as precision_lib

#: the keys of a training config that `from_config` reads
CONFIG_KEYS = ("precision", "jit_compile", "gradient_accumulation_steps", "remat", "distribution")
REMAT_MODES = ("full", "activations", "larger_than", "list_of_layers")


@dataclasses.dataclass
class ScalePlan:
    """Resolved scale settings; see `configure`."""

    precision: str = "float32"
    loss_scaling: bool = False
    jit_compile: object = "auto"
    gradient_accumulation_steps: int = None
    remat: dict = None
    num_devices: int = 1
    hosts: dist_lib.Hosts = dataclasses.field(default_factory=dist_lib.Hosts)
    engine: object = None

    @property
    def num_workers(self):
        """Hosts (input pipelines) taking part."""
        return self.hosts.count

    @property
    def worker_index(self):
        return self.hosts.index

    @property
    def num_replicas(self):
        """Model replicas over all hosts; each step splits the global batch over them."""
        return self.num_devices * self.hosts.count

    @property
    def compile_kwargs(self):
        """Keyword arguments for ``model.compile``."""
        return {"jit_compile": self.jit_compile}

    @property
    def optimizer_kwargs(self):
        """Keyword arguments every optimizer of this run is built with."""
        steps = self.gradient_accumulation_steps
        return {"gradient_accumulation_steps": steps} if steps else {}

    @contextlib.contextmanager
    def scope(self):
        """Build, compile and fit inside this: replicas (strategy / distribution), remat."""
        with contextlib.ExitStack() as stack:
            if self.engine is not None:
                stack.enter_context(self.engine.scope())
            if self.remat:
                stack.enter_context(keras.RematScope(**self.remat))
            yield self

    def per_worker_batch_size(self, global_batch_size):
        """The batch each host's input pipeline yields for ``global_batch_size``.

        Raises:
            ValueError: the global batch does not split evenly over the replicas.
        """
        if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) \
                or global_batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {global_batch_size!r}.")
        if global_batch_size % self.num_replicas:
            raise ValueError(
                f"batch_size {global_batch_size} (the global batch) is not divisible by the "
                f"{self.num_replicas} replicas ({self.num_devices} device(s) x "
                f"{self.num_workers} host(s)); use a multiple of {self.num_replicas}."
            )
        return global_batch_size // self.num_workers

    def data_kwargs(self, global_batch_size):
        """Arguments for ``kerasbrain.data.tfrecord_dataset``: this host's batch size and,
        with several hosts, its share of the TFRecord shard files."""
        kwargs = {"batch_size": self.per_worker_batch_size(global_batch_size)}
        if self.num_workers > 1:
            kwargs.update(num_shards=self.num_workers, shard_index=self.worker_index)
        return kwargs

    def prepare_dataset(self, dataset):
        """Mark a per-host ``tf.data`` dataset as already sharded (TensorFlow multi-worker);
        other inputs pass through."""
        if self.num_workers > 1 and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if isinstance(dataset, tf.data.Dataset):
                options = tf.data.Options()
                options.experimental_distribute.auto_shard_policy = (
                    tf.data.experimental.AutoShardPolicy.OFF
                )
                return dataset.with_options(options)
        return dataset

    def optimizer(self, optimizer="adam"):
        """An optimizer with this run's gradient accumulation and (float16) loss scaling.

        Args:
            optimizer: a name, a ``{"class_name", "config"}`` dict, or an unbuilt
                ``keras.optimizers.Optimizer`` (rebuilt from its config when gradient
                accumulation is asked for).
        """
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = keras.optimizers.get(optimizer)
        if self.gradient_accumulation_steps and (
            optimizer.gradient_accumulation_steps != self.gradient_accumulation_steps
        ):
            if optimizer.built:
                raise ValueError("gradient_accumulation_steps needs an optimizer that is not "
                                 "built yet; pass a name or a config.")
            config = optimizer.get_config()
            config.update(self.optimizer_kwargs)
            optimizer = type(optimizer).from_config(config)
        return precision_lib.wrap_optimizer(optimizer, self.precision)

    def shard_arrays(self, *arrays):
        """This host's share of in-memory arrays (every ``num_workers``-th sample)."""
        if self.num_workers == 1:
            return arrays
        return tuple(None if a is None else
                     _tree_map(lambda v: v[self.worker_index::self.num_workers], a)
                     for a in arrays)

    def apply(self, model):
        """Give a model compiled elsewhere (e.g. by ``kerasbrain.transfer.finetune``) this
        run's gradient accumulation and ``jit_compile``, then `check` it. Its optimizer must
        not be built yet (it is built by the first ``fit``)."""
        optimizer = model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        steps = self.gradient_accumulation_steps
        if steps and inner.gradient_accumulation_steps != steps:
            if inner.built:
                raise ValueError("gradient_accumulation_steps: the model's optimizer is already "
                                 "built; apply the plan before the first fit.")
            inner.gradient_accumulation_steps = steps
        if self.jit_compile != "auto":
            model.jit_compile = self.jit_compile
        self.check(model)
        return model

    def check(self, model):
        """Check a built model: float32 outputs under mixed precision, loss scaling under
        float16, and no rematerialised layer that takes a ``training`` argument."""
        precision_lib.check_model(model, self.precision)
        if self.remat:
            check_remat(model)

    def describe(self):
        parts = [f"precision={self.precision}"]
        if self.loss_scaling:
            parts.append("loss_scaling")
        parts.append(f"jit_compile={self.jit_compile}")
        if self.gradient_accumulation_steps:
            parts.append(f"gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if self.remat:
            parts.append(f"remat={self.remat['mode']}")
        parts.append(f"replicas={self.num_replicas} ({self.num_devices} device(s) x "
                     f"{self.num_workers} host(s))")
        return ", ".join(parts)


def _tree_map(fn, value):
    if isinstance(value, dict):
        return {k: _tree_map(fn, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tree_map(fn, v) for v in value)
    return fn(value)


def check_remat(model):
    """Raise for rematerialised layers whose ``call`` takes ``training`` (BatchNorm,
    Dropout, nested models): Keras 3 wraps them in ``jax.checkpoint`` /
    ``tf.recompute_grad``, which cannot pass that keyword argument."""
    bad = []
    for layer in [model, *model._flatten_layers(include_self=False)]:
        mode = getattr(layer, "_remat_mode", None)
        if mode is None or not getattr(layer, "_call_has_training_arg", False):
            continue
        if mode.mode in ("full", "larger_than") or (
            mode.mode == "list_of_layers" and layer.name in mode.layer_names
        ):
            bad.append(layer.name)
    if bad:
        raise ValueError(
            f"remat: layers {bad} take a `training` argument and cannot be rematerialised "
            "in Keras 3 (jax.checkpoint / tf.recompute_grad reject it). Use remat mode "
            "'list_of_layers' with layers that take none (convolutions, activations)."
        )


def parse_remat(remat):
    """``None``/``False`` | ``True`` | mode name | ``{"mode", "output_size_threshold",
    "layer_names"}`` -> ``keras.RematScope`` arguments (or None)."""
    if remat is None or remat is False:
        return None
    if remat is True:
        remat = {"mode": "full"}
    if isinstance(remat, str):
        remat = {"mode": remat}
    if not isinstance(remat, dict):
        raise ValueError(f"remat must be a mode name or a mapping, got {remat!r}.")
    unknown = set(remat) - {"mode", "output_size_threshold", "layer_names"}
    if unknown:
        raise ValueError(f"remat: unknown keys {sorted(unknown)}.")
    mode = remat.get("mode", "full")
    if mode not in REMAT_MODES:
        raise ValueError(f"remat.mode must be one of {REMAT_MODES}, got {mode!r}.")
    out = {"mode": mode}
    if "output_size_threshold" in remat:
        out["output_size_threshold"] = int(remat["output_size_threshold"])
    if mode == "list_of_layers":
        names = remat.get("layer_names")
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError("remat mode 'list_of_layers' needs layer_names: a list of names.")
        out["layer_names"] = list(names)
    return out


def _parse_steps(steps):
    if steps is None or steps == 1:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(
            f"gradient_accumulation_steps must be a positive integer, got {steps!r}."
        )
    return steps


def _parse_jit(jit_compile):
    if jit_compile is None:
        return "auto"
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile must be true, false or 'auto', got {jit_compile!r}.")
    return jit_compile


def _parse_distribution(distribution):
    if distribution is None:
        return None, dist_lib.Hosts()
    if not isinstance(distribution, dict):
        raise ValueError(
            f"distribution must be a mapping with 'devices' (and 'hosts'), got {distribution!r}."
        )
    unknown = set(distribution) - {"devices", "hosts"}
    if unknown:
        raise ValueError(f"distribution: unknown keys {sorted(unknown)}; expected 'devices', "
                         "'hosts'.")
    return distribution.get("devices", "all"), dist_lib.parse_hosts(distribution.get("hosts"))


def configure(
    precision=None,
    *,
    loss_scaling=None,
    jit_compile="auto",
    distribution=None,
    gradient_accumulation_steps=None,
    remat=None,
):
    """Set up mixed precision, XLA, gradient accumulation, remat and data parallelism.

    Sets the global Keras dtype policy and, with several hosts, joins the cluster; both
    must happen before any model is built.

    Args:
        precision: ``"float32"`` (default), ``"mixed_bfloat16"`` or ``"mixed_float16"``.
        loss_scaling: for float16 (on by default; ``False`` is an error).
        jit_compile: passed to ``model.compile`` (XLA): ``True``, ``False`` or ``"auto"``.
        distribution: ``{"devices": "all" | N, "hosts": None | "env" | {"addresses":
            [...], "index": i}}``; ``None`` trains on one device.
        gradient_accumulation_steps: apply the averaged gradients of this many batches at
            once (Keras optimizers' ``gradient_accumulation_steps``).
        remat: rematerialisation (``keras.RematScope``): a mode or ``{"mode",
            "output_size_threshold", "layer_names"}``; applies to layers built in
            ``plan.scope()``.

    Returns:
        A `ScalePlan`.
    """
    precision, loss_scaling = precision_lib.resolve_precision(precision, loss_scaling)
    jit_compile = _parse_jit(jit_compile)
    steps = _parse_steps(gradient_accumulation_steps)
    remat = parse_remat(remat)
    devices, hosts = _parse_distribution(distribution)

    dist_lib.initialize_hosts(hosts)
    num_devices = dist_lib.resolve_devices(devices)
    engine = dist_lib.make_engine(num_devices, hosts)
    keras.mixed_precision.set_dtype_policy(precision)
    return ScalePlan(precision, loss_scaling, jit_compile, steps, remat, num_devices, hosts,
                     engine)


def parse_config(config):
    """Validate the scale keys of a training config (no side effects).

    ``precision`` may be a name or ``{"policy": name, "loss_scaling": bool}``.

    Returns:
        Keyword arguments for `configure`.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"the training config must be a mapping, got {type(config).__name__}.")
    kwargs = {}
    precision = config.get("precision")
    if isinstance(precision, dict):
        unknown = set(precision) - {"policy", "loss_scaling"}
        if unknown:
            raise ValueError(f"precision: unknown keys {sorted(unknown)}; expected 'policy', "
                             "'loss_scaling'.")
        kwargs["loss_scaling"] = precision.get("loss_scaling")
        precision = precision.get("policy")
    kwargs["precision"], _ = precision_lib.resolve_precision(precision, kwargs.get("loss_scaling"))
    kwargs["jit_compile"] = _parse_jit(config.get("jit_compile", "auto"))
    kwargs["gradient_accumulation_steps"] = _parse_steps(config.get("gradient_accumulation_steps"))
    kwargs["remat"] = parse_remat(config.get("remat"))
    _parse_distribution(config.get("distribution"))
    kwargs["distribution"] = config.get("distribution")
    return kwargs


def from_config(config):
    """`configure` from the scale keys (`CONFIG_KEYS`) of a training config mapping."""
    return configure(**parse_config(config))
