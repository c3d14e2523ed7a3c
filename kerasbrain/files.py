"""Writing files whole or not at all: a temporary name in the same folder, renamed when
complete, so an interrupted run never leaves a partial output behind.

    from kerasbrain.files import atomic_write, write_json
    with atomic_write("model.keras") as tmp:
        model.save(tmp)
    write_json("config.json", {"epochs": 10})
"""

import contextlib
import json
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block ends.

    The temporary name keeps ``path``'s suffix (``model.keras`` -> ``.model.keras-<random>.keras``)
    for writers that choose the format by suffix. The folder is created if missing; on an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    suffix = name[name.index("."):] if "." in name.lstrip(".") else ""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=suffix)
    os.close(fd)
    os.remove(tmp)  # writers such as model.save refuse or append to an existing file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path, text):
    """Write ``text`` (``str`` or ``bytes``) to ``path`` atomically; returns ``path``."""
    with atomic_write(path) as tmp:
        with open(tmp, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return os.fspath(path)


def write_json(path, data, indent=1):
    """Write ``data`` as JSON to ``path`` atomically (NumPy scalars/arrays and tuples
    become numbers and lists; other objects their ``str``); returns ``path``."""
    return write_text(path, json.dumps(data, indent=indent, default=_json_default) + "\n")


def save_figure(figure, path, dpi=120):
    """Save a matplotlib ``figure`` as PNG atomically and close it; returns ``path``."""
    from matplotlib import pyplot as plt

    try:
        with atomic_write(path) as tmp:
            figure.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(figure)
    return os.fspath(path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
