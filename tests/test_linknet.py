"""LinkNet3D from a TorchScript archive read without torch: parity, refusal of code,
mismatches named, and deepbet's weights taken out of a (local) wheel."""

import hashlib
import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
from _local_http import serve

from kerasbrain.applications import linknet
from kerasbrain.applications.linknet import LinkNet3D
from kerasbrain.weights import download, registry, torchscript
from kerasbrain.weights.download import DownloadError, IntegrityError, get_file
from kerasbrain.weights.torch_pickle import CheckpointError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ARCHIVE = os.path.join(FIXTURES, "linknet_tiny.pt")
sys.path.insert(0, FIXTURES)
from make_linknet_fixture import TINY_FILTERS, tiny_volume, torch_linknet  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model():
    return LinkNet3D(weights=ARCHIVE, input_shape=(64, 64, 64, 1))


def test_parity_with_the_stored_torch_outputs(tiny_model):
    expected = np.load(os.path.join(FIXTURES, "linknet_tiny_expected.npz"))
    brain = tiny_model.predict(tiny_volume()[None, ..., None], verbose=0)[0, ..., 1]
    np.testing.assert_allclose(brain[::4, ::4, ::4], expected["brain_every_4th"], atol=1e-4)
    assert abs(brain.astype("float64").sum() - expected["brain_sum"]) < 1e-5 * brain.size
    assert brain.min() < 0.05 and brain.max() > 0.95  # not a trivial output


@pytest.mark.torch
def test_parity_with_torch_on_another_input(tiny_model):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 64)).astype("float32")
    with torch.no_grad():
        expected = torch.jit.load(ARCHIVE)(torch.from_numpy(x)[:, None]).numpy()
    got = tiny_model.predict(x[..., None], verbose=0)
    np.testing.assert_allclose(got, np.moveaxis(expected, 1, -1), atol=1e-4)


@pytest.mark.torch
@pytest.mark.backend_independent
def test_reader_gives_torchs_state_dict_and_layer_settings():
    torch = pytest.importorskip("torch")
    reference = torch.jit.load(ARCHIVE).state_dict()
    root = torchscript.load(ARCHIVE)
    tensors = torchscript.state_dict(root)
    assert list(tensors) == list(reference)
    for name, value in reference.items():
        np.testing.assert_array_equal(tensors[name], value.numpy(), err_msg=name)
    eager = torch_linknet(TINY_FILTERS)
    assert set(eager.state_dict()) == set(tensors)
    modules = dict(root.named_modules())
    assert modules[""].kind == "LinkNet3d" and modules["down1.block1"].kind == "Block"
    assert modules["init.0"].calls("_convolution")[0][3:5] == [[2, 2, 2], [3, 3, 3]]
    assert modules["up0.tp_conv.0"].calls("_convolution")[0][6:8] == [True, [1, 1, 1]]


def _rewrite(tmp_path, replace, name="edited.pt"):
    """A copy of the fixture archive with members replaced (``{suffix: bytes}``)."""
    path = tmp_path / name
    with zipfile.ZipFile(ARCHIVE) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new(data) if callable(new) else new
            out.writestr(info, data)
    return path


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.backend_independent
@pytest.mark.parametrize("member", ["/data.pkl", "/constants.pkl"])
def test_code_in_an_archive_is_refused_by_name(tmp_path, member):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Exploit(marker)}, protocol=2)
    if member == "/data.pkl":  # a __torch__ module whose attribute runs code
        payload = (b"\x80\x02c__torch__\nLinkNet3d\n)\x81" + payload[2:-1] + b"b.")
    path = _rewrite(tmp_path, {member: payload})
    with pytest.raises(CheckpointError) as info:
        torchscript.load(path)
    assert "'posix.system'" in str(info.value) or "'nt.system'" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.backend_independent
