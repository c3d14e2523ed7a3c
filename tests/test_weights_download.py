"""Downloads against a local HTTP server: verification, atomic caching, retries, offline."""

import dataclasses
import hashlib
import os
import socket

import pytest
from _local_http import serve

from kerasbrain.weights import download, registry
from kerasbrain.weights.download import DownloadError, IntegrityError, get_file

pytestmark = pytest.mark.backend_independent

DATA = b"published weights " * 5000


def blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)


@pytest.fixture
def register_spec(monkeypatch):
    """Register a temporary one-file entry ``test-weights`` pointing at ``url``."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    def register(url, data=DATA, sha256=False, name="test-weights"):
        base = registry.get_spec("ukb")
        file_spec = registry.FileSpec(
            "test-weights.bin",
            url,
            git_blob_sha1=None if sha256 else blob_sha1(data),
            sha256=hashlib.sha256(data).hexdigest() if sha256 else None,
            headers=registry.GITHUB_RAW_HEADERS,
        )
        spec = dataclasses.replace(base, name=name, files=(file_spec,))
        registry.register(spec)
        return spec

    return register


def cache_files(keras_home):
    folder = keras_home / "models" / "kerasbrain"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_git_blob_sha1_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_good_download_is_verified_cached_and_announced(keras_home, register_spec, capsys):
    with serve({"/w.bin": DATA}) as server:
        register_spec(f"{server.url}/w.bin")
        path = get_file("sfcn", "test-weights")
        assert server.requests[0][1].get("Accept") == "application/vnd.github.raw"
    assert path == str(keras_home / "models" / "kerasbrain" / "test-weights.bin")
    with open(path, "rb") as f:
        assert f.read() == DATA
    out = capsys.readouterr().out
    assert "license: MIT" in out and "Peng H" in out and "/w.bin" in out
    assert cache_files(keras_home) == ["test-weights.bin", "test-weights.bin.verified"]


def test_sha256_entries_are_verified(keras_home, register_spec):
    with serve({"/w.bin": DATA}) as server:
        register_spec(f"{server.url}/w.bin", sha256=True)
        path = get_file("sfcn", "test-weights")
    assert os.path.getsize(path) == len(DATA)


def test_cached_file_is_reused_without_a_request(keras_home, register_spec, capsys):
    with serve({"/w.bin": DATA}) as server:
        register_spec(f"{server.url}/w.bin")
        first = get_file("sfcn", "test-weights")
        capsys.readouterr()
        second = get_file("sfcn", "test-weights")
        assert len(server.requests) == 1
    assert first == second
    assert "license" not in capsys.readouterr().out


def test_corrupt_download_is_rejected_and_not_cached(keras_home, register_spec):
    with serve({"/w.bin": DATA[:-1] + b"X"}) as server:
        register_spec(f"{server.url}/w.bin")
        with pytest.raises(IntegrityError) as info:
            get_file("sfcn", "test-weights")
    message = str(info.value)
    assert f"{server.url}/w.bin" in message
    assert str(keras_home / "models" / "kerasbrain" / "test-weights.bin") in message
    assert blob_sha1(DATA) in message
    assert cache_files(keras_home) == []


def test_corrupt_cached_file_is_replaced(keras_home, register_spec):
    folder = keras_home / "models" / "kerasbrain"
    folder.mkdir(parents=True)
    (folder / "test-weights.bin").write_bytes(b"truncated")
    with serve({"/w.bin": DATA}) as server:
        register_spec(f"{server.url}/w.bin")
        path = get_file("sfcn", "test-weights")
        assert len(server.requests) == 1
    assert os.path.getsize(path) == len(DATA)


def test_file_placed_by_hand_is_verified_once(keras_home, register_spec, monkeypatch):
    folder = keras_home / "models" / "kerasbrain"
    folder.mkdir(parents=True)
    (folder / "test-weights.bin").write_bytes(DATA)
    register_spec("http://127.0.0.1:9/never-fetched")
    assert get_file("sfcn", "test-weights").endswith("test-weights.bin")
    calls = []
    monkeypatch.setattr(download, "verify", lambda *a: calls.append(a))
    get_file("sfcn", "test-weights")
    assert calls == []  # the marker spares a second hash


def test_retries_after_server_errors(keras_home, register_spec, fast_retries, capsys):
    with serve({"/w.bin": DATA}, fail_first=2) as server:
        register_spec(f"{server.url}/w.bin")
        path = get_file("sfcn", "test-weights")
        assert len(server.requests) == 3
    assert os.path.getsize(path) == len(DATA)
    assert capsys.readouterr().err.count("retrying") == 2


def test_gives_up_after_retries(keras_home, register_spec, fast_retries):
    with serve({"/w.bin": DATA}, fail_first=10) as server:
        register_spec(f"{server.url}/w.bin")
        with pytest.raises(DownloadError, match="HTTP 503"):
            get_file("sfcn", "test-weights")
        assert len(server.requests) == download.RETRIES
    assert cache_files(keras_home) == []


def test_missing_file_is_not_retried(keras_home, register_spec, fast_retries):
    with serve({}) as server:
        register_spec(f"{server.url}/w.bin")
        with pytest.raises(DownloadError, match="HTTP 404"):
            get_file("sfcn", "test-weights")
        assert len(server.requests) == 1


def test_offline_error_says_what_to_fetch_and_where(keras_home, register_spec, fast_retries):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.bin"
    register_spec(url)
    with pytest.raises(DownloadError) as info:
        get_file("sfcn", "test-weights")
    message = str(info.value)
    target = str(keras_home / "models" / "kerasbrain" / "test-weights.bin")
    assert url in message and target in message
    assert "Accept: application/vnd.github.raw" in message
    assert blob_sha1(DATA) in message
    assert cache_files(keras_home) == []


def test_cache_dir_follows_keras_home(keras_home):
    assert download.cache_dir() == str(keras_home / "models" / "kerasbrain")
