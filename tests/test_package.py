"""The package imports cheaply, exposes its submodules, and the command line answers."""

import os
import subprocess
import sys

import pytest

import kerasbrain
from kerasbrain import cli


@pytest.mark.backend_independent
def test_import_is_lazy_and_light():
    code = (
        "import sys, kerasbrain; "
        "heavy = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_submodules_resolve():
    assert kerasbrain.applications.SFCN is not None
    assert "applications" in dir(kerasbrain)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kerasbrain.nope  # noqa: B018


@pytest.mark.backend_independent
def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert kerasbrain.__version__ in capsys.readouterr().out
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.backend_independent
def test_cli_starts_without_tensorflow_log_lines(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    out = subprocess.run(
        [sys.executable, "-m", "kerasbrain", "predict", str(tmp_path / "scan.nii.gz"),
         "--model", str(tmp_path / "missing.keras"), "-o", str(tmp_path / "out.csv")],
        capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"kerasbrain predict: error: {tmp_path / 'missing.keras'}: no such model file"]


@pytest.mark.backend_independent
def test_cli_reports_a_command_module_that_fails_to_import(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "broken", "kerasbrain.commands.no_such_module")
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli.build_parser()
