"""What can be downloaded, and where it lands: the reference's data sets and pretrained generators
(CycleGAN's, pix2pix's, CUT's) and the FID Inception weights.

Catalogues (the reference's ``datasets/download_*_dataset.sh``, ``scripts/download_cyclegan_model.sh``
and ``scripts/download_pix2pix_model.sh``, and CUT's README): :data:`DATASETS`,
:data:`PIX2PIX_DATASETS` (``facades``, ``cityscapes`` and ``maps`` are in both: ``paired=True`` /
``--paired`` picks this one), :data:`PRETRAINED`, :data:`PIX2PIX_PRETRAINED` (``sat2map``,
``map2sat`` and ``facades_label2photo`` are in both: ``--paired`` picks this one),
:data:`CUT_PRETRAINED`; each ``download_*`` function says where its files go. Mirrors: the ``base``
argument, else ``$CYCLEGAN_DOWNLOAD_BASE`` (``$CYCLEGAN_PIX2PIX_DOWNLOAD_BASE``,
``$CYCLEGAN_CUT_DOWNLOAD_BASE``). Every generator is checked to be a weights-only state dict before
it is moved into place.

The transfer itself (resume, checksum, atomic rename, safe unpacking) is :mod:`cyclegan.core.transfer`'s;
its public names are re-exported here, where the rest of the package has always imported them.
Nothing here runs at import time and nothing else in the package downloads: the FID code reads the
Inception weights from a path or from the cache that :func:`download_inception` fills.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from cyclegan.core.checkpoint import CheckpointError, load_reference_weights
from cyclegan.core.fileio import load_tensor_dict
from cyclegan.core.transfer import DownloadError, cache_dir, download, safe_extract, safe_extract_tar

__all__ = [
    "CUT_PRETRAINED",
    "DATASETS",
    "DEFAULT_CUT_BASE_URL",
    "DEFAULT_BASE_URL",
    "DEFAULT_PIX2PIX_BASE_URL",
    "PIX2PIX_DATASETS",
    "PIX2PIX_PRETRAINED",
    "INCEPTION_FILENAME",
    "INCEPTION_SHA256_PREFIX",
    "INCEPTION_URL",
    "PRETRAINED",
    "PRETRAINED_DOWNLOADERS",
    "PRETRAINED_NAMES",
    "DownloadError",
    "base_url",
    "cache_dir",
    "download",
    "download_cut_pretrained",
    "download_dataset",
    "download_inception",
    "download_pix2pix_dataset",
    "download_pix2pix_pretrained",
    "download_pretrained",
    "inception_cache_path",
    "pretrained_direction",
    "pretrained_source",
    "safe_extract",
    "safe_extract_tar",
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

# The reference's download_pix2pix_model.sh list: <pix2pix base>/models-pytorch/<name>.pth, each a
# generator of the pix2pix recipe's defaults (unet_256, batch norm, dropout).
PIX2PIX_PRETRAINED = ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night")

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

# Every pretrained name, each once, in catalogue order (CycleGAN's, then pix2pix's own, then CUT's).
PRETRAINED_NAMES = tuple(dict.fromkeys((*PRETRAINED, *PIX2PIX_PRETRAINED, *CUT_PRETRAINED)))

# The generators whose paired data set is read right half first (`--direction BtoA`), as their
# authors test them: the pix2pix data sets put photo | label (facades), aerial | map (maps) and
# night | day (night2day); CUT's README tests its cityscapes models so.
_READ_B_TO_A = {
    "pix2pix": frozenset({"facades_label2photo", "map2sat", "day2night"}),
    "cut": frozenset({"cityscapes_cut", "cityscapes_fastcut"}),
}

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


def inception_cache_path(cache: str | Path | None = None) -> Path:
    """Where the FID Inception weights are looked for: ``<cache>/inception/pt_inception-2015-12-05-6726825d.pth``."""
    return (Path(cache).expanduser() if cache is not None else cache_dir()) / "inception" / INCEPTION_FILENAME


def base_url(
    base: str | None = None, env: str = "CYCLEGAN_DOWNLOAD_BASE", default: str = DEFAULT_BASE_URL
) -> str:
    """The argument, else ``$<env>``, else ``default``, without a trailing slash."""
    return (base or os.environ.get(env) or default).rstrip("/")


def _check_name(name: str, known: tuple[str, ...], what: str) -> None:
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; available: {', '.join(known)}")


# -------------------------------------------------------------------------------------- data sets


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


# ----------------------------------------------------------------------------- pretrained models


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
    return _download_generator(f"{base_url(base)}/pretrained_models/{name}.pth", name, checkpoints_dir,
                               sha256, progress)


def download_pix2pix_pretrained(
    name: str, checkpoints_dir: str | Path = "./checkpoints", base: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download a reference pix2pix generator to ``<checkpoints_dir>/<name>_pretrained/latest_net_G.pth``.

    From ``<base>/models-pytorch/<name>.pth`` (base: ``base``, else ``$CYCLEGAN_PIX2PIX_DOWNLOAD_BASE``,
    else :data:`DEFAULT_PIX2PIX_BASE_URL`), checked as :func:`download_pretrained` checks; ``cyclegan
    test --dataroot <its pix2pix data set> --name <name>_pretrained --model pix2pix`` then loads it.
    """
    _check_name(name, PIX2PIX_PRETRAINED, "pix2pix pretrained model")
    pix2pix_base = base_url(base, "CYCLEGAN_PIX2PIX_DOWNLOAD_BASE", DEFAULT_PIX2PIX_BASE_URL)
    return _download_generator(f"{pix2pix_base}/models-pytorch/{name}.pth", name, checkpoints_dir,
                               sha256, progress)


