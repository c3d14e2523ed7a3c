"""Data-parallel training on Keras' own engines: ``keras.distribution.DataParallel`` on
JAX, ``tf.distribute.MirroredStrategy`` / ``MultiWorkerMirroredStrategy`` on TensorFlow.

A ``distribution:`` config section::

    distribution:
      devices: all            # or a count per host (1 = no distribution)
      hosts:                  # optional, for several machines
        addresses: ["10.0.0.1:12345", "10.0.0.2:12345"]   # the first one coordinates
        index: 0              # this host's position in ``addresses``

``hosts: env`` takes the cluster from the environment instead (``KERAS_DISTRIBUTION_*`` on
JAX, ``TF_CONFIG`` on TensorFlow). Every replica holds the whole model; each step splits
the global batch evenly over all devices of all hosts and averages the gradients.
"""

import dataclasses
import json
import os

import keras


@dataclasses.dataclass(frozen=True)
class Hosts:
    """A cluster of ``len(addresses)`` hosts; this one is ``index``."""

    addresses: tuple = ()
    index: int = 0
    from_env: bool = False

    @property
    def count(self):
        return len(self.addresses) if self.addresses else 1


def parse_hosts(hosts):
    """``None`` | ``"env"`` | ``{"addresses": [...], "index": i}`` -> ``Hosts``."""
    if hosts is None:
        return Hosts()
    if hosts == "env":
        return _hosts_from_env()
    if not isinstance(hosts, dict):
        raise ValueError(
            f"distribution.hosts must be 'env' or a mapping with 'addresses' and 'index', "
            f"got {hosts!r}."
        )
    unknown = set(hosts) - {"addresses", "index"}
    if unknown:
        raise ValueError(f"distribution.hosts: unknown keys {sorted(unknown)}; "
                         "expected 'addresses' and 'index'.")
    addresses = hosts.get("addresses")
    if isinstance(addresses, str):
        addresses = [a.strip() for a in addresses.split(",") if a.strip()]
    if not addresses or not all(isinstance(a, str) and ":" in a for a in addresses):
        raise ValueError(
            "distribution.hosts.addresses must list 'host:port' for every host (the first "
            f"coordinates), got {addresses!r}."
        )
    index = hosts.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(addresses):
        raise ValueError(
            f"distribution.hosts.index must be this host's position in addresses "
            f"(0..{len(addresses) - 1}), got {index!r}."
        )
    return Hosts(tuple(addresses), index)


def _hosts_from_env():
    if keras.backend.backend() == "tensorflow":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ValueError("distribution.hosts is 'env' but TF_CONFIG is not set.")
        try:
            config = json.loads(raw)
            workers = config["cluster"]["worker"]
            index = int(config["task"]["index"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"TF_CONFIG is not a valid cluster spec ({error}).") from error
        return Hosts(tuple(workers), index, from_env=True)
    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    if not (addresses and count and index):
        raise ValueError(
            "distribution.hosts is 'env' but KERAS_DISTRIBUTION_JOB_ADDRESSES, "
            "KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID are not all set."
        )
    listed = [a for a in addresses.split(",") if a]
    count = int(count)
    if len(listed) == 1 and count > 1:  # JAX needs only the coordinator's address
        listed = listed + [f"process-{i}" for i in range(1, count)]
    return Hosts(tuple(listed), int(index), from_env=True)


def local_devices():
    """This host's accelerators (GPU/TPU), else its CPU devices, as backend names."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.local_devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [d.name for d in devices]
    return [f"{d}" for d in keras.distribution.list_devices()]


def resolve_devices(devices, available=None):
    """``"all"`` | int | None -> the number of local devices to use (checked)."""
    available = local_devices() if available is None else available
    if devices is None:
        return 1
    if devices == "all":
        return len(available)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(
            f"distribution.devices must be 'all' or a positive number of devices, got {devices!r}."
        )
    if devices > len(available):
        raise ValueError(
            f"distribution.devices asks for {devices} devices but this host has "
            f"{len(available)}: {', '.join(available)}."
        )
    return devices


def initialize_hosts(hosts):
    """Join the cluster (before any device is touched). No-op for one host."""
    if hosts.count == 1:
        return
    backend = keras.backend.backend()
    if backend == "jax":
        if hosts.from_env:
            keras.distribution.initialize()
        else:
            keras.distribution.initialize(hosts.addresses[0], hosts.count, hosts.index)
    elif backend == "tensorflow":
        if not hosts.from_env:
            os.environ["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": list(hosts.addresses)},
                 "task": {"type": "worker", "index": hosts.index}}
            )
    else:
        raise ValueError(f"multi-host training needs the JAX or TensorFlow backend, not {backend!r}.")


def make_engine(num_devices, hosts):
    """The backend's data-parallel object, or ``None`` for one device on one host.

    Returns:
        JAX: a ``keras.distribution.DataParallel`` (data already sharded per host, so
        ``auto_shard_dataset=False``); TensorFlow: a ``tf.distribute`` strategy.
    """
    if num_devices == 1 and hosts.count == 1:
        return None
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        chosen = []
        for process in range(jax.process_count()):
            mine = [d for d in jax.devices() if d.process_index == process]
            chosen.extend(mine[:num_devices])
        return keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False)
    if backend == "tensorflow":
        import tensorflow as tf

        if hosts.count > 1:
            if num_devices != len(local_devices()):
                raise ValueError(
                    "distribution.devices: with several hosts TensorFlow uses every visible "
                    "device of each host; use devices: all and choose GPUs with "
                    "CUDA_VISIBLE_DEVICES."
                )
            return tf.distribute.MultiWorkerMirroredStrategy()
        return tf.distribute.MirroredStrategy(devices=local_devices()[:num_devices])
    raise ValueError(f"data-parallel training needs the JAX or TensorFlow backend, not {backend!r}.")
