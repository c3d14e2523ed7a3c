"""Read PyTorch checkpoints without PyTorch and without running pickled code.

``torch.save`` writes one of two layouts:

- the zip layout (PyTorch >= 1.6): ``<root>/data.pkl`` (the pickled object, tensors
  referring to storages by persistent id), ``<root>/data/<key>`` (one raw storage per key)
  and ``<root>/byteorder``;
- the legacy layout (before 1.6, e.g. Peng et al.'s 2019 ``.p`` files): a pickled magic
  number, protocol version and system info, the pickled object, a pickled list of storage
  keys, then for each key an int64 element count and the raw storage bytes.

Both are read with a restricted unpickler that rebuilds tensors as numpy arrays and refuses
every global except the few that describe tensors and ordered dicts.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

#: storage class name -> numpy dtype (bfloat16 is widened to float32 on read)
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: corrupt, truncated, or asking for code."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. in the pickle stream."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A storage referred to by persistent id; its bytes are attached once read."""

    def __init__(self, key, storage_type, numel):
        self.key = key
        self.storage_type = storage_type
        self.numel = numel
        self.array = None


class _LazyTensor:
    """A tensor whose storage bytes come after the pickle (legacy layout)."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)


class _StorageView:
    """A legacy-format view into a root storage (``view_metadata`` of a persistent id)."""

    def __init__(self, root, offset):
        self.root = root
        self.offset = int(offset)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if isinstance(storage, _StorageView):
        storage, storage_offset = storage.root, storage.offset + int(storage_offset)
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor refers to something that is not a storage")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


def _torch_size(values=()):
    return tuple(values)


#: (module, name) -> what the restricted unpickler returns for it
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): _torch_size,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds tensors, storages and (ordered) dicts."""

    def __init__(self, file, storages, source):
        super().__init__(file, encoding="latin1")
        self._storages = storages
        self._source = source

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"{self._source}: refusing to load global '{module}.{name}': a weights "
            "checkpoint only needs tensors, and anything else could run code."
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointError(f"{self._source}: unsupported persistent id {pid!r}.")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._source}: unsupported storage type {storage_type!r}.")
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type, int(numel))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            if not isinstance(view, tuple) or len(view) < 2:
                raise CheckpointError(f"{self._source}: unsupported storage view {view!r}.")
            return _StorageView(self._storages[key], view[1])
        return self._storages[key]


def _unpickle(file, storages, source, unpickler=_RestrictedUnpickler):
    return unpickler(file, storages, source).load()


def _plain_load(file, source):
    """Unpickle a header value (magic number, sys info, key list): no globals at all."""
    return _RestrictedUnpickler(file, {}, source).load()


def _decode(raw, storage_type, byteorder):
    if storage_type.dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype=np.dtype("uint16").newbyteorder(byteorder))
        return (bits.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(storage_type.dtype).newbyteorder(byteorder)
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(storage_type.dtype).newbyteorder("="))


def _materialize(tensor, source, name):
    storage = tensor.storage
    if storage.array is None:
        raise CheckpointError(f"{source}: the data of tensor {name!r} is missing.")
    if any(s < 0 for s in tensor.size) or any(s < 0 for s in tensor.stride):
        raise CheckpointError(f"{source}: tensor {name!r} has a negative size or stride.")
    if 0 in tensor.size:
        return np.zeros(tensor.size, dtype=storage.array.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
    if tensor.offset < 0 or last >= storage.array.size:
        raise CheckpointError(
            f"{source}: tensor {name!r} reaches past its storage ({storage.array.size} "
            "elements): the file is corrupt or truncated."
        )
    base = storage.array[tensor.offset :]
    item = base.itemsize
    view = np.lib.stride_tricks.as_strided(
        base, shape=tensor.size, strides=[s * item for s in tensor.stride], writeable=False
    )
    return np.array(view)


def _collect(obj, source, prefix=""):
    """Flatten nested dicts of tensors into ``{dotted.name: array}``; other leaves dropped."""
    out = collections.OrderedDict()
    if isinstance(obj, _LazyTensor):
        out[prefix] = _materialize(obj, source, prefix)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_collect(value, source, name))
    return out


