"""``import kerasbrain`` turns on TensorFlow's oneDNN CPU kernels unless the user chose."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                       reason="oneDNN is turned on on x86 only"),
]

ONEDNN = (
    "import os, kerasbrain, tensorflow; "
    "from tensorflow.python.util import _pywrap_util_port; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), _pywrap_util_port.IsMklEnabled())"
)


def _run(code, **env):
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_onednn_on_by_default():
    assert _run(ONEDNN) == ["1", "True"]


def test_users_setting_is_kept():
    assert _run(ONEDNN, TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]


def test_nothing_set_once_tensorflow_is_imported():
    # TensorFlow reads the variable when it is first imported: setting it later would only
    # mislead (a stand-in module keeps this test fast)
    code = ("import os, sys, types; sys.modules['tensorflow'] = types.ModuleType('tensorflow'); "
            "import kerasbrain; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))")
    assert _run(code) == ["unset"]
