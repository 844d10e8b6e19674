"""``cyclegan translate``: a trained generator applied to a user's own images and videos.

:class:`Translator` is the Python API (``Translator.from_run(path)`` then call it on a PIL image, a
tensor or a file); :func:`translate_paths` is the command: images, folders, globs and videos in,
``<stem>_fake_B.<ext>`` out (``_fake_A`` for ``--direction BtoA``). The model is any run of ours
(``latest.safetensors``) or the reference's / CUT's ``<epoch>_net_G.pth`` files, loaded by
:func:`cyclegan.recipes.loading.load_generators`.

Input rules, stated once:

- the colour conversion is the data loader's (:func:`cyclegan.data.load_image`): EXIF rotation
  applied, CMYK to RGB, 16-bit scaled to 8-bit (outputs are 8-bit);
- alpha is *kept*: the colour is translated and the input's alpha channel is put back on the
  output (formats without alpha, JPEG, get the colour only);
- images smaller than the generator can take (a 1×1 image) are edge-padded to its minimum size and
  cropped back, so each gets its translation rather than an error;
- large images are translated in tiles (:mod:`cyclegan.inference.tiling`) when ``tile`` is given, or
  automatically when the whole image would not fit in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from cyclegan.config import TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.data.images import BadImageError, _to_rgb_or_l, load_image
from cyclegan.deploy.fastest import FastestPath, network_key
from cyclegan.inference.tiling import TiledGenerator, choose_tile, default_margin
from cyclegan.recipes import MODELS
from cyclegan.recipes.codec import ImageCodec, inner_network, picture_network
from cyclegan.recipes.loading import is_lone_generator, load_generators, run_config
from cyclegan.report.run_report import read_val_scores
from cyclegan.report.visuals import tensor_to_image

log = logging.getLogger(__name__)

DIRECTIONS = ("AtoB", "BtoA")
ALPHA_FORMATS = (".png", ".webp", ".tif", ".tiff")


class TranslateError(ValueError):
    """An input that cannot be translated; the message names the file and what to do."""


def read_image(path: str | os.PathLike[str], channels: int = 3) -> tuple[Image.Image, Image.Image | None]:
    """(colour image in "RGB" / "L", its alpha channel or None), by the rules in the module docstring."""
    name = str(path)
    try:
        with Image.open(name) as opened:
            opened.load()
            has_alpha = opened.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                opened.mode == "P" and "transparency" in opened.info)
            if not has_alpha:
                return load_image(name, channels), None
            upright = ImageOps.exif_transpose(opened).convert("RGBA" if channels == 3 else "LA")
            alpha = upright.getchannel("A")
            colour = _to_rgb_or_l(upright.convert("RGB" if channels == 3 else "L"), name)
            return colour, alpha
    except BadImageError:
        raise
    except Exception as error:
        reason = str(error) or type(error).__name__
        if os.path.exists(name) and os.path.getsize(name) == 0:
            reason = "the file is empty (0 bytes)"
        raise BadImageError(name, reason) from error


@dataclass
class Translator:
    """One generator, ready to translate: call it on a PIL image, a tensor or a file path.

    ``tile``: ``None`` (whole image unless it would not fit in memory, then tiled automatically),
    ``0`` (always whole) or the kept-tile side in pixels; ``tile_overlap``: context pixels per side
    (default: the generator's receptive-field reach); ``stats``: how tiles share norm statistics
    (:data:`cyclegan.inference.tiling.STATS_MODES`).
    """

    net: nn.Module
    input_nc: int = 3
    output_nc: int = 3
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fake_label: str = "fake_B"
    tile: int | None = None
    tile_overlap: int | None = None
    stats: str = "exact"
    info: dict[str, Any] = field(default_factory=dict)
    _tiled: dict[tuple[int, int | None], Any] = field(default_factory=dict, repr=False)
    _margin: int | None = field(default=None, repr=False)  # the generator's reach: measured once
    precision: str = "fp32"  # fp32 | bf16 | auto (see whole())
    backend: str = "torch"  # torch | onnxruntime | openvino | auto
    _fastest: FastestPath | None = field(default=None, repr=False)  # auto: the chosen path per picture size

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], epoch: str = "latest", direction: str = "AtoB",
                 flags: TrainConfig | None = None, device: str | torch.device = "cpu", model: str | None = None,
                 **options: Any) -> Translator:
        """The network of ``run_dir`` that translates ``direction``, as the run's recipe declares it
        (``TrainingRecipe.directions``): G_A / G_B of a CycleGAN run, G of pix2pix, CUT or colorization,
        from our checkpoint (``<epoch>.safetensors``) or the reference's ``<epoch>_net_<name>.pth``.

        ``model``: the reference's ``--model``: ``test`` (one bare ``<epoch>_net_G.pth``, architecture
        from ``flags``), a recipe name (it must be the run's), or None (the run's own; a folder holding
        ``<epoch>_net_G.pth`` but not its recipe's files is read as ``test``). A one-direction run asked
        for the other direction says which one it has.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"--direction must be AtoB or BtoA, got {direction!r}")
        run_dir, device = Path(run_dir), torch.device(device)
        if model == "test" or (model is None and is_lone_generator(run_dir, epoch, flags)):
            if direction != "AtoB":
                raise ValueError(f"{run_dir / f'{epoch}_net_G.pth'} is a single generator (A→B only, the "
                                 f"reference's --model test): drop --direction {direction}")
            loaded = load_generators(run_dir, epoch, names=("G",), flags=flags, device=device)
            config, net_name, fake_label = loaded.config, "G", "fake"
            codec = ImageCodec(config.data.input_nc, config.data.output_nc)
            available: tuple[str, ...] = ("AtoB",)
        else:
            config = run_config(run_dir, epoch, flags)
            if model is not None and model != config.model.model:
                raise ValueError(f"{run_dir} holds a {config.model.model} run, not {model}: use --model "
                                 f"{config.model.model} (or --model test for a lone generator)")
            recipe = MODELS.get(config.model.model)
            chosen = recipe.direction(direction)
            loaded = load_generators(run_dir, epoch, names=(chosen.net,), flags=flags, device=device)
            config, net_name, fake_label = loaded.config, chosen.net, chosen.labels[1]
            codec = recipe.image_codec(config, chosen)
            available = tuple(d.name for d in recipe.directions)
        model_config = config.model
        info = {"name": run_dir.name, "model": config.model.model if model != "test" else "test",
                "generator": net_name, "direction": direction, "directions": available,
                "netG": model_config.netG, "ngf": model_config.ngf, "norm": model_config.norm,
                "weights": ", ".join(str(p) for p in loaded.source)}
        info.update(validation_scores(run_dir))
        net = picture_network(loaded.nets[net_name], codec)
        return cls(net, codec.read_nc, codec.image_nc, device, fake_label, info=info, **options)

    # --- tensors ---------------------------------------------------------------------------------

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """N×C×H×W in [-1, 1] → N×C'×H×W in [-1, 1], any H, W."""
        if x.dim() == 3:
            return self.translate_tensor(x.unsqueeze(0), progress)[0]
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise TranslateError(f"expected an N×{self.input_nc}×H×W tensor, got shape {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        height, width = x.shape[-2:]
        small = self.min_side()
        if height < small or width < small:  # pad the edge pixels out; crop the output back
            x = F.pad(x, (0, max(0, small - width), 0, max(0, small - height)), mode="replicate")
        tile = self.tile_for(x.shape[-2], x.shape[-1])
        if tile is None:
            out = self.whole(x)
        else:  # tiles run the torch network: the tiler streams its norm statistics layer by layer
            out = self.tiled(tile, progress)(x)
        return out[..., :height, :width]

    def whole(self, x: torch.Tensor) -> torch.Tensor:
        """One network call on the whole batch, by the path ``precision`` / ``backend`` name: torch fp32
        as it is; ``auto`` measures the paths on this input once per picture size (and the cache keeps
        the choice for the next run) and says in one line what it chose and why."""
        if self._fastest is None:
            key = network_key(self.net, **{k: self.info.get(k) for k in ("netG", "ngf", "norm")})
            self._fastest = FastestPath(self.net, self.device, self.precision, self.backend, key)
        return self._fastest(x)

    def min_side(self) -> int:
        # Reflection padding inside the network needs every feature map at least 2 pixels a side.
        multiple = getattr(self.net, "size_multiple", 1)
        return max(8, multiple * 2) if multiple < 64 else multiple

    def margin(self) -> int:
        """Context pixels per tile side: ``tile_overlap``, else the generator's receptive-field reach."""
        if self.tile_overlap is not None:
            return self.tile_overlap
        if self._margin is None:
            self._margin = default_margin(inner_network(self.net))
        return self._margin

    def tile_for(self, height: int, width: int) -> int | None:
        if self.tile == 0:
            return None
        if self.tile is not None:
            return self.tile
        margin = self.margin()
        tile = choose_tile(self.net, height, width, margin, self.device)
        if tile is not None:
            log.info("%d×%d does not fit in memory whole: tiles of %d px (+%d px margins)", width, height, tile, margin)
        return tile

    def tiled(self, tile: int, progress: Callable[[int, int], None] | None = None):
        key = (tile, self.tile_overlap)
        if key not in self._tiled:
            self._tiled[key] = TiledGenerator(self.net, tile, self.margin(), stats=self.stats)
        tiled = self._tiled[key]
        tiled.progress = progress
        return tiled

    # --- images ----------------------------------------------------------------------------------

    def translate_image(self, image: Image.Image, alpha: Image.Image | None = None,
                        progress: Callable[[int, int], None] | None = None) -> Image.Image:
        """A PIL image (any mode) → its translation; an alpha channel (given, or the image's own) is kept.
        ``progress(done, total)`` hears of each network call when the image is tiled."""
        if alpha is None and image.mode in ("RGBA", "LA", "PA"):
            alpha = image.getchannel("A")
        colour = _to_rgb_or_l(image.convert("RGBA") if image.mode == "PA" else image, "<image>")
        colour = colour.convert("RGB" if self.input_nc == 3 else "L")
        x = TF.to_dtype(TF.to_image(colour), torch.float32, scale=True).unsqueeze(0) * 2 - 1
        out = tensor_to_image(self.translate_tensor(x, progress)[0].cpu())
        if alpha is not None:
            out = out.convert("RGBA" if out.mode == "RGB" else "LA")
            out.putalpha(alpha)
        return out

    def __call__(self, item: Image.Image | torch.Tensor | str | os.PathLike[str]) -> Image.Image | torch.Tensor:
        """PIL image → PIL image; tensor in [-1, 1] → tensor; file path → PIL image."""
        if isinstance(item, torch.Tensor):
            return self.translate_tensor(item)
        if isinstance(item, Image.Image):
            return self.translate_image(item)
        colour, alpha = read_image(item, self.input_nc)
        return self.translate_image(colour, alpha)

    def translate_file(self, source: Path, out_dir: Path, show_progress: bool = False) -> Path:
        """Translate one image file into ``out_dir/<stem>_<fake_label><ext>`` (written atomically);
        ``show_progress``: a bar over the network calls of a tiled image (a large one can take hours)."""
        colour, alpha = read_image(source, self.input_nc)
        suffix = source.suffix.lower()
        if alpha is not None and suffix not in ALPHA_FORMATS:
            alpha = None
        with tqdm(desc=source.name[:40], unit="window", disable=not show_progress, delay=2, leave=False) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            out = self.translate_image(colour, alpha, progress)
        target = out_dir / f"{source.stem}_{self.fake_label}{source.suffix}"
        image_format = Image.registered_extensions().get(suffix, "PNG")
        options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
        atomic_write(target, lambda handle: out.save(handle, format=image_format, **options))
        return target


def validation_scores(run_dir: Path) -> dict[str, Any]:
    """The run's last validation scores (``val_scores.json``), prefixed ``val_``; {} when absent."""
    try:
        last = read_val_scores(run_dir / "val_scores.json")[-1]
    except (OSError, ValueError, IndexError):
        return {}
    return {f"val_{key}" if not key.startswith("val_") else key: value for key, value in last.items()
            if isinstance(value, (int, float)) and key not in ("iter",)}


__all__ = [
    "DIRECTIONS",
    "TranslateError",
    "Translator",
    "read_image",
    "validation_scores",
]
