"""Downloads: the reference's CycleGAN data sets and pretrained generators, and the FID Inception weights.

One downloader, :func:`download`, does all of it: a tqdm progress bar, resume of a partial file
(``<dest>.part`` plus an HTTP ``Range`` request; a server that ignores ``Range`` makes it start again
cleanly), a SHA-256 check (a mismatch deletes the file and raises), an atomic final rename (a reader
never sees half a file under the final name) and, when the host cannot be reached, an error that
names the URL and says where to put the file by hand.

Nothing here runs at import time and nothing else in the package downloads: the FID code reads the
Inception weights from a path or from the cache that :func:`download_inception` fills.

Registries (the reference's ``datasets/download_*_dataset.sh`` and ``scripts/download_cyclegan_model.sh``,
and CUT's README): :data:`DATASETS`, :data:`PIX2PIX_DATASETS` (``facades``, ``cityscapes`` and ``maps``
are in both: ``paired=True`` / ``--paired`` picks this one), :data:`PRETRAINED`, :data:`CUT_PRETRAINED`;
each ``download_*`` function says where its files go. Mirrors: the ``base`` argument, else
``$CYCLEGAN_DOWNLOAD_BASE`` (``CYCLEGAN_PIX2PIX_DOWNLOAD_BASE``, ``CYCLEGAN_CUT_DOWNLOAD_BASE``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from cyclegan.core.fileio import fsync_directory, load_tensor_dict

__all__ = [
    "CUT_PRETRAINED",
    "DATASETS",
    "DEFAULT_CUT_BASE_URL",
    "DEFAULT_BASE_URL",
    "DEFAULT_PIX2PIX_BASE_URL",
    "PIX2PIX_DATASETS",
    "INCEPTION_FILENAME",
    "INCEPTION_SHA256_PREFIX",
    "INCEPTION_URL",
    "PRETRAINED",
    "DownloadError",
    "base_url",
    "cache_dir",
    "download",
    "download_cut_pretrained",
    "download_dataset",
    "download_inception",
    "download_pix2pix_dataset",
    "download_pretrained",
    "inception_cache_path",
    "safe_extract",
]

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan"

# The reference's download_cyclegan_dataset.sh list, plus grumpifycat (its README's example set).
DATASETS = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
    "grumpifycat",
)

# The reference's download_pix2pix_dataset.sh list: paired A|B images in train/ val/ (test/).
PIX2PIX_DATASETS = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")
DEFAULT_PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix"

# The reference's download_cyclegan_model.sh list.
PRETRAINED = (
    "apple2orange",
    "orange2apple",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "sat2map",
    "map2sat",
    "cityscapes_photo2label",
    "cityscapes_label2photo",
    "facades_photo2label",
    "facades_label2photo",
    "iphone2dslr_flower",
)

# CUT's README ("Apply a pre-trained CUT model"): one tar holding checkpoints/<name>_pretrained/latest_net_G.pth
# for each of these; the name says the --CUT_mode to test it with.
CUT_PRETRAINED = (
    "horse2zebra_cut",
    "horse2zebra_fastcut",
    "cat2dog_cut",
    "cat2dog_fastcut",
    "cityscapes_cut",
    "cityscapes_fastcut",
)
DEFAULT_CUT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/CUT"
CUT_PRETRAINED_ARCHIVE = "pretrained_models.tar"

# torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3 (torch-fidelity 0.4.0); copied rather
# than imported so that `cyclegan download inception` works without importing torch-fidelity.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
# Stored under pytorch-fid's name for what both projects call the 2015-12-05 Inception "6726825d".
INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# By torch.hub's naming convention the 8 hex digits in the name start the file's SHA-256, but neither
# project checks it (both call load_state_dict_from_url without check_hash) and it could not be
# confirmed offline, so it is not enforced by default: the download is validated by loading it.
INCEPTION_SHA256_PREFIX = "6726825d"
# Keys every FID Inception-v3 state dict (torch-fidelity's / pytorch-fid's layout) holds.
_INCEPTION_KEYS = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download or unpacking failed; the message says what to do (retry, or place the file by hand)."""


