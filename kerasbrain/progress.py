"""Progress output: a Keras progress bar on a terminal, plain lines in pipes and logs.

Keras' ``Progbar`` writes ANSI colour codes and backspaces wherever it runs; `bar`
returns it only when standard output is a terminal, else a `PlainProgress` that prints
a line at every 10% (and at the end), readable in a log file.
"""

import sys
import time


def is_terminal(stream=None):
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def bar(total, unit_name="step"):
    """A progress bar with ``add(n)``/``update(current)``: Keras' on a terminal, else plain."""
    if is_terminal():
        import keras

        return keras.utils.Progbar(total, unit_name=unit_name)
    return PlainProgress(total, unit_name)


def fit_verbose(verbose="auto"):
    """``model.fit``'s ``verbose``: 2 (one plain line per epoch) when not on a terminal."""
    if verbose == "auto" or verbose == 1:
        return 1 if is_terminal() else 2
    return verbose


class PlainProgress:
    """``12/50 volumes (24%), 3 s`` lines at every 10% of ``total`` and at the end."""

    def __init__(self, total, unit_name="step", stream=None):
        self.total, self.unit_name = total, unit_name
        self.stream = stream or sys.stdout
        self.current, self.start, self._shown = 0, time.time(), -1

    def update(self, current, values=None, finalize=None):
        self.current = current
        if not self.total:
            return
        decile = int(10 * current / self.total)
        if decile > self._shown or current >= self.total:
            if current >= self.total and self._shown == 10:
                return
            self._shown = 10 if current >= self.total else decile
            percent = 100 * current / self.total
            print(f"{current}/{self.total} {self.unit_name}s ({percent:.0f}%), "
                  f"{time.time() - self.start:.0f} s", file=self.stream, flush=True)

    def add(self, n, values=None):
        self.update(self.current + n, values)
