"""Decoding rows for the TFRecord writer: load, preprocess and quantise each volume, in
worker processes ahead of the writer (spawn start method) or in this process."""

import collections
import concurrent.futures
import multiprocessing
import sys

import numpy as np

from kerasbrain.data.io import VolumeError, check_array
from kerasbrain.data.preprocess import Preprocessor

_QMAX = {"uint8": 255.0, "int16": 65535.0}


def encode_volume(array, dtype):
    """Quantise ``array`` for storage: (bytes, scale, offset); value = stored * scale + offset."""
    array = np.asarray(array, dtype="float32")
    if dtype in ("float32", "float16"):
        if dtype == "float16" and np.abs(array).max() > 65504:
            raise VolumeError(
                f"values up to {np.abs(array).max():.4g} overflow float16; normalise intensity "
                "or store as float32/uint8/int16"
            )
        return np.ascontiguousarray(array.astype(dtype)).tobytes(), 1.0, 0.0
    low, high = float(array.min()), float(array.max())
    qmax = _QMAX[dtype]
    scale = (high - low) / qmax if high > low else 1.0
    q = np.rint((array - low) / scale)
    if dtype == "int16":
        q -= 32768.0
        offset = low + 32768.0 * scale
    else:
        offset = low
    return np.ascontiguousarray(q.astype(dtype)).tobytes(), scale, offset


def _encode_row(path, config, dtype):
    """Worker: load, preprocess, check and quantise one image; errors come back as text."""
    try:
        volume = Preprocessor.from_config(config).transform(path)
        check_array(volume.array, path)
        data, scale, offset = encode_volume(volume.array, dtype)
    except (OSError, ValueError, MemoryError) as error:
        return None, str(error) or type(error).__name__
    return (data, scale, offset, list(volume.shape), list(volume.spacing)), None


SPAWN_FAILED = (
    "kerasbrain: write_tfrecords: worker processes could not start (a script that calls "
    "write_tfrecords needs an `if __name__ == \"__main__\":` guard, or pass workers=1); "
    "decoding in this process instead."
)


class DecodedRows:
    """Ordered results of `_encode_row` over the rows to write, computed ahead in workers."""

    def __init__(self, todo, frame, config, dtype, workers):
        self._args = [(frame["path"][r] or f"(no path in row {r})", config, dtype) for _, r in todo]
        self._next = self._done = 0
        self._pending = collections.deque()
        self._executor = None
        if workers > 1 and len(self._args) > 1:
            context = multiprocessing.get_context("spawn")
            self._executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
            self._window = 2 * workers
            for _ in range(min(self._window, len(self._args))):
                self._submit()

    def _submit(self):
        if self._next < len(self._args):
            self._pending.append(self._executor.submit(_encode_row, *self._args[self._next]))
            self._next += 1

    def get(self):
        if self._executor is not None:
            try:
                result = self._pending.popleft().result()
            except concurrent.futures.process.BrokenProcessPool:
                print(SPAWN_FAILED, file=sys.stderr)
                self.close()
                self._executor, self._next = None, self._done
            else:
                self._submit()
                self._done += 1
                return result
        args = self._args[self._next]
        self._next += 1
        self._done += 1
        return _encode_row(*args)

    def close(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