def _read_legacy(f, source):
    file_size = os.fstat(f.fileno()).st_size
    magic = _plain_load(f, source)
    if magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (bad magic number).")
    protocol = _plain_load(f, source)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(f"{source}: unsupported legacy protocol version {protocol!r}.")
    sys_info = _plain_load(f, source)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    byteorder = "<" if little else ">"
    storages = {}
    obj = _unpickle(f, storages, source)
    keys = _plain_load(f, source)
    if not isinstance(keys, list):
        raise CheckpointError(f"{source}: corrupt storage key list.")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"{source}: storage {key!r} is listed but never used.")
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointError(f"{source}: truncated before storage {key!r}.")
        (numel,) = struct.unpack(f"{byteorder}q", header)
        nbytes = numel * storage.storage_type.itemsize
        if numel < 0 or numel != storage.numel:
            raise CheckpointError(
                f"{source}: storage {key!r} says {numel} elements, the pickle {storage.numel}."
            )
        if nbytes > file_size - f.tell():
            raise CheckpointError(
                f"{source}: truncated in storage {key!r} (needs {nbytes} bytes, "
                f"{file_size - f.tell()} left)."
            )
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError(
                f"{source}: truncated in storage {key!r} ({len(raw)} of {nbytes} bytes)."
            )
        storage.array = _decode(raw, storage.storage_type, byteorder)
    return obj


def _read_zip(path, source, unpickler=_RestrictedUnpickler):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{source}: a zip checkpoint needs one data.pkl, found {pickles}.")
        root = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if f"{root}byteorder" in names:
            byteorder = "<" if archive.read(f"{root}byteorder").strip() == b"little" else ">"
        storages = {}
        obj = _unpickle(io.BytesIO(archive.read(pickles[0])), storages, source, unpickler)
        for key, storage in storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise CheckpointError(f"{source}: storage file {member!r} is missing.")
            nbytes = storage.numel * storage.storage_type.itemsize
            size = archive.getinfo(member).file_size
            if size < nbytes:
                raise CheckpointError(
                    f"{source}: storage {member!r} has {size} bytes, expected {nbytes}."
                )
            with archive.open(member) as stream:
                raw = stream.read(nbytes)
            storage.array = _decode(raw, storage.storage_type, byteorder)
    return obj


def load(path):
    """Read a ``torch.save``d checkpoint into numpy arrays, without torch.

    Nested dicts are flattened with dots (``{"state_dict": {"a": t}}`` gives
    ``"state_dict.a"``); use :func:`state_dict` for the usual unwrapping.

    Args:
        path: a ``.p``/``.pt``/``.pth`` file in either serialization layout.

    Returns:
        ``OrderedDict`` name -> ``np.ndarray`` (tensor dtypes kept; bfloat16 as float32).

    Raises:
        CheckpointError: corrupt or truncated file, or a pickle asking for a global other
            than tensor rebuilding (its name is in the message; nothing is executed).
    """
    source = os.fspath(path)
    try:
        if zipfile.is_zipfile(source):
            obj = _read_zip(source, source)
        else:
            with open(source, "rb") as f:
                obj = _read_legacy(f, source)
        return _collect(obj, source)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
            TypeError, AttributeError, IndexError, KeyError, MemoryError) as error:
        raise CheckpointError(
            f"{source}: cannot read this PyTorch checkpoint (corrupt or truncated?): "
            f"{type(error).__name__}: {error}"
        ) from error


def state_dict(path):
    """The model state dict of a checkpoint, as ``OrderedDict`` name -> ``np.ndarray``.

    Unwraps a dict that holds the state dict under ``"state_dict"``/``"model"`` (etc.) and
    strips a ``module.`` prefix (``torch.nn.DataParallel``).
    """
    tensors = load(path)
    for wrapper in ("state_dict.", "model_state_dict.", "model.", "net."):
        if tensors and all(k.startswith(wrapper) for k in tensors):
            tensors = collections.OrderedDict((k[len(wrapper):], v) for k, v in tensors.items())
            break
    else:
        for wrapper in ("state_dict.", "model_state_dict."):
            inner = [k for k in tensors if k.startswith(wrapper)]
            if inner:
                tensors = collections.OrderedDict(
                    (k[len(wrapper):], tensors[k]) for k in inner
                )
                break
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = collections.OrderedDict((k[len("module."):], v) for k, v in tensors.items())
    if not tensors:
        raise CheckpointError(f"{os.fspath(path)}: the checkpoint holds no tensors.")
    return tensors
