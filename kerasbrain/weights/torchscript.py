"""Read TorchScript archives (``torch.jit.save``) without torch and without running code.

A TorchScript archive is a zip holding, under one root folder:

- ``data.pkl``: the module tree, each module a ``__torch__.<path>.<Class>`` object whose
  state is a dict of attributes (sub-modules, parameters as tensors, flags);
- ``data/<n>``: the raw storages the tensors point into;
- ``constants.pkl``: a tuple of constants the code refers to;
- ``code/__torch__/<path>.py``: the TorchScript source of each class (its ``forward``).

The restricted unpickler of :mod:`kerasbrain.weights.torch_pickle` is extended with exactly
one kind of global: ``__torch__.*`` classes, which become :class:`ScriptModule` records (a
class name and an attribute dict; no method of the archive is ever run). Any other global
is refused by name. The code files are only *parsed* (``ast``), to read the settings of
each layer (strides, paddings, epsilons) that the pickle does not store.
"""

import ast
import collections
import io
import os
import pickle
import posixpath
import re
import struct
import zipfile

import numpy as np

from kerasbrain.weights import torch_pickle
from kerasbrain.weights.torch_pickle import CheckpointError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ScriptModule:
    """A TorchScript module as a plain record.

    Attributes:
        qualified_name: the archive's class name, e.g.
            ``"__torch__.torch.nn.modules.conv.___torch_mangle_0.Conv3d"``.
        attributes: attribute name -> value (``ScriptModule``, ``np.ndarray`` once loaded,
            or a plain value such as ``training``).
        source: the class's TorchScript source from ``code/`` (``""`` if absent).
    """

    qualified_name = "__torch__"

    def __setstate__(self, state):
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"{self.qualified_name}: module state is not a dict")
        self.__dict__["attributes"] = dict(state)
        self.__dict__["source"] = ""

    @property
    def kind(self):
        """The class name without its path and mangling, e.g. ``"Conv3d"``."""
        return self.qualified_name.rsplit(".", 1)[-1]

    def children(self):
        """``(name, ScriptModule)`` for each direct sub-module, in attribute order."""
        return [(k, v) for k, v in self.attributes.items() if isinstance(v, ScriptModule)]

    def named_modules(self, prefix=""):
        """Every module of the tree, depth first: ``(dotted.name, ScriptModule)``."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def tensors(self):
        """``{name: np.ndarray}`` of this module's own tensors (``weight``, ``bias``)."""
        return {k: v for k, v in self.attributes.items() if isinstance(v, np.ndarray)}

    def calls(self, function):
        """Argument lists of every ``torch.<function>(...)`` call in this class's source.

        Literal arguments (numbers, booleans, ``None``, lists) are returned as values,
        names as strings; e.g. ``calls("_convolution")`` ->
        ``[["x", "weight", None, [2, 2, 2], [3, 3, 3], ...]]``.
        """
        found = []
        for node in ast.walk(ast.parse(self.source or "")):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == function and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"):
                found.append([_argument(a) for a in node.args])
        return found

    def __repr__(self):
        return f"ScriptModule({self.qualified_name})"


def _argument(node):
    if isinstance(node, ast.Name):
        return node.id
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


_RECORD_CLASSES = {}


def _record_class(module, name):
    """The ``ScriptModule`` subclass standing for ``__torch__`` class ``module.name``."""
    parts = [*module.split("."), name]
    if not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise pickle.UnpicklingError(f"invalid TorchScript class name {module}.{name!r}")
    qualified = ".".join(parts)
    if qualified not in _RECORD_CLASSES:
        _RECORD_CLASSES[qualified] = type(
            name, (ScriptModule,), {"qualified_name": qualified, "__module__": __name__}
        )
    return _RECORD_CLASSES[qualified]


class _ScriptUnpickler(torch_pickle._RestrictedUnpickler):
    """Tensors and ordered dicts as in a checkpoint, plus ``__torch__.*`` records."""

    def find_class(self, module, name):
        if module == "__torch__" or module.startswith("__torch__."):
            return _record_class(module, name)
        return super().find_class(module, name)


def _materialize(obj, source, prefix=""):
    """Replace lazy tensors in the tree by numpy arrays (in place); return ``obj``."""
    if isinstance(obj, torch_pickle._LazyTensor):
        return torch_pickle._materialize(obj, source, prefix)
    if isinstance(obj, ScriptModule):
        for key, value in obj.attributes.items():
            obj.attributes[key] = _materialize(value, source, f"{prefix}.{key}" if prefix else key)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _materialize(value, source, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        items = [_materialize(v, source, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return type(obj)(items)
    return obj


def _class_source(text, class_name):
    """The ``class <class_name>(...)`` block of a TorchScript code file."""
    match = re.search(rf"^class {re.escape(class_name)}\(.*?(?=^class |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    return match.group(0) if match else ""


def _attach_sources(root, archive, code_root):
    names = set(archive.namelist())
    cache = {}
    for _, module in root.named_modules():
        path, _, class_name = module.qualified_name.rpartition(".")
        member = posixpath.join(code_root, *path.split(".")) + ".py"
        if member not in cache:
            cache[member] = archive.read(member).decode("utf-8") if member in names else ""
        module.__dict__["source"] = _class_source(cache[member], class_name)


def _check_constants(archive, root_folder, source):
    """``constants.pkl`` must unpickle with the same restrictions (it may hold tensors)."""
    member = f"{root_folder}constants.pkl"
    if member in archive.namelist():
        torch_pickle._unpickle(
            io.BytesIO(archive.read(member)), {}, source, _ScriptUnpickler
        )


def load(path):
    """Read a TorchScript archive into a tree of :class:`ScriptModule` records.

    Args:
        path: a ``torch.jit.save``d file (``.pt``).

    Returns:
        the root ``ScriptModule``; parameters are ``np.ndarray`` attributes of their
        module, and each module's ``source`` holds its class's code from ``code/``.

    Raises:
        CheckpointError: not a TorchScript archive, corrupt or truncated, or a pickle
            asking for any global other than ``__torch__.*`` classes and tensor
            rebuilding (its name is in the message; nothing is executed).
    """
    source = os.fspath(path)
    try:
        if not zipfile.is_zipfile(source):
            raise CheckpointError(f"{source}: not a TorchScript archive (not a zip file).")
        root = torch_pickle._read_zip(source, source, _ScriptUnpickler)
        if not isinstance(root, ScriptModule):
            raise CheckpointError(
                f"{source}: not a TorchScript archive (data.pkl holds {type(root).__name__}, "
                "not a __torch__ module)."
            )
        _materialize(root, source)
        with zipfile.ZipFile(source) as archive:
            data_pkl = [n for n in archive.namelist() if n.endswith("data.pkl")][0]
            root_folder = data_pkl[: -len("data.pkl")]
            _check_constants(archive, root_folder, source)
            _attach_sources(root, archive, f"{root_folder}code")
        return root
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
            TypeError, AttributeError, IndexError, KeyError, MemoryError,
            SyntaxError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{source}: cannot read this TorchScript archive (corrupt or truncated?): "
            f"{type(error).__name__}: {error}"
        ) from error


def state_dict(root):
    """``OrderedDict`` dotted name -> array of every tensor in the tree (as torch's
    ``module.state_dict()`` names them, e.g. ``"init.0.weight"``)."""
    out = collections.OrderedDict()
    for prefix, module in root.named_modules():
        for name, value in module.tensors().items():
            out[f"{prefix}.{name}" if prefix else name] = value
    return out
