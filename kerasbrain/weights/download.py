"""Verified downloads of published weight files into the Keras cache.

Files land in ``$KERAS_HOME/models/kerasbrain`` (``~/.keras/models/kerasbrain`` when
``KERAS_HOME`` is unset), are checked against the hash the authors published (git blob
SHA-1 or SHA-256), and are written under a temporary name that is renamed only once the
hash matches: a corrupt or partial file never sits in the cache.
"""

import dataclasses
import hashlib
import http.client
import importlib.metadata
import os
import posixpath
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from kerasbrain import progress as progress_lib
from kerasbrain.files import write_text
from kerasbrain.weights.registry import get_spec

#: attempts per file and the first back-off delay (seconds, doubled after each failure)
RETRIES = 3
BACKOFF_S = 1.0
TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20
#: largest file taken out of a downloaded archive (a guard against zip bombs)
MAX_MEMBER_BYTES = 1 << 30
_VERIFIED_SUFFIX = ".verified"
_PIN_SUFFIX = ".sha256-pin"


class DownloadError(OSError):
    """A weight file could not be fetched; the message says where to put it by hand."""


class IntegrityError(ValueError):
    """A downloaded or cached file does not match its published hash."""


def cache_dir():
    """``$KERAS_HOME/models/kerasbrain`` (Keras' cache convention), created on demand."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "models", "kerasbrain")
    os.makedirs(path, exist_ok=True)
    return path


def file_digest(path, file_spec):
    """The hash of ``path`` in the kind ``file_spec`` publishes: ``("git-blob-sha1", hex)``
    (``sha1(b"blob <size>\\0" + data)``) or ``("sha256", hex)``."""
    if file_spec.git_blob_sha1:
        digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
        kind = "git-blob-sha1"
    else:  # a published SHA-256, or one pinned on first download
        digest = hashlib.sha256()
        kind = "sha256"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return kind, digest.hexdigest()


def _pin_path(file_spec):
    return os.path.join(cache_dir(), file_spec.filename + _PIN_SUFFIX)


def _pinned(file_spec):
    """The SHA-256 recorded at the first download of a file whose source publishes no
    hash (trust on first use), or None."""
    try:
        with open(_pin_path(file_spec)) as f:
            return f.read().strip().lower() or None
    except OSError:
        return None


def _expected(file_spec):
    published = file_spec.git_blob_sha1 or file_spec.sha256
    return (published or _pinned(file_spec) or "").lower()


def _pin(path, file_spec):
    """Record the SHA-256 of a first download whose source publishes no hash."""
    if file_spec.git_blob_sha1 or file_spec.sha256 or _pinned(file_spec):
        return
    kind, digest = file_digest(path, file_spec)
    write_text(_pin_path(file_spec), digest + "\n")
    print(f"kerasbrain: {file_spec.filename}: its source publishes no hash; pinned its {kind} "
          f"{digest} ({_pin_path(file_spec)}).", flush=True)


def _marker(path):
    stat = os.stat(path)
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _is_marked_verified(path, file_spec):
    try:
        with open(path + _VERIFIED_SUFFIX) as f:
            recorded = f.read().split()
    except OSError:
        return False
    return recorded == [_expected(file_spec), *_marker(path).split()]


def _mark_verified(path, file_spec):
    write_text(path + _VERIFIED_SUFFIX, f"{_expected(file_spec)} {_marker(path)}\n")


def _manual_hint(file_spec, path):
    headers = "".join(f" -H '{k}: {v}'" for k, v in file_spec.headers)
    if _expected(file_spec):
        kind = "git blob SHA-1" if file_spec.git_blob_sha1 else "SHA-256"
        check = f"It must have {kind} {_expected(file_spec)}."
    else:
        check = "Its source publishes no hash: its SHA-256 is pinned when first used."
    return (
        f"Fetch it yourself and put it at this exact path:\n"
        f"  curl -L{headers} -o '{path}' '{file_spec.url}'\n{check}"
    )


def verify(path, file_spec):
    """Raise ``IntegrityError`` unless ``path`` has the published hash of ``file_spec``."""
    if not _expected(file_spec):  # nothing published or pinned yet: first use
        return
    kind, actual = file_digest(path, file_spec)
    if actual != _expected(file_spec):
        raise IntegrityError(
            f"{path}: {kind} {actual} does not match the published {_expected(file_spec)} "
            f"of {file_spec.url}{_wheel_version(path)}."
        )


def _wheel_version(path):
    """``" (this is the wheel of deepbet 1.0.1)"`` for a wheel, else ``""``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(names) != 1:
                return ""
            text = archive.read(names[0]).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, KeyError):
        return ""
    fields = dict(re.findall(r"^(Name|Version): *(.+?) *$", text, re.MULTILINE))
    if "Name" not in fields or "Version" not in fields:
        return ""
    return f" (this is the wheel of {fields['Name']} {fields['Version']})"


