"""Translate images of any size in bounded memory, without seams: tiles that share whole-image statistics.

Cutting an image into tiles and running an instance-norm generator on each is wrong twice:

1. each tile normalises with its own per-channel mean and variance, so tiles differ in tone;
2. a tile's border lacks the context the network sees in the whole image, so seams appear.

Here (:class:`TiledGenerator`) every tile is a window with a *margin* of context on each side, at
least the generator's receptive-field reach (:func:`receptive_reach`), and only its centre is kept:
with the margin that large, the centre's values are exactly those of the whole-image pass. And every
norm layer that normalises with statistics of its input (``InstanceNorm2d``, ``BatchNorm2d`` in
train mode or without running statistics) is replaced, in a copy of the network, by
:class:`SharedStatsNorm`, which normalises every tile with the same per-layer statistics gathered
for the whole image. Where those statistics come from (``stats=``):

- ``"exact"`` (default): streamed, layer by layer. Pass k runs the tiles up to the k-th norm (the
  earlier ones already fixed), sums x and x² over every tile's kept centre, and stops. Equal to the
  whole-image output up to float rounding: the only mode that reaches the seam-free goal
  (``benchmarks/translate_tiled.py`` measures them all), so the default. Run naively that is one
  partial pass per norm, about ``n_norms / 2`` full passes; for a ResNet generator, whose body is a
  flat ``Sequential``, the whole image's activation is kept (:func:`plan_exact_passes`) after each
  block whose statistics are known, when it fits in the memory given to it, so that later passes
  start there: about three full passes for resnet_9blocks instead of twelve.
- ``"downscaled"``: one whole pass over a copy downscaled to at most ``stats_size`` pixels a side:
  one cheap pass, but instance-norm statistics depend on the resolution.
- ``"sampled"``: the exact layer-by-layer procedure over an evenly spread ``sample_fraction`` of
  the tiles.
- ``"own"``: every tile its own statistics (naive tiling, kept for comparison).

Eval-mode batch norm uses its running statistics and norm ``none`` has none: tiles only need the
margin there. Tile offsets are multiples of the generator's size multiple, so strided layers see the
same grid as in the whole image.

This module plans the tiles and runs them; the stand-in norm layer, the statistics it gathers and
the receptive reach live in :mod:`cyclegan.inference.tile_stats`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.inference.tile_stats import (
    Region,
    SharedStatsNorm,
    StopForward,
    default_margin,
    normalises_with_input_stats,
    receptive_reach,
    with_shared_stats,
)
from cyclegan.networks.generators import ResnetGenerator, pad_to_multiple

log = logging.getLogger(__name__)

STATS_MODES = ("exact", "sampled", "downscaled", "own")


# --- tiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """A window of the (padded) image and the centre of it that is kept, in image pixels."""

    top: int
    left: int
    bottom: int
    right: int
    keep_top: int
    keep_left: int
    keep_bottom: int
    keep_right: int

    def region(self) -> Region:
        return Region(self.keep_top - self.top, self.keep_left - self.left, self.keep_bottom - self.top,
                       self.keep_right - self.left, self.bottom - self.top, self.right - self.left)


def plan_tiles(height: int, width: int, tile: int, margin: int) -> list[Tile]:
    """Kept centres of ``tile`` pixels covering H×W once, each with up to ``margin`` pixels of context."""
    if tile <= 0 or margin < 0:
        raise ValueError(f"tile must be > 0 and tile_overlap >= 0, got {tile} and {margin}")
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            tiles.append(Tile(max(0, top - margin), max(0, left - margin), min(height, bottom + margin),
                              min(width, right + margin), top, left, bottom, right))
    return tiles


def sample_tiles(tiles: list[Tile], fraction: float) -> list[Tile]:
    """About ``fraction`` of the tiles, evenly spread over the image (the first and last included)."""
    count = max(1, min(len(tiles), math.ceil(fraction * len(tiles))))
    if count == len(tiles):
        return tiles
    step = (len(tiles) - 1) / max(1, count - 1)
    return [tiles[round(i * step)] for i in range(count)]


# --- memory --------------------------------------------------------------------------------------


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free for tensors: the GPU's free memory, or the system's MemAvailable."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return int(pages * page_size)


@torch.no_grad()
def bytes_per_pixel(net: nn.Module, element_size: int = 4) -> float:
    """Estimated peak activation bytes per input pixel of a whole-image pass.

    Traces one small forward and takes the largest (input + output) of any leaf layer, per input
    pixel, times two for the allocator's and the convolution kernels' own buffers.
    """
    multiple = getattr(net, "size_multiple", 1)
    side = max(multiple * 2, 64)
    largest = 0

    def hook(module, inputs, output):
        nonlocal largest
        size_in = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))
        size_out = output.numel() if isinstance(output, torch.Tensor) else 0
        largest = max(largest, size_in + size_out)

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        parameter = next(net.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        net(torch.zeros(1, getattr(net, "input_nc", 3), side, side, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * largest * element_size / (side * side)


def choose_tile(net: nn.Module, height: int, width: int, margin: int, device="cpu",
                budget: int | None = None) -> int | None:
    """``None`` when the whole image fits in half the available memory, else a kept-tile size that fits.

    The window (tile + 2 × margin) is sized to a quarter of the available memory, at most 2 GiB of
    activations: larger windows waste less compute on margins but gain little past that.
    """
    per_pixel = bytes_per_pixel(net)
    free = available_memory(device) if budget is None else budget
    if height * width * per_pixel <= free / 2:
        return None
    multiple = getattr(net, "size_multiple", 1)
    window = int(math.sqrt(min(free / 4, 2 * 1024**3) / per_pixel))
    tile = (window - 2 * margin) // multiple * multiple
    if tile < multiple:
        raise MemoryError(
            f"not enough memory for one tile: {free / 1024**3:.1f} GiB free, a window of {2 * margin + multiple} px "
            f"needs about {(2 * margin + multiple) ** 2 * per_pixel / 1024**3:.1f} GiB"
        )
    return tile


# --- cached activations (exact mode) ---------------------------------------------------------------


@dataclass(frozen=True)
class Pass:
    """One tiled pass over ``body[start:stop]``: ``gather`` stops at the first norm without statistics
    and keeps nothing; otherwise the pass keeps its output (the next passes' source, or the result)."""

    start: int
    stop: int
    gather: bool


@dataclass(frozen=True)
class Layer:
    """What planning needs of one module of the generator's body."""

    norms: int  # statistic-taking norms inside it
    convolves: bool  # holds a convolution (worth not recomputing)
    channels: int  # of its output
    scale: Fraction | None  # output side / input side of the body; None where not proportional (padding)


def plan_exact_passes(layers: list[Layer], pixels: int, tile: int, margin: int, budget: float) -> list[Pass]:
    """The passes of an exact run over a flat body: one gather pass per norm, from the latest kept
    activation, and a kept pass after each layer at the body's coarsest scale (a ResNet's blocks)
    that is followed by a convolving layer, when a later layer still needs statistics, the tile and
    margin are whole pixels there and its ``channels × pixels × scale² × 4`` bytes fit in ``budget``.
    Only the coarsest scale: there the recomputation saved is largest and the activation smallest.
    """
    coarsest = min((layer.scale for layer in layers if layer.scale is not None), default=None)
    passes, start = [], 0
    for j, layer in enumerate(layers):
        passes += [Pass(start, len(layers), gather=True)] * layer.norms
        rest = layers[j + 1 :]
        keep = (
            layer.scale is not None
            and layer.scale == coarsest
            and any(later.norms for later in rest)
            and rest[0].convolves
            and (tile * layer.scale).denominator == 1
            and (margin * layer.scale).denominator == 1
            and layer.channels * pixels * layer.scale**2 * 4 <= budget
        )
        if keep:
            passes.append(Pass(start, j + 1, gather=False))
            start = j + 1
    passes.append(Pass(start, len(layers), gather=False))
    return passes


# --- the tiled generator -------------------------------------------------------------------------


class TiledGenerator:
    """Calls a generator tile by tile, with whole-image statistics; same input / output as the generator.

    ``tile``: the side of the output tile each network call keeps (a multiple of the generator's
    size multiple); ``margin``: context pixels on each side (default: the receptive-field reach);
    ``stats``: one of :data:`STATS_MODES` (see the module docstring); ``stats_size``: the long side
    of the downscaled copy; ``cache_budget``: bytes the exact mode may hold per kept activation
    (default: a quarter of the available memory; 0 recomputes instead). ``progress`` is called with
    (network calls done, calls in total) for each image.
    """

    def __init__(self, net: nn.Module, tile: int, margin: int | None = None, stats: str = "exact",
                 stats_size: int = 1024, sample_fraction: float = 0.25,
                 progress: Callable[[int, int], None] | None = None, cache_budget: float | None = None) -> None:
        if stats not in STATS_MODES:
            raise ValueError(f"unknown statistics mode {stats!r}; known: {', '.join(STATS_MODES)}")
        self.multiple = getattr(net, "size_multiple", 1)
        self.margin = default_margin(net) if margin is None else margin
        if tile % self.multiple or self.margin % self.multiple:
            raise ValueError(
                f"--tile ({tile}) and --tile_overlap ({self.margin}) must be multiples of {self.multiple} for "
                f"{type(net).__name__} (its strided layers must see the whole image's grid)"
            )
        if not 0 < sample_fraction <= 1:
            raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
        self.net, self.tile, self.stats, self.progress = net, tile, stats, progress
        self.stats_size, self.sample_fraction, self.cache_budget = stats_size, sample_fraction, cache_budget
        self.shared, self.session, self.n_norms = with_shared_stats(net)
        self.shared.eval()
        for module in self.shared.modules():
            if hasattr(module, "pad_to_multiple"):
                module.pad_to_multiple = True
        self.layers = self._body_layers() if self.n_norms and stats == "exact" else None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(x[i : i + 1]) for i in range(x.shape[0])])

    def _one(self, image: torch.Tensor) -> torch.Tensor:  # 1×C×H×W
        padded, height, width = pad_to_multiple(image, self.multiple)
        tiles = plan_tiles(padded.shape[-2], padded.shape[-1], self.tile, self.margin)
        self.session.stats = [None] * self.n_norms
        self._calls = 0
        if self.layers is not None:
            budget = available_memory(padded.device) / 4 if self.cache_budget is None else self.cache_budget
            passes = plan_exact_passes(self.layers, padded.shape[-2] * padded.shape[-1], self.tile, self.margin,
                                       budget)
            self._total = len(passes) * len(tiles)
            output = self._run_passes(padded, passes)
            if getattr(self.net, "residual_output", False):  # the passes run the layer stack, not body()
                output = self.shared.add_input(output, padded)
        else:
            gathered = []
            if self.n_norms and self.stats == "downscaled":
                self._downscaled_stats(padded)
            if self.n_norms and self.stats in ("exact", "sampled"):
                gathered = tiles if self.stats == "exact" else sample_tiles(tiles, self.sample_fraction)
            self._total = self.n_norms * len(gathered) + len(tiles)
            for _ in range(self.n_norms if gathered else 0):
                self._run_tiles(self.shared, padded, gathered, gather="first_unknown")
            output = self._run_tiles(self.shared, padded, tiles, keep_output=True)
        return output[..., :height, :width]

    def _body_layers(self) -> list[Layer] | None:
        """Per-module facts of a ResNet generator's flat body (None for other generators: U-Net nests)."""
        if not isinstance(self.net, ResnetGenerator):
            return None
        body, side = self.shared.model, self.multiple * 8
        sizes: list[list[torch.Size]] = [[], []]
        parameter = next(self.shared.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        try:
            self.session.start(None)
            for probe, side_of_probe in enumerate((side, 2 * side)):  # two sizes tell scaling from padding
                handles = [module.register_forward_hook(lambda _m, _i, out, k=probe: sizes[k].append(out.shape))
                           for module in body]
                try:
                    body(torch.zeros(1, self.net.input_nc, side_of_probe, side_of_probe, device=device))
                finally:
                    for handle in handles:
                        handle.remove()
        finally:
            self.session.region = None
        layers = []
        for module, small, large in zip(body, *sizes, strict=True):
            scale = Fraction(small[-1], side)
            layers.append(Layer(norms=sum(isinstance(m, SharedStatsNorm) for m in module.modules()),
                                convolves=any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules()),
                                channels=small[1], scale=scale if large[-1] == 2 * small[-1] else None))
        return layers

    def _run_passes(self, padded: torch.Tensor, passes: list[Pass]) -> torch.Tensor:
        body, source, scale = self.shared.model, padded, Fraction(1)
        for step in passes:
            tiles = plan_tiles(source.shape[-2], source.shape[-1], int(self.tile * scale), int(self.margin * scale))
            net = body[step.start : step.stop]
            if step.gather:
                self._run_tiles(net, source, tiles, gather="first_unknown")
            else:
                result = self._run_tiles(net, source, tiles, keep_output=True)
                scale *= Fraction(result.shape[-1], source.shape[-1])
                source = result
        return source

    def _downscaled_stats(self, padded: torch.Tensor) -> None:
        height, width = padded.shape[-2:]
        scale = min(1.0, self.stats_size / max(height, width))
        small_h = max(self.multiple, round(height * scale / self.multiple) * self.multiple)
        small_w = max(self.multiple, round(width * scale / self.multiple) * self.multiple)
        small = padded if (small_h, small_w) == (height, width) else F.interpolate(
            padded, size=(small_h, small_w), mode="bilinear", antialias=True, align_corners=False)
        self.session.region = None
        self.session.start(gather="all")
        self.shared(small)
        self.session.finish()

    def _run_tiles(self, net: nn.Module, source: torch.Tensor, tiles: list[Tile], gather: str | None = None,
                   keep_output: bool = False) -> torch.Tensor | None:
        """Runs ``net`` on every tile's window of ``source``; with ``keep_output``, returns the kept
        centres put together (at the output's own scale, which may differ from the source's)."""
        session = self.session
        session.start(gather)
        output = None
        for tile in tiles:
            session.region = region = tile.region()
            window = source[..., tile.top : tile.bottom, tile.left : tile.right]
            try:
                result = net(window)
            except StopForward:
                result = None
            if keep_output:
                assert result is not None
                ratio = Fraction(result.shape[-1], window.shape[-1])
                if output is None:
                    output = source.new_empty(1, result.shape[1], *(int(n * ratio) for n in source.shape[-2:]))
                rows = slice(int(tile.keep_top * ratio), int(tile.keep_bottom * ratio))
                cols = slice(int(tile.keep_left * ratio), int(tile.keep_right * ratio))
                output[..., rows, cols] = result[..., int(region.top * ratio) : int(region.bottom * ratio),
                                                 int(region.left * ratio) : int(region.right * ratio)]
            self._calls += 1
            if self.progress is not None:
                self.progress(self._calls, self._total)
        session.region = None
        session.finish()
        return output


__all__ = [
    "STATS_MODES",
    "Layer",
    "Pass",
    "SharedStatsNorm",
    "Tile",
    "TiledGenerator",
    "available_memory",
    "bytes_per_pixel",
    "choose_tile",
    "default_margin",
    "normalises_with_input_stats",
    "plan_exact_passes",
    "plan_tiles",
    "receptive_reach",
    "with_shared_stats",
]
