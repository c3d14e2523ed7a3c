"""The weights registry: complete entries, published hashes, licenses; listing; the CLI."""

import re

import pytest

from kerasbrain import cli
from kerasbrain.weights import get_spec, list_weights, registry

pytestmark = pytest.mark.backend_independent

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
EXPECTED = {
    "ukb", "ukb-sex", "brain-age-2022:regression", "brain-age-2022:ranking",
    "brain-age-2022:soft", *(f"dementia-2024:fold-{i}" for i in range(5)),
}


def test_every_entry_is_complete():
    assert EXPECTED <= set(registry.REGISTRY)
    for key, spec in registry.REGISTRY.items():
        assert key == spec.key
        for field in ("architecture", "format", "trained_for", "license", "citation",
                      "source", "training_size", "reported_error", "preprocessing"):
            assert getattr(spec, field), f"{key}: {field} is empty"
        assert spec.files, key
        for file_spec in spec.files:
            if spec.verification == "SHA-256":
                assert HEX64.match(file_spec.sha256 or ""), f"{key}: {file_spec}"
            elif spec.verification != "SHA-256 pinned on first download":
                assert HEX40.match(file_spec.git_blob_sha1 or ""), f"{key}: {file_spec}"
            assert file_spec.url.startswith("https://"), key
            assert file_spec.filename and "/" not in file_spec.filename
        config = spec.config
        assert len(config["input_shape"]) == 4, key
        if spec.format != "torchscript":  # LinkNet3D uses instance normalisation only
            assert "bn_epsilon" in config, key
        if spec.architecture == "sfcn":
            for field in ("head", "classes", "filters"):
                assert field in config, f"{key}: config lacks {field}"
            assert len(config["filters"]) == 6
    filenames = [f.filename for s in registry.REGISTRY.values() for f in s.files]
    assert len(filenames) == len(set(filenames))


def test_published_facts():
    ukb = get_spec("ukb")
    assert ukb.files[0].git_blob_sha1 == "3631938002f789a842469132155380fa36de7d4d"
    assert ukb.license == "MIT" and ukb.config["bn_epsilon"] == 1e-5
    assert ukb.config["classes"] == 40 and ukb.config["bin_range"] == (42.0, 82.0)
    assert get_spec("ukb-sex").config["filters"] == (28, 58, 128, 256, 256, 64)
    reg = get_spec("brain-age-2022")
    assert reg.variant == "regression" and reg.license == "CC BY-NC 4.0"
    assert reg.files[0].headers == (("Accept", "application/vnd.github.raw"),)
    assert get_spec("brain-age-2022", head="ranking").config["classes"] == 91
    assert get_spec("brain-age-2022:soft").config["classes"] == 93
    assert get_spec("dementia-2024").variant == "fold-0"


def test_deepbet_entries_point_into_the_published_wheel():
    for name, member, sha256, size in (
        ("deepbet", "model.pt",
         "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd", 256),
        ("deepbet-bbox", "bbox_model.pt",
         "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa", 128),
    ):
        spec = get_spec(name, architecture="linknet3d")
        (file_spec,) = spec.files
        assert file_spec.member == f"data/models/{member}" and file_spec.sha256 == sha256
        assert file_spec.url.endswith("/deepbet-1.0.2-py3-none-any.whl")
        assert file_spec.archive_sha256 == (
            "1999e2ea00ec48f6233b95b96f3901a962d3f70431c63aeb985e8a49a198473c")
        assert file_spec.package == "deepbet==1.0.2" and spec.license == "MIT"
        assert spec.input_shape == (size, size, size, 1)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        get_spec("ukbb")
    message = str(info.value)
    assert "'ukbb'" in message
    for name in ("ukb", "ukb-sex", "brain-age-2022", "dementia-2024"):
        assert name in message


def test_list_weights_prints_a_table_and_returns_rows():
    lines = []
    rows = list_weights(print_fn=lines.append)
    assert [r["name"] for r in rows] == list(registry.REGISTRY)
    assert lines[0].split()[:2] == ["name", "architecture"]
    ukb_line = next(line for line in lines if line.startswith("ukb "))
    assert "MIT" in ukb_line and "160x192x160" in ukb_line and "2.14" in ukb_line
    assert len(lines) == len(rows) + 2
    assert list_weights(architecture="resnet", print_fn=None) == []


def test_cli_list_and_path(capsys, keras_home):
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "brain-age-2022:ranking" in out and "CC BY-NC 4.0" in out
    assert cli.main(["weights", "path", "ukb"]) == 0
    out = capsys.readouterr().out
    assert str(keras_home / "models" / "kerasbrain" / "run_20190719_00_epoch_best_mae.p") in out
    assert "not downloaded" in out
    assert cli.main(["weights", "download", "nope"]) == 1
    assert "Unknown weights 'nope'" in capsys.readouterr().err
