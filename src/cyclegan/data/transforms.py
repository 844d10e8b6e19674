"""Preprocessing pipelines equivalent to the reference's ``get_transform`` / ``get_params``.

Built on ``torchvision.transforms.v2``. Every step is a small picklable class (no lambdas) so the
pipelines survive DataLoader workers started with ``spawn``. Random steps draw from torch's global
RNG; the data sets seed it locally per item so a sample is a pure function of (seed, epoch, index).
Differences from the reference: an image smaller than ``crop_size`` is upscaled with a warning instead
of crashing ``RandomCrop``, and crop positions from :func:`get_params` use the exact size the resize
step produces.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from cyclegan.config import DataConfig
from cyclegan.core.registry import Registry
from cyclegan.data.images import load_image

BICUBIC = InterpolationMode.BICUBIC

# Each preprocess mode maps to a builder of the geometric steps (before flip and tensor conversion).
PreprocessBuilder = Callable[[DataConfig, "dict[str, Any] | None", InterpolationMode], list[Callable]]
PREPROCESS: Registry[PreprocessBuilder] = Registry("preprocess mode")


def _resize(img: Image.Image, w: int, h: int, method: InterpolationMode) -> Image.Image:
    return F.resize(img, [h, w], interpolation=method, antialias=True)


class ScaleWidth:
    """Resize to width ``target`` keeping the aspect ratio, with height at least ``crop_size``."""

    def __init__(self, target: int, crop_size: int, method: InterpolationMode = BICUBIC) -> None:
        self.target, self.crop_size, self.method = target, crop_size, method

    def __call__(self, img: Image.Image) -> Image.Image:
        ow, oh = img.size
        w, h = scale_width_size(ow, oh, self.target, self.crop_size)
        return img if (w, h) == (ow, oh) else _resize(img, w, h, self.method)


def scale_width_size(ow: int, oh: int, target: int, crop_size: int) -> tuple[int, int]:
    """The reference's ``__scale_width`` output size."""
    if ow == target and oh >= crop_size:
        return ow, oh
    return target, int(max(target * oh / ow, crop_size))


def min_size_upscale(w: int, h: int, min_size: int) -> tuple[int, int]:
    """The size an image of ``w x h`` is upscaled to (aspect kept) so both sides reach ``min_size``."""
    if w >= min_size and h >= min_size:
        return w, h
    scale = min_size / min(w, h)
    return max(min_size, math.ceil(w * scale)), max(min_size, math.ceil(h * scale))


def _resize_warned(img: Image.Image, w: int, h: int, method: InterpolationMode, why: str) -> Image.Image:
    if (w, h) == img.size:
        return img
    warnings.warn(f"{why}; resized to {w}x{h}", UserWarning, stacklevel=3)
    return _resize(img, w, h, method)


class EnsureMinSize:
    """Upscale (keeping aspect) an image with a side under ``min_size``, with a warning, so a crop fits."""

    def __init__(self, min_size: int, method: InterpolationMode = BICUBIC) -> None:
        self.min_size, self.method = min_size, method

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = min_size_upscale(*img.size, self.min_size)
        why = f"image of {img.width}x{img.height} is smaller than crop_size={self.min_size}"
        return _resize_warned(img, w, h, self.method, why)


class MakeMultiple:
    """Round both sides to a multiple of ``base`` (the reference's ``__make_power_2``, base 4)."""

    def __init__(self, base: int = 4, method: InterpolationMode = BICUBIC) -> None:
        self.base, self.method = base, method

    def __call__(self, img: Image.Image) -> Image.Image:
        # At least one base unit: the reference would resize a 1-pixel-high image to height 0.
        w, h = (max(self.base, int(round(side / self.base) * self.base)) for side in img.size)
        why = f"image size {img.width}x{img.height} is not a multiple of {self.base}"
        return _resize_warned(img, w, h, self.method, why)


class FixedCrop:
    """Crop a ``size`` square at ``pos`` (x, y); used when A and B must share the crop."""

    def __init__(self, pos: tuple[int, int], size: int) -> None:
        self.pos, self.size = pos, size

    def __call__(self, img: Image.Image) -> Image.Image:
        ow, oh = img.size
        x, y = self.pos
        if ow > self.size or oh > self.size:
            return img.crop((x, y, x + self.size, y + self.size))
        return img