# ----------------------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """``$CYCLEGAN_CACHE`` if set, else ``~/.cache/cyclegan``."""
    env = os.environ.get("CYCLEGAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cyclegan"


def inception_cache_path(cache: str | Path | None = None) -> Path:
    """Where the FID Inception weights are looked for: ``<cache>/inception/pt_inception-2015-12-05-6726825d.pth``."""
    return (Path(cache).expanduser() if cache is not None else cache_dir()) / "inception" / INCEPTION_FILENAME


def base_url(
    base: str | None = None, env: str = "CYCLEGAN_DOWNLOAD_BASE", default: str = DEFAULT_BASE_URL
) -> str:
    """The argument, else ``$<env>``, else ``default``, without a trailing slash."""
    return (base or os.environ.get(env) or default).rstrip("/")


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
    from tqdm.auto import tqdm

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

    for _attempt in range(2):  # the second pass only after a refused range (416)
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "cyclegan-downloader"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and offset:
                # The partial file is not a prefix the server recognises (e.g. longer than the file,
                # or the file changed): start over rather than guess.
                error.close()
                part.unlink(missing_ok=True)
                continue
            error.close()
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise _unreachable(url, dest, reason, manual) from None

        with response:
            status = getattr(response, "status", 200)
            if offset and status == 206:
                mode = "ab"
            else:
                # 200 to a range request: the server sent the whole file, so the partial one is dropped.
                offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            try:
                with open(part, mode) as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=dest.name, disable=not progress, leave=False,
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
        break
    else:  # pragma: no cover - two refused ranges in a row cannot happen: the second has no Range
        raise DownloadError(f"cannot download {url}: the server refused the request range twice")

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


# --------------------------------------------------------------------------------------- unzip


def _member_target(root: Path, name: str) -> Path:
    """Where a zip member goes under ``root``; raises for absolute paths and ``..`` components."""
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


# ----------------------------------------------------------------------------------- registries


def _check_name(name: str, known: tuple[str, ...], what: str) -> None:
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; available: {', '.join(known)}")


def download_dataset(
    name: str, root: str | Path = "./datasets", base: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download and unpack one of the reference's data sets into ``<root>/<name>/`` and return that folder.

    The zip (``<base>/datasets/<name>.zip``, holding ``<name>/trainA/...``) is downloaded to
    ``<root>/<name>.zip`` (resumable), unpacked into a temporary folder inside ``root``, checked to
    hold ``<name>/``, moved into place and deleted. An existing ``<root>/<name>/`` is returned as is.
    """
    _check_name(name, DATASETS, "data set")
    return _download_folder(name, Path(root), f"{base_url(base)}/datasets/{name}.zip", sha256, progress)


def download_pix2pix_dataset(
    name: str, root: str | Path = "./datasets", base: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download and unpack one of the reference's pix2pix data sets into ``<root>/<name>/`` (``train/``,
    ``val/`` ... of A|B files for ``--model pix2pix``) and return that folder.

    As :func:`download_dataset`, from ``<base>/datasets/<name>.tar.gz`` (base: ``base``, else
    ``$CYCLEGAN_PIX2PIX_DOWNLOAD_BASE``, else :data:`DEFAULT_PIX2PIX_BASE_URL`).
    """
    _check_name(name, PIX2PIX_DATASETS, "pix2pix data set")
    pix2pix_base = base_url(base, "CYCLEGAN_PIX2PIX_DOWNLOAD_BASE", DEFAULT_PIX2PIX_BASE_URL)
    return _download_folder(name, Path(root), f"{pix2pix_base}/datasets/{name}.tar.gz", sha256, progress)


def _download_folder(name: str, root: Path, url: str, sha256: str | None, progress: bool) -> Path:
    """Download the archive at ``url`` into ``root``; unpack its ``<name>/`` folder to ``<root>/<name>``."""
    target = root / name
    if target.is_dir():
        return target
    archive = root / url.rsplit("/", 1)[-1]
    download(url, archive, sha256=sha256, progress=progress,
             manual=f"download {url} elsewhere and unpack it into {root} (it holds the {name}/ folder)")
    # Unpack beside the target and move it into place, so an interrupted unpack leaves no half data set
    # that a later call would take for a complete one.
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=root) as tmp:
        try:
            (safe_extract if archive.suffix == ".zip" else safe_extract_tar)(archive, tmp)
        except zipfile.BadZipFile as error:
            archive.unlink(missing_ok=True)
            raise DownloadError(f"{url} is not a valid zip ({error}); it was deleted, run again") from None
        except DownloadError:
            archive.unlink(missing_ok=True)  # a bad archive must not be "resumed" by the next try
            raise
        unpacked = Path(tmp) / name
        if not unpacked.is_dir():
            found = sorted(p.name for p in Path(tmp).iterdir())
            raise DownloadError(f"{archive} does not hold a {name}/ folder (it holds: {', '.join(found)})")
        os.replace(unpacked, target)
    archive.unlink(missing_ok=True)
    return target


def safe_extract_tar(tar_path: str | Path, root: str | Path) -> None:
    """Unpack a ``.tar.gz`` into ``root``, refusing (:class:`DownloadError`) any member whose path
    leaves ``root``, links, and device files, before anything is written."""
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


def download_pretrained(
    name: str, checkpoints_dir: str | Path = "./checkpoints", base: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download a reference pretrained generator to ``<checkpoints_dir>/<name>_pretrained/latest_net_G.pth``.

    That is the reference's layout, so ``cyclegan test --dataroot DIR --name <name>_pretrained
    --model test --no_dropout`` loads it (with ``torch.load(weights_only=True)``). The file is checked
    to be a weights-only state dict before it is moved into place.
    """
    _check_name(name, PRETRAINED, "pretrained model")
    url = f"{base_url(base)}/pretrained_models/{name}.pth"
    dest = Path(checkpoints_dir) / f"{name}_pretrained" / "latest_net_G.pth"
    if dest.exists():
        return dest
    staging = dest.with_name(f".{name}.pth.download")
    download(url, staging, sha256=sha256, progress=progress,
             manual=f"download {url} elsewhere and save it as {dest}")
    from cyclegan.core.checkpoint import CheckpointError, load_reference_weights

    try:
        load_reference_weights(staging)
    except CheckpointError as error:
        staging.unlink(missing_ok=True)
        raise DownloadError(f"{url} is not a usable generator state dict: {error}") from None
    os.replace(staging, dest)
    return dest


def download_cut_pretrained(
    name: str, checkpoints_dir: str | Path = "./checkpoints", base: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download CUT's pretrained generators to ``<checkpoints_dir>/<name>_pretrained/latest_net_G.pth``.

    CUT publishes one tar for all of them (:data:`CUT_PRETRAINED`); it is downloaded once
    (resumable), every generator in it is checked to be a weights-only state dict and moved into
    place (those already there are kept), and the tar is deleted. Returns ``name``'s file.
    """
    _check_name(name, CUT_PRETRAINED, "CUT pretrained model")
    checkpoints_dir = Path(checkpoints_dir)
    dest = checkpoints_dir / f"{name}_pretrained" / "latest_net_G.pth"
    if dest.exists():
        return dest
    url = f"{base_url(base, 'CYCLEGAN_CUT_DOWNLOAD_BASE', DEFAULT_CUT_BASE_URL)}/{CUT_PRETRAINED_ARCHIVE}"
    archive = checkpoints_dir / f"CUT_{CUT_PRETRAINED_ARCHIVE}"
    download(url, archive, sha256=sha256, progress=progress,
             manual=f"download {url} elsewhere and unpack it so that {dest} exists")
    try:
        _unpack_cut_generators(archive, url, name, checkpoints_dir)
    except DownloadError:
        archive.unlink(missing_ok=True)  # a bad archive must not be "resumed" by the next try
        raise
    archive.unlink(missing_ok=True)
    return dest


def _unpack_cut_generators(archive: Path, url: str, name: str, checkpoints_dir: Path) -> None:
    from cyclegan.core.checkpoint import CheckpointError, load_reference_weights

    with tempfile.TemporaryDirectory(prefix=".cut_pretrained.", dir=checkpoints_dir) as tmp:
        safe_extract_tar(archive, tmp)
        # CUT's tar holds checkpoints/<name>_pretrained/...; accept the folders at any depth.
        found = {path.parent.name.removesuffix("_pretrained"): path
                 for path in Path(tmp).rglob("latest_net_G.pth") if path.parent.name.endswith("_pretrained")}
        if name not in found:
            raise DownloadError(f"{archive} holds no {name}_pretrained/latest_net_G.pth (it holds: "
                                f"{', '.join(sorted(found)) or 'no generator'})")
        for model, path in sorted(found.items()):
            target = checkpoints_dir / f"{model}_pretrained" / "latest_net_G.pth"
            if target.exists():
                continue
            try:
                load_reference_weights(path)
            except CheckpointError as error:
                raise DownloadError(f"{url}: {model}'s generator is not a usable state dict: {error}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def download_inception(
    cache: str | Path | None = None, url: str | None = None, progress: bool = True, sha256: str | None = None,
) -> Path:
    """Download the FID Inception-v3 weights (torch-fidelity's) into the cache and return the path.

    ``cache`` defaults to :func:`cache_dir` (``$CYCLEGAN_CACHE`` or ``~/.cache/cyclegan``); the file is
    ``<cache>/inception/pt_inception-2015-12-05-6726825d.pth``. ``url`` defaults to
    :data:`INCEPTION_URL`. The file must load with ``torch.load(weights_only=True)`` as a state dict
    with the Inception-v3 layer names, else it is deleted and :class:`DownloadError` raised; pass
    ``sha256`` (e.g. :data:`INCEPTION_SHA256_PREFIX`) to check its digest as well.
    """
    dest = inception_cache_path(cache)
    if dest.exists():
        return download(url or INCEPTION_URL, dest, sha256=sha256, progress=progress)
    url = url or INCEPTION_URL
    staging = dest.with_name(f".{dest.name}.download")
    download(url, staging, sha256=sha256, progress=progress,
             manual=f"download {url} elsewhere and copy it to {dest}")
    try:
        missing = [k for k in _INCEPTION_KEYS if k not in load_tensor_dict(staging, "the Inception weights")]
    except ValueError as error:
        missing = [f"unreadable: {error}"]
    if missing:
        staging.unlink(missing_ok=True)
        raise DownloadError(f"{url} is not the FID Inception-v3 state dict (missing {missing}); it was deleted")
    os.replace(staging, dest)
    return dest