def print_provenance(spec):
    print(
        f"kerasbrain: weights '{spec.key}' ({spec.architecture}) from {spec.source}\n"
        f"  license: {spec.license}\n"
        f"  cite: {spec.citation}",
        flush=True,
    )


def _fetch(file_spec, dest_dir, progress):
    """Download once into a temporary file in ``dest_dir``; return its path."""
    request = urllib.request.Request(file_spec.url, headers=dict(file_spec.headers))
    fd, tmp = tempfile.mkstemp(prefix=f".{file_spec.filename}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            bar = None
            if progress:
                bar = progress_lib.bar(total, unit_name="B")
            done = 0
            for chunk in iter(lambda: resp.read(CHUNK_BYTES), b""):
                out.write(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(done)
            if total is not None and done != total:
                raise urllib.error.URLError(f"connection closed after {done} of {total} bytes")
        return tmp
    except BaseException:
        os.remove(tmp)
        raise


def _retryable(error):
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (408, 429)
    return isinstance(
        error, (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError)
    )


def fetch_file(file_spec, progress=True):
    """Download ``file_spec`` into the cache (retrying with back-off), verify, rename.

    Returns:
        the cached path.

    Raises:
        DownloadError: the file could not be fetched (offline, HTTP error); the message
            gives the URL and the exact path to put the file at.
        IntegrityError: the download does not match its published hash (it is deleted).
    """
    if file_spec.member:
        return _fetch_member(file_spec, progress)
    dest_dir = cache_dir()
    path = os.path.join(dest_dir, file_spec.filename)
    delay = BACKOFF_S
    for attempt in range(1, RETRIES + 1):
        try:
            tmp = _fetch(file_spec, dest_dir, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError,
                ConnectionError) as error:
            if not _retryable(error) or attempt == RETRIES:
                raise DownloadError(
                    f"Could not download {file_spec.url} ({_reason(error)}; {attempt} "
                    f"attempt(s)).\n{_manual_hint(file_spec, path)}"
                ) from error
            print(f"kerasbrain: download failed ({_reason(error)}); retrying in {delay:g} s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
            delay *= 2
    try:
        verify(tmp, file_spec)
    except IntegrityError as error:
        os.remove(tmp)
        raise IntegrityError(
            f"The download of {file_spec.url} is corrupt: {error} It was not kept.\n"
            f"{_manual_hint(file_spec, path)}"
        ) from None
    os.replace(tmp, path)
    _pin(path, file_spec)
    _mark_verified(path, file_spec)
    return path


def installed_file(file_spec):
    """The path of ``file_spec.member`` in the installed ``file_spec.package``, if that
    package is installed and the file has the published SHA-256, else None."""
    if not (file_spec.member and file_spec.package):
        return None
    name = re.split(r"[=<>!~ ]", file_spec.package, maxsplit=1)[0]
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in distribution.files or ():
        if entry.as_posix() == file_spec.member:
            path = os.fspath(distribution.locate_file(entry))
            break
    else:
        return None
    if not os.path.isfile(path):
        return None
    if file_digest(path, file_spec)[1] != file_spec.sha256:
        print(f"kerasbrain: ignoring {path} of the installed {name} "
              f"{distribution.version}: not the file of {file_spec.package}.", file=sys.stderr)
        return None
    return path


def _archive_spec(file_spec):
    """The archive (wheel) that holds ``file_spec.member``, as a file of its own."""
    filename = posixpath.basename(urllib.parse.urlparse(file_spec.url).path)
    return dataclasses.replace(file_spec, filename=filename, git_blob_sha1=None,
                               sha256=file_spec.archive_sha256, member=None, package=None)


def _fetch_member(file_spec, progress):
    """Fetch the archive (verified, cached) and take ``file_spec.member`` out of it."""
    archive = _archive_spec(file_spec)
    try:
        archive_path = cached_file(archive) or fetch_file(archive, progress=progress)
    except DownloadError as error:
        package = file_spec.package or archive.filename
        raise DownloadError(
            f"{file_spec.filename} ({file_spec.member} in {archive.filename}) is not installed "
            f"nor in the cache, and the download failed.\n  Install it: pip install --no-deps "
            f"'{package}'\n  or put the wheel in the cache: pip download --no-deps '{package}' "
            f"-d '{cache_dir()}'\n{error}"
        ) from error
    return _extract(archive_path, file_spec)


def _extract(archive_path, file_spec):
    """Copy one member out of a verified archive into the cache, hash-checked, atomically.

    The destination is the registry's file name (never a name from the archive), the size
    is bounded, and the copy is renamed into place only once its SHA-256 matches.
    """
    dest_dir = cache_dir()
    path = os.path.join(dest_dir, file_spec.filename)
    with zipfile.ZipFile(archive_path) as archive:
        try:
            info = archive.getinfo(file_spec.member)
        except KeyError:
            raise IntegrityError(f"{archive_path}: has no {file_spec.member}.") from None
        if info.file_size > MAX_MEMBER_BYTES:
            raise IntegrityError(f"{archive_path}: {file_spec.member} is {info.file_size} "
                                 f"bytes, more than the {MAX_MEMBER_BYTES} allowed.")
        fd, tmp = tempfile.mkstemp(prefix=f".{file_spec.filename}.", suffix=".part", dir=dest_dir)
        try:
            with os.fdopen(fd, "wb") as out, archive.open(info) as member:
                done = 0
                for chunk in iter(lambda: member.read(CHUNK_BYTES), b""):
                    done += len(chunk)
                    if done > info.file_size:
                        raise IntegrityError(f"{archive_path}: {file_spec.member} is larger "
                                             "than its directory entry says.")
                    out.write(chunk)
            verify(tmp, file_spec)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    _mark_verified(path, file_spec)
    return path


def _reason(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    return str(getattr(error, "reason", error))


def cached_file(file_spec):
    """The cached path of ``file_spec`` if it is there and verified, else None.

    A cached file is hashed once and then recorded as verified (a ``.verified`` marker with
    its hash, size and modification time); a cached file that fails verification is
    deleted.
    """
    path = os.path.join(cache_dir(), file_spec.filename)
    if not os.path.isfile(path):
        return None
    if _is_marked_verified(path, file_spec):
        return path
    try:
        verify(path, file_spec)
    except IntegrityError as error:
        print(f"kerasbrain: removing a corrupt cached file: {error}", file=sys.stderr)
        os.remove(path)
        return None
    _pin(path, file_spec)
    _mark_verified(path, file_spec)
    return path


def get_file(architecture, name, progress=True):
    """Local, verified path(s) of a registry entry's file(s), downloading what is missing.

    Prints the source, license and citation before fetching anything.

    Args:
        architecture: family the weights are for, e.g. ``"sfcn"``.
        name: registry name, optionally with a variant (``"brain-age-2022:ranking"``).
        progress: show a progress bar while downloading.

    Returns:
        the path (str) for an entry of one file, else a list of paths in registry order.

    Raises:
        ValueError: unknown name (the known ones are listed).
        DownloadError, IntegrityError: see :func:`fetch_file`.
    """
    spec = get_spec(name, architecture=architecture)
    paths = []
    announced = False
    for file_spec in spec.files:
        path = installed_file(file_spec) or cached_file(file_spec)
        if path is None:
            if not announced:
                print_provenance(spec)
                announced = True
            what = f"{file_spec.member} of " if file_spec.member else ""
            print(f"Fetching {what}{file_spec.url}", flush=True)
            path = fetch_file(file_spec, progress=progress)
        paths.append(path)
    return paths[0] if len(paths) == 1 else paths
