"""Files are written whole or not at all."""

import json
import os

import numpy as np
import pytest

from kerasbrain.files import atomic_write, write_json, write_text

pytestmark = pytest.mark.backend_independent


def test_atomic_write_renames_when_complete_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "model.weights.h5"
    with atomic_write(target) as tmp:
        assert tmp.endswith(".weights.h5") and os.path.dirname(tmp) == str(target.parent)
        assert not os.path.exists(tmp) and not target.exists()
        with open(tmp, "w") as handle:
            handle.write("done")
    assert target.read_text() == "done"
    assert sorted(os.listdir(target.parent)) == ["model.weights.h5"]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_write(target) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["table.csv"]


def test_write_json_and_text_round_trip(tmp_path):
    data = {"n": np.int64(3), "x": np.float32(0.5), "shape": (2, 3), "a": np.arange(3)}
    write_json(tmp_path / "a.json", data)
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "n": 3, "x": 0.5, "shape": [2, 3], "a": [0, 1, 2]}
    write_text(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