def test_other_globals_and_odd_class_names_are_refused(tmp_path):
    evil = b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R."
    with pytest.raises(CheckpointError, match="refusing to load global 'builtins.eval'"):
        torchscript.load(_rewrite(tmp_path, {"/data.pkl": evil}))
    odd = b"\x80\x02c__torch__\nLink-Net\n)\x81}b."
    with pytest.raises(CheckpointError, match="invalid TorchScript class name"):
        torchscript.load(_rewrite(tmp_path, {"/data.pkl": odd}, "odd.pt"))
    with pytest.raises(CheckpointError, match="not a __torch__ module"):
        torchscript.load(os.path.join(FIXTURES, "sfcn_tiny_zip.pt"))


@pytest.mark.backend_independent
def test_mismatches_name_the_module_or_tensor(tmp_path, monkeypatch):
    def stride_1(code):
        return code.replace(b"[2, 2, 2], [3, 3, 3]", b"[1, 1, 1], [3, 3, 3]")

    strided = _rewrite(tmp_path, {"/code/__torch__/torch/nn/modules/conv.py": stride_1})
    with pytest.raises(ValueError, match=r"module 'init.0' has settings .*'stride': 1"):
        LinkNet3D(weights=strided, input_shape=(64, 64, 64, 1))
    load = torchscript.load

    def edited(drop=None, reshape=None):
        def fake(path):
            root = load(path)
            modules = dict(root.named_modules())
            if drop:
                parent, _, child = drop.rpartition(".")
                del modules[parent].attributes[child]
            if reshape:
                module = modules[reshape]
                module.attributes["weight"] = module.attributes["weight"][:, :1]
            return root
        return fake

    monkeypatch.setattr(torchscript, "load", edited(reshape="up1.tp_conv.0"))
    with pytest.raises(ValueError, match=r"tensor 'up1.tp_conv.0.weight' has shape"):
        LinkNet3D(weights=ARCHIVE, input_shape=(64, 64, 64, 1))
    monkeypatch.setattr(torchscript, "load", edited(drop="up3.conv2"))
    with pytest.raises(ValueError, match=r"module 'up3.conv2.0' should be a Conv3d, it is missing"):
        LinkNet3D(weights=ARCHIVE, input_shape=(64, 64, 64, 1))


@pytest.mark.backend_independent
def test_shapes_and_arguments_are_checked():
    with pytest.raises(ValueError, match="multiples of 32"):
        LinkNet3D(weights=None, input_shape=(96, 96, 80, 1))
    with pytest.raises(ValueError, match="at least 64"):
        LinkNet3D(weights=None, input_shape=(32, 32, 32, 1))
    with pytest.raises(ValueError, match="Unknown weights 'deepbet-large'"):
        LinkNet3D(weights="deepbet-large")
    model = LinkNet3D(weights=None, filters=(4, 8, 8, 8), input_shape=(None, None, None, 1))
    assert model.output_shape == (None, None, None, None, 2)
    assert model.get_layer("down3_block1_downsample_0").kernel.shape == (1, 1, 1, 8, 8)


@pytest.mark.backend_independent
def test_preprocess_input_is_deepbets_normalisation():
    x = np.random.default_rng(0).gamma(2.0, 50.0, size=(20, 24, 16)).astype("float32")
    x[0, 0, 0] = np.nan
    out = linknet.preprocess_input(x)
    clean = np.nan_to_num(x)
    low, high = np.quantile(clean, (0.005, 0.995))
    y = np.clip((clean - low) / (high - low), 0, 1)
    np.testing.assert_allclose(out, (y - y.mean()) / y.std(ddof=1) * 0.226 + 0.449, atol=1e-5)
    with pytest.raises(ValueError, match="constant image"):
        linknet.preprocess_input(np.ones((8, 8, 8)))
    batch = linknet.preprocess_input(np.stack([x, 2 * x])[..., None], "deepbet-bbox")
    np.testing.assert_allclose(batch[1, ..., 0], out, atol=1e-5)  # per volume, scale-free
    probabilities = np.stack([0.3 * np.ones((2, 4, 4, 4)), 0.7 * np.ones((2, 4, 4, 4))], -1)
    probabilities[1, 0, 0, 0] = (0.9, 0.1)
    masks = linknet.decode_predictions(probabilities)
    assert masks.shape == (2, 4, 4, 4) and masks.sum() == 2 * 64 - 1


# -- deepbet's files: from an installed package, or taken out of its wheel -----------------

