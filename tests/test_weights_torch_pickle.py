"""Reading PyTorch checkpoints without torch: both layouts, refusal of code, corrupt files."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from kerasbrain.weights import torch_pickle
from kerasbrain.weights.torch_pickle import CheckpointError

pytestmark = pytest.mark.backend_independent

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
LEGACY = os.path.join(FIXTURES, "sfcn_tiny_legacy.p")
ZIP = os.path.join(FIXTURES, "sfcn_tiny_zip.pt")


def test_both_layouts_give_the_same_state_dict():
    legacy_raw = torch_pickle.load(LEGACY)
    assert all(k.startswith("module.") for k in legacy_raw)  # DataParallel, as published
    zip_raw = torch_pickle.load(ZIP)
    assert all(k.startswith("state_dict.") for k in zip_raw)  # wrapped; "epoch" dropped
    legacy, zipped = torch_pickle.state_dict(LEGACY), torch_pickle.state_dict(ZIP)
    assert list(legacy) == list(zipped)
    assert len(legacy) == 6 * 2 + 6 * 5 + 2  # conv w/b, BN w/b/mean/var/count, classifier
    for key in legacy:
        np.testing.assert_array_equal(legacy[key], zipped[key])
    assert legacy["feature_extractor.conv_1.0.weight"].shape == (6, 4, 3, 3, 3)
    assert legacy["feature_extractor.conv_1.0.weight"].dtype == np.float32
    assert legacy["feature_extractor.conv_3.1.num_batches_tracked"].dtype == np.int64
    assert int(legacy["feature_extractor.conv_3.1.num_batches_tracked"]) == 123
    assert legacy["feature_extractor.conv_2.1.running_var"].min() > 0.2
    assert np.abs(legacy["feature_extractor.conv_2.1.running_mean"]).max() > 0


def _legacy_bytes(payload_pickle):
    out = io.BytesIO()
    for header in (torch_pickle.LEGACY_MAGIC_NUMBER, torch_pickle.LEGACY_PROTOCOL_VERSION,
                   {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(payload_pickle)
    pickle.dump([], out, protocol=2)
    return out.getvalue()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("layout", ["legacy", "zip", "raw"])
def test_code_in_a_pickle_is_refused_without_running(tmp_path, layout):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Exploit(marker)}, protocol=2)
    path = tmp_path / "evil.pt"
    if layout == "legacy":
        path.write_bytes(_legacy_bytes(payload))
    elif layout == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError) as info:
        torch_pickle.load(path)
    message = str(info.value)
    assert str(path) in message
    if layout != "raw":
        assert "'posix.system'" in message or "'nt.system'" in message
    assert not marker.exists()


def test_other_globals_are_refused_by_name(tmp_path):
    payload = pickle.dumps({"a": np.zeros(2)}, protocol=2)  # numpy's reconstructor
    path = tmp_path / "numpy.p"
    path.write_bytes(_legacy_bytes(payload))
    with pytest.raises(CheckpointError, match="refusing to load global 'numpy"):
        torch_pickle.load(path)


@pytest.mark.parametrize("source", [LEGACY, ZIP])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, source, keep):
    data = open(source, "rb").read()
    path = tmp_path / ("cut" + os.path.splitext(source)[1])
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=str(path)):
        torch_pickle.state_dict(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="noise.pth"):
        torch_pickle.state_dict(path)


def test_full_size_shapes_fixture_matches_the_published_layout():
    with open(os.path.join(FIXTURES, "sfcn_torch_shapes.json")) as f:
        shapes = json.load(f)
    ukb = shapes["ukb"]
    assert ukb["module.feature_extractor.conv_0.0.weight"] == [32, 1, 3, 3, 3]
    assert ukb["module.classifier.conv_6.weight"] == [40, 64, 1, 1, 1]
    assert shapes["ukb-sex"]["module.feature_extractor.conv_1.0.weight"] == [58, 28, 3, 3, 3]
