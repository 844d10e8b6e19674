"""Finding, checking and decoding image files with one stated channel-conversion rule.

The reference opens every file with ``Image.open(path).convert("RGB")``; that silently clips 16-bit
PNGs, ignores EXIF rotation, and crashes mid-epoch on the first truncated file. Here every file goes
through :func:`load_image`, and a data set checks its files once with :func:`scan_images`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

# The reference's IMG_EXTENSIONS (data/image_folder.py), compared case-insensitively, plus webp.
IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")

LAYOUT_HINT = (
    "expected layout: <dataroot>/trainA, <dataroot>/trainB, <dataroot>/testA, <dataroot>/testB "
    "(unaligned), <dataroot>/train and <dataroot>/test holding A|B side-by-side images (aligned), "
    "or a folder of images (single)"
)

# Modes that carry an alpha channel; the rule drops it (see load_image).
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})

_alpha_warned = False  # the alpha warning is printed once per process, not once per file


class DatasetError(ValueError):
    """A data folder is missing, empty, or holds too many files that cannot be decoded."""


class BadImageError(ValueError):
    """One file could not be decoded as an image; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str = "") -> None:
        # args keep the constructor's arguments so the error pickles across DataLoader workers;
        # reason is optional because DataLoader re-raises a worker's error as type(error)(message).
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot decode image {self.path}: {self.reason}" if self.reason else self.path


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends with one of :data:`IMG_EXTENSIONS` (any case)."""
    return str(path).lower().endswith(IMG_EXTENSIONS)


def list_images(
    folder: str | os.PathLike[str], max_dataset_size: int | None = None
) -> tuple[list[Path], int]:
    """Return the image files under ``folder`` (recursive, sorted) and how many other files were skipped.

    Like the reference's ``make_dataset``, but sorted before truncating to ``max_dataset_size`` so the
    subset does not depend on the file system's listing order. A missing folder, or one with no
    images, raises :class:`DatasetError` naming the folder and the expected layout.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory; {LAYOUT_HINT}")
    images: list[str] = []
    skipped = 0
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            if is_image_file(name):
                images.append(os.path.join(dirpath, name))
            elif not name.startswith("."):  # hidden files (.DS_Store) are not worth reporting
                skipped += 1
    if not images:
        raise DatasetError(
            f"no images ({', '.join(IMG_EXTENSIONS)}) found in {root} ({skipped} other files); {LAYOUT_HINT}"
        )
    # Sort the strings, as the reference does, so the order matches it on every platform.
    images.sort()
    if max_dataset_size is not None:
        images = images[: max(0, max_dataset_size)]
    return [Path(p) for p in images], skipped


def _warn_alpha_once(path: str, mode: str) -> None:
    global _alpha_warned
    if not _alpha_warned:
        _alpha_warned = True
        message = (
            f"{path} has an alpha channel (mode {mode}); the alpha is dropped (colour kept, not composited). "
            "This warning is shown once per process."
        )
        warnings.warn(message, UserWarning, stacklevel=3)
        logger.warning(message)


def _sixteen_to_eight(img: Image.Image) -> Image.Image:
    # Scale the full 0..65535 range onto 0..255 (x / 257, rounded) instead of PIL's clip at 255.
    values = np.asarray(img, dtype=np.float64)
    scaled = np.floor(np.clip(values, 0, 65535) / 257.0 + 0.5).astype(np.uint8)
    return Image.fromarray(scaled)


