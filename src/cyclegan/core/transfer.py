"""The downloader and the archive unpacker that every download in the package goes through.

:func:`download` fetches one URL into one file: a tqdm progress bar, resume of a partial file
(``<dest>.part`` plus an HTTP ``Range`` request; a server that ignores ``Range`` makes it start again
cleanly), a SHA-256 check (a mismatch deletes the file and raises), an atomic final rename (a reader
never sees half a file under the final name) and, when the host cannot be reached, an error that
names the URL and says where to put the file by hand. :func:`safe_extract` / :func:`safe_extract_tar`
unpack an archive after checking that none of its members would land outside the destination.

What there is to download (data sets, pretrained generators, the FID weights) and where each lands
is :mod:`cyclegan.core.download`'s business; this module knows nothing of it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm.auto import tqdm

from cyclegan.core.fileio import fsync_directory

__all__ = ["DownloadError", "cache_dir", "download", "safe_extract", "safe_extract_tar"]

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download or unpacking failed; the message says what to do (retry, or place the file by hand)."""


def cache_dir() -> Path:
    """``$CYCLEGAN_CACHE`` if set, else ``~/.cache/cyclegan``."""
    env = os.environ.get("CYCLEGAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cyclegan"


# ------------------------------------------------------------------------------------ downloader


def _check_digest(expected: str | None) -> str | None:
    if expected is None:
        return None
    expected = expected.strip().lower()
    if not (8 <= len(expected) <= 64) or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 must be 8 to 64 hex digits (a full digest or its prefix), got {expected!r}")
    return expected


def _digest_ok(path: Path, expected: str) -> tuple[bool, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    # A prefix is accepted because some files are only published with one (torch.hub file names).
    return actual.startswith(expected), actual


def _unreachable(url: str, dest: Path, reason: object, manual: str | None) -> DownloadError:
    how = manual or f"download it on a machine with network access and copy it to {dest}"
    return DownloadError(
        f"cannot download {url}: {reason}.\n"
        f"If this machine is offline or the host is down, {how}; then run the command again."
    )


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    manual: str | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` and return ``dest``.

    Args:
        url: http(s) URL.
        dest: final file path; the download goes to ``<dest>.part`` first and is renamed into place
            (atomically, same folder) only when complete and verified.
        sha256: expected SHA-256, a full hex digest or a prefix of at least 8 digits. On a mismatch
            the file is deleted and :class:`DownloadError` raised. Without it, the file is not checked.
        progress: show a tqdm progress bar (on stderr).
        timeout: seconds to wait for the connection and for each read.
        manual: what the "place the file by hand" advice should say instead of the default.

    If ``dest`` exists it is kept (and checked against ``sha256`` when given: a file that does not
    match is an error, never silently replaced). If ``<dest>.part`` exists, only the missing bytes are
    requested (``Range: bytes=<size>-``); a server that answers with the whole file (200) or refuses
    the range (416) makes the download start again from byte 0.
    """
    dest = Path(dest)
    expected = _check_digest(sha256)
    if dest.exists():
        if expected is not None:
            ok, actual = _digest_ok(dest, expected)
            if not ok:
                raise DownloadError(
                    f"{dest} exists but its SHA-256 is {actual}, expected {expected}: delete it and run again"
                )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    response, offset = _open(url, part, timeout, dest, manual)
    with response:
        total = _receive(response, url, part, offset, dest.name, progress)

    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"download of {url} ended early ({size} of {total} bytes); run the command again to resume"
        )
    if expected is not None:
        ok, actual = _digest_ok(part, expected)
        if not ok:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"checksum mismatch for {url}: SHA-256 {actual}, expected {expected}; the file was deleted "
                f"(a damaged mirror or a changed file); run again, or place a good copy at {dest}"
            )
    os.replace(part, dest)
    fsync_directory(dest.parent)
    return dest


def _open(url: str, part: Path, timeout: float, dest: Path, manual: str | None) -> tuple[Any, int]:
    """Request ``url`` (only the bytes after ``part``'s, when it exists): (the response, the offset asked)."""
    for _attempt in range(2):  # the second pass only after a refused range (416)
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "cyclegan-downloader"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            return urllib.request.urlopen(request, timeout=timeout), offset
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and offset:
                # The partial file is not a prefix the server recognises (e.g. longer than the file,
                # or the file changed): start over rather than guess.
                part.unlink(missing_ok=True)
                continue
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            raise _unreachable(url, dest, getattr(error, "reason", error), manual) from None
    # Two refused ranges in a row cannot happen (the second request has no Range); kept as a guard.
    raise DownloadError(f"cannot download {url}: the server refused the request range twice")  # pragma: no cover


def _receive(response: Any, url: str, part: Path, offset: int, label: str, progress: bool) -> int | None:
    """Write ``response``'s body to ``part`` (after its first ``offset`` bytes when the server sent only
    the rest); return the file's whole size when the server said it."""
    if offset and getattr(response, "status", 200) == 206:
        mode = "ab"
    else:
        # 200 to a range request: the server sent the whole file, so the partial one is dropped.
        offset, mode = 0, "wb"
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    try:
        with open(part, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=label, disable=not progress, leave=False,
        ) as bar:
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    except (OSError, http.client.HTTPException) as error:
        # The .part file stays: running again resumes from where this stopped.
        raise DownloadError(
            f"download of {url} interrupted after {part.stat().st_size if part.exists() else 0} bytes "
            f"({error}); run the command again to resume"
        ) from None
    return total


# -------------------------------------------------------------------------------------- unpack


def _member_target(root: Path, name: str) -> Path:
    """Where an archive member goes under ``root``; raises for absolute paths and ``..`` components."""
    # Zip names use "/", but a hostile archive may use "\\" to hide ".." from POSIX-only checks.
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or any(part == ".." for part in pure.parts) or (pure.parts and ":" in pure.parts[0]):
        raise DownloadError(f"refusing to unpack {name!r}: the path leaves the destination folder")
    target = (root / Path(*pure.parts)).resolve() if pure.parts else root.resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise DownloadError(f"refusing to unpack {name!r}: the path leaves the destination folder")
    return target


def safe_extract(zip_path: str | Path, root: str | Path) -> None:
    """Unpack ``zip_path`` into ``root``.

    Every member is checked before anything is written: absolute paths, ``..`` components, drive
    letters and symbolic links are refused (:class:`DownloadError`), so a hostile archive cannot write
    outside ``root``. ``__MACOSX/`` resource-fork folders are skipped.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        members = []
        for info in archive.infolist():
            if info.filename.startswith("__MACOSX/"):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DownloadError(f"refusing to unpack {info.filename!r}: symbolic links are not allowed")
            members.append((info, _member_target(root, info.filename)))
        for info, target in members:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def safe_extract_tar(tar_path: str | Path, root: str | Path) -> None:
    """Unpack a ``.tar`` / ``.tar.gz`` into ``root``, refusing (:class:`DownloadError`) any member whose
    path leaves ``root``, links, and device files, before anything is written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r:*") as archive:
            members = archive.getmembers()
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise DownloadError(f"refusing to unpack {member.name!r}: only files and folders are allowed")
                _member_target(root, member.name)
            archive.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DownloadError(f"{tar_path} is not a valid .tar.gz ({error})") from None