MEMBER = "data/models/model.pt"


def _wheel(version="1.0.2", payload=None):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        wheel.writestr(f"deepbet-{version}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: deepbet\nVersion: {version}\n")
        wheel.writestr(MEMBER, payload if payload is not None else open(ARCHIVE, "rb").read())
    return out.getvalue()


@pytest.fixture
def wheel_spec(monkeypatch):
    """Point the ``deepbet`` entry at a wheel served on 127.0.0.1."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    member_sha = hashlib.sha256(open(ARCHIVE, "rb").read()).hexdigest()

    def register(url, wheel):
        spec = registry.get_spec("deepbet")
        file_spec = registry.FileSpec(
            "deepbet-test-model.pt", url, sha256=member_sha, member=MEMBER,
            archive_sha256=hashlib.sha256(wheel).hexdigest(), package="deepbet-test==1.0.2")
        registry.register(registry.WeightSpec(**{**spec.__dict__, "files": (file_spec,)}))

    return register


@pytest.mark.backend_independent
def test_member_is_taken_out_of_the_verified_wheel_once(keras_home, wheel_spec):
    wheel = _wheel()
    with serve({"/deepbet.whl": wheel}) as server:
        wheel_spec(f"{server.url}/deepbet.whl", wheel)
        path = get_file("linknet3d", "deepbet")
    assert open(path, "rb").read() == open(ARCHIVE, "rb").read()
    assert os.path.basename(path) == "deepbet-test-model.pt"
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".part")]
    assert get_file("linknet3d", "deepbet") == path  # server gone: served from the cache
    model = LinkNet3D(weights="deepbet", input_shape=(64, 64, 64, 1))
    assert model.get_layer("init_0").kernel.shape == (7, 7, 7, 1, 4)


@pytest.mark.backend_independent
def test_wheel_of_another_version_or_tampered_member_is_refused(keras_home, wheel_spec):
    good = _wheel()
    with serve({"/other.whl": _wheel("1.0.1")}) as server:
        wheel_spec(f"{server.url}/other.whl", good)
        with pytest.raises(IntegrityError, match="this is the wheel of deepbet 1.0.1"):
            get_file("linknet3d", "deepbet")
    tampered = _wheel(payload=b"not the published model")
    with serve({"/tampered.whl": tampered}) as server:
        wheel_spec(f"{server.url}/tampered.whl", tampered)
        with pytest.raises(IntegrityError, match="sha256 .* does not match"):
            get_file("linknet3d", "deepbet")
    folder = keras_home / "models" / "kerasbrain"
    assert not (folder / "deepbet-test-model.pt").exists()
    assert not [n for n in os.listdir(folder) if n.endswith(".part")]


@pytest.mark.backend_independent
def test_offline_error_names_the_file_and_the_pip_command(keras_home, wheel_spec):
    with serve({}) as server:
        url = f"{server.url}/missing.whl"
    wheel_spec(url, _wheel())
    with pytest.raises(DownloadError) as info:
        get_file("linknet3d", "deepbet")
    message = str(info.value)
    assert "deepbet-test-model.pt" in message and MEMBER in message
    assert "pip install --no-deps 'deepbet-test==1.0.2'" in message


@pytest.mark.backend_independent
def test_an_installed_package_is_used_without_download(tmp_path, keras_home, wheel_spec,
                                                       monkeypatch):
    site = tmp_path / "site"
    (site / "data" / "models").mkdir(parents=True)
    (site / "data" / "models" / "model.pt").write_bytes(open(ARCHIVE, "rb").read())
    info = site / "deepbet_test-1.0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deepbet-test\nVersion: 1.0.2\n")
    (info / "RECORD").write_text(f"{MEMBER},,\ndeepbet_test-1.0.2.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    wheel_spec("http://127.0.0.1:9/unreachable.whl", _wheel())
    assert get_file("linknet3d", "deepbet") == str(site / "data" / "models" / "model.pt")
    (site / "data" / "models" / "model.pt").write_bytes(b"another release")
    with pytest.raises(DownloadError):  # a different installed file is not used
        get_file("linknet3d", "deepbet")