def _to_rgb_or_l(img: Image.Image, path: str) -> Image.Image:
    """Reduce any PIL mode to "RGB" or "L" (see load_image for the rule)."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_to_eight(img)
    if mode in ("F", "1"):
        return img.convert("L")  # float images: PIL clips to 0..255
    if mode == "P":
        # A palette with a transparent entry expands to RGBA; that alpha is dropped like any other.
        if "transparency" in img.info:
            _warn_alpha_once(path, "P with transparency")
        return img.convert("RGB")
    if mode in _ALPHA_MODES:
        _warn_alpha_once(path, mode)
        if mode in ("LA", "La"):
            return img.convert("L")
        return img.convert("RGBA").convert("RGB")
    # CMYK, YCbCr, LAB, HSV: PIL's own conversion.
    return img.convert("RGB")


def load_image(path: str | os.PathLike[str], channels: int = 3) -> Image.Image:
    """Decode ``path`` fully and return a PIL image in mode "RGB" (``channels=3``) or "L" (``channels=1``).

    The conversion rule:

    * EXIF orientation is applied first (``ImageOps.exif_transpose``), so phone photos are upright.
    * grayscale ("L", "1") to RGB replicates the gray value into the three channels;
    * palette ("P") images are expanded through their palette;
    * alpha ("RGBA", "LA", "PA", palette transparency) is dropped, keeping the colour as stored
      (not composited on any background); a warning says so once per process;
    * CMYK (and YCbCr, LAB, HSV) go to RGB with PIL's conversion;
    * 16-bit images ("I;16", "I") are scaled to 8 bit by ``round(v / 257)``, not clipped at 255;
      16-bit-per-channel RGB PNGs are already reduced to 8 bit by PIL when opened;
    * RGB to "L" uses ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B`` (``convert("L")``).

    A file that cannot be decoded (truncated, empty, not an image) raises :class:`BadImageError`.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    name = str(path)
    try:
        with Image.open(name) as opened:
            # load() decodes every byte: a truncated JPEG raises here, not later inside a transform.
            opened.load()
            img = ImageOps.exif_transpose(opened)
            img = _to_rgb_or_l(img, name)
            if channels == 3 and img.mode != "RGB":
                img = img.convert("RGB")
            elif channels == 1 and img.mode != "L":
                img = img.convert("L")
            # Detach from the file handle so it closes here.
            if img is opened:
                img = img.copy()
    except BadImageError:
        raise
    except Image.DecompressionBombError as error:
        raise BadImageError(name, f"image too large ({error})") from error
    except Exception as error:  # PIL's decoders raise many types (OSError, SyntaxError, struct.error ...)
        reason = str(error) or type(error).__name__
        if os.path.exists(name) and os.path.getsize(name) == 0:
            reason = "the file is empty (0 bytes)"
        raise BadImageError(name, reason) from error
    return img


def split_aligned(path: str | os.PathLike[str]) -> tuple[Image.Image, Image.Image]:
    """An aligned file's A (left) and B (right) halves, in RGB."""
    image = load_image(path, 3)
    width, height = image.size
    if width < 2:
        raise ValueError(f"{path} is {width} pixel wide; aligned images hold A|B side by side")
    return image.crop((0, 0, width // 2, height)), image.crop((width // 2, 0, width, height))


def _check(path: Path) -> tuple[str | None, tuple[int, int]]:
    """(why the file is bad or None, its decoded size). The same code path as training, so a file
    that passes here also loads there."""
    try:
        return None, load_image(path, 3).size
    except BadImageError as error:
        return error.reason, (0, 0)


def scan_images(paths: Sequence[Path], max_bad_fraction: float = 0.1, min_side: int = 0) -> list[Path]:
    """Decode every file once and return the good ones, in order.

    Each bad file is logged with its reason and skipped, so training never stops mid-epoch on it. When
    more than ``max_bad_fraction`` of the files are bad, :class:`DatasetError` lists them instead.
    Good images with a side below ``min_side`` (the crop) are named in one warning: they will be
    upscaled (blurry), not crash the run.
    """
    paths = list(paths)
    if not paths:
        return []
    # Decoding releases the GIL, so a few threads shorten the one-time check on large folders.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(paths))) as pool:
        checks = list(pool.map(_check, paths))
    good = [p for p, (reason, _) in zip(paths, checks, strict=True) if reason is None]
    bad = [(p, reason) for p, (reason, _) in zip(paths, checks, strict=True) if reason is not None]
    for p, reason in bad:
        logger.warning("skipping unreadable image %s: %s", p, reason)
    if bad and len(bad) / len(paths) > max_bad_fraction:
        listing = "\n".join(f"  {p}: {reason}" for p, reason in bad)
        raise DatasetError(
            f"{len(bad)} of {len(paths)} images cannot be decoded "
            f"(more than max_bad_fraction={max_bad_fraction}); fix or remove them:\n{listing}"
        )
    small = [f"{p.name} ({w}×{h})" for p, (reason, (w, h)) in zip(paths, checks, strict=True)
             if reason is None and min(w, h) < min_side]
    if small:
        shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
        logger.warning("%d image(s) smaller than --crop_size %d will be upscaled: %s", len(small), min_side, shown)
    return good