def _download_generator(url: str, name: str, checkpoints_dir: str | Path, sha256: str | None,
                        progress: bool) -> Path:
    """``url`` to ``<checkpoints_dir>/<name>_pretrained/latest_net_G.pth`` once it loads as weights only."""
    dest = Path(checkpoints_dir) / f"{name}_pretrained" / "latest_net_G.pth"
    if dest.exists():
        return dest
    # Downloaded under another name: a file that is not weights only never sits where a loader looks.
    staging = dest.with_name(f".{name}.pth.download")
    download(url, staging, sha256=sha256, progress=progress,
             manual=f"download {url} elsewhere and save it as {dest}")
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


# Each catalogue's downloader, by the recipe its generators belong to (what pretrained_source says).
PRETRAINED_DOWNLOADERS: dict[str, Callable[..., Path]] = {
    "cycle_gan": download_pretrained,
    "pix2pix": download_pix2pix_pretrained,
    "cut": download_cut_pretrained,
}


def pretrained_source(name: str, paired: bool = False) -> str:
    """Which catalogue publishes ``name``, by recipe: ``"cycle_gan"``, ``"pix2pix"`` or ``"cut"``.

    A name in both CycleGAN's and pix2pix's lists is CycleGAN's unless ``paired`` (``--paired``, as for
    data sets); a name only pix2pix publishes is pix2pix's either way. An unknown name, or ``paired``
    with a name pix2pix does not publish, raises :class:`ValueError` listing the names there are.
    """
    if paired:
        _check_name(name, PIX2PIX_PRETRAINED, "pix2pix pretrained model")
        return "pix2pix"
    _check_name(name, PRETRAINED_NAMES, "pretrained model")
    if name in CUT_PRETRAINED:
        return "cut"
    return "cycle_gan" if name in PRETRAINED else "pix2pix"


def pretrained_direction(name: str, source: str) -> str:
    """The ``--direction`` (``AtoB`` / ``BtoA``) that ``source``'s ``name`` reads its paired data set in."""
    return "BtoA" if name in _READ_B_TO_A.get(source, ()) else "AtoB"


# ------------------------------------------------------------------------------------ FID weights


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
