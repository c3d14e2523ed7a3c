"""The package imports cheaply, exposes its submodules, and the command line answers."""

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