class HorizontalFlip:
    """Mirror left-right (a fixed, not random, flip)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _crop_steps(cfg: DataConfig, params: dict[str, Any] | None, method: InterpolationMode) -> list[Callable]:
    steps: list[Callable] = [EnsureMinSize(cfg.crop_size, method)]
    if params is None:
        steps.append(v2.RandomCrop(cfg.crop_size))
    else:
        steps.append(FixedCrop(tuple(params["crop_pos"]), cfg.crop_size))
    return steps


PREPROCESS.add("resize_and_crop", lambda cfg, params, method: [
    v2.Resize([cfg.load_size, cfg.load_size], interpolation=method, antialias=True), *_crop_steps(cfg, params, method)])
PREPROCESS.add("crop", _crop_steps)
PREPROCESS.add("scale_width", lambda cfg, params, method: [ScaleWidth(cfg.load_size, cfg.crop_size, method)])
PREPROCESS.add("scale_width_and_crop", lambda cfg, params, method: [
    ScaleWidth(cfg.load_size, cfg.crop_size, method), *_crop_steps(cfg, params, method)])
PREPROCESS.add("none", lambda cfg, params, method: [MakeMultiple(4, method)])


def _size_before_crop(cfg: DataConfig, size: tuple[int, int]) -> tuple[int, int]:
    """The image size the crop step sees, for an input of ``size`` (w, h)."""
    w, h = size
    mode = cfg.preprocess
    if mode == "resize_and_crop":
        w = h = cfg.load_size
    elif mode.startswith("scale_width"):
        w, h = scale_width_size(w, h, cfg.load_size, cfg.crop_size)
    if "crop" in mode:
        w, h = min_size_upscale(w, h, cfg.crop_size)
    return w, h


def get_params(cfg: DataConfig, size: tuple[int, int], rng: random.Random | None = None) -> dict[str, Any]:
    """Draw a crop position and flip to share between A and B (aligned mode), as the reference does.

    ``size`` is the input (w, h). ``rng`` defaults to the ``random`` module, as in the reference; pass a
    seeded ``random.Random`` for reproducible samples.
    """
    PREPROCESS.get(cfg.preprocess)  # an unknown mode fails here with the list of known ones
    r: Any = random if rng is None else rng
    new_w, new_h = _size_before_crop(cfg, size)
    x = r.randint(0, max(0, new_w - cfg.crop_size))
    y = r.randint(0, max(0, new_h - cfg.crop_size))
    flip = r.random() > 0.5
    return {"crop_pos": (x, y), "flip": flip}


class ToMode:
    """Convert a PIL image to "L" or "RGB" when it is not already (ITU-R 601 luma for RGB to L)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == self.mode else img.convert(self.mode)


def get_transform(
    cfg: DataConfig,
    grayscale: bool = False,
    params: dict[str, Any] | None = None,
    method: InterpolationMode = BICUBIC,
    convert: bool = True,
) -> v2.Compose:
    """Build the reference's pipeline for ``cfg.preprocess``: resize / crop / flip, then a tensor in [-1, 1].

    With ``params`` (from :func:`get_params`) the crop and flip are fixed; otherwise they are random
    (torch's RNG). ``grayscale`` gives a 1-channel tensor, else 3 channels. ``convert=False`` stops at
    the PIL image.
    """
    steps: list[Callable] = [ToMode("L" if grayscale else "RGB")]
    steps += PREPROCESS.get(cfg.preprocess)(cfg, params, method)
    if not cfg.no_flip:
        if params is None:
            steps.append(v2.RandomHorizontalFlip())
        elif params["flip"]:
            steps.append(HorizontalFlip())
    if convert:
        channels = 1 if grayscale else 3
        steps += [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5] * channels, [0.5] * channels),
            v2.ToPureTensor(),  # a plain torch.Tensor, as the reference's ToTensor gives
        ]
    return v2.Compose(steps)


# --- one image file or PIL image as a tensor (test, validation, inference) ---------------------


def unit_image_tensor(path: Path, channels: int) -> torch.Tensor:
    """An image file as a 1×C×H×W float tensor in [0, 1], by the data loader's decoding rules."""
    return F.to_dtype(F.to_image(load_image(path, channels)), torch.float32, scale=True).unsqueeze(0)


def image_tensor(path: Path, channels: int, data: DataConfig | None = None) -> torch.Tensor:
    """An image as a 1×C×H×W tensor in [-1, 1]; ``data`` (if given) applies its preprocessing."""
    return pil_tensor(load_image(path, channels), channels, data)


def pil_tensor(image: Image.Image, channels: int, data: DataConfig | None) -> torch.Tensor:
    """A PIL image as a 1×C×H×W tensor in [-1, 1]; ``data`` (if given) applies its preprocessing."""
    if data is not None and data.preprocess != "none":
        return get_transform(data, grayscale=channels == 1)(image).unsqueeze(0)
    return F.to_dtype(F.to_image(image), torch.float32, scale=True).unsqueeze(0) * 2 - 1
