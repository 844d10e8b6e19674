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
  earlier ones already fixed), sums x and x² over every tile's kept centre, and stops. One partial
  pass per norm layer, about ``n_norms / 2`` full passes of compute; equal to the whole-image
  output up to float rounding. The only mode that reaches the seam-free goal
  (``benchmarks/translate_tiled.py`` measures them all), so the default.
- ``"downscaled"``: one whole pass over a copy downscaled to at most ``stats_size`` pixels a side:
  one cheap pass, but instance-norm statistics depend on the resolution.
- ``"sampled"``: the exact layer-by-layer procedure over an evenly spread ``sample_fraction`` of
  the tiles.
- ``"own"``: every tile its own statistics (naive tiling, kept for comparison).

Eval-mode batch norm uses its running statistics and norm ``none`` has none: tiles only need the
margin there. Tile offsets are multiples of the generator's size multiple, so strided layers see the
same grid as in the whole image.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.backends import pad_to_multiple

log = logging.getLogger(__name__)

STATS_MODES = ("exact", "sampled", "downscaled", "own")


def receptive_reach(net: nn.Module) -> int:
    """How many input pixels away a generator's output pixel can be influenced: (RF − 1) / 2, rounded up."""
    from cyclegan.inspect_net import inspect_network

    side = max(getattr(net, "size_multiple", 1) * 2, 32)
    report = inspect_network(net, (1, getattr(net, "input_nc", 3), side, side), effective=False)
    return math.ceil((report.receptive_field - 1) / 2)


def default_margin(net: nn.Module) -> int:
    """The receptive-field reach rounded up to the generator's size multiple (tile offsets must align)."""
    multiple = getattr(net, "size_multiple", 1)
    return math.ceil(receptive_reach(net) / multiple) * multiple


def normalises_with_input_stats(module: nn.Module) -> bool:
    """True for norm layers whose output depends on the statistics of their own input."""
    if isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)):
        return module.training or not module.track_running_stats
    return False


# --- the stand-in norm layer ---------------------------------------------------------------------


class _StopForward(Exception):
    """Raised by the norm being measured in an ``exact`` pass: the rest of the network is not needed."""


@dataclass
class _Region:
    """The kept centre of a window, in window pixels: rows [top, bottom), columns [left, right)."""

    top: int
    left: int
    bottom: int
    right: int
    window_height: int
    window_width: int


class _Moments:
    """Per-channel sums of x and x² in float64 (so E[x²] − E[x]² does not cancel badly)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.total_sq: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, x: torch.Tensor) -> None:  # x: N×C×h×w
        values = x.detach().double()
        self.total = self.total + values.sum(dim=(0, 2, 3))
        self.total_sq = self.total_sq + values.square().sum(dim=(0, 2, 3))
        self.count += x.shape[0] * x.shape[2] * x.shape[3]

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count == 0:
            raise RuntimeError("no values were gathered for this norm layer")
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean.square()).clamp_min(0)  # biased, as instance norm uses
        return mean.float(), var.float()


class _StatsSession:
    """What the stand-in norms do during one pass: which statistics to use, what to gather."""

    def __init__(self, n_norms: int) -> None:
        self.stats: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_norms
        # "all": every norm gathers its input's moments; "first_unknown": the first norm in execution
        # order without statistics gathers, then the pass stops (an exact pass); None: no gathering.
        self.gather: str | None = None
        self.region: _Region | None = None
        self.moments: dict[int, _Moments] = {}

    def start(self, gather: str | None) -> None:
        self.gather, self.moments = gather, {}

    def wants(self, index: int) -> bool:
        return self.gather == "all" or (self.gather == "first_unknown" and self.stats[index] is None)

    def finish(self) -> None:
        for index, moments in self.moments.items():
            self.stats[index] = moments.mean_var()
        self.gather, self.moments = None, {}


class SharedStatsNorm(nn.Module):
    """Normalises with per-channel statistics given for the whole image instead of the input's own.

    Keeps the replaced layer's ``eps`` and affine parameters. With no statistics set it normalises
    with the input's own (what the replaced layer did).
    """

    def __init__(self, original: nn.Module, index: int, session: _StatsSession) -> None:
        super().__init__()
        self.index = index
        self.eps = original.eps
        self.weight = original.weight if getattr(original, "affine", False) else None
        self.bias = original.bias if getattr(original, "affine", False) else None
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self.session
        if session.wants(self.index):
            region = session.region
            if region is None:
                kept = x
            else:
                scale_h, scale_w = x.shape[-2] / region.window_height, x.shape[-1] / region.window_width
                kept = x[..., round(region.top * scale_h) : round(region.bottom * scale_h),
                         round(region.left * scale_w) : round(region.right * scale_w)]
            session.moments.setdefault(self.index, _Moments()).add(kept)
            if session.gather == "first_unknown":
                raise _StopForward
        stats = session.stats[self.index]
        if stats is None:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
        else:
            mean, var = (s.to(x.device).view(1, -1, 1, 1) for s in stats)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def with_shared_stats(net: nn.Module) -> tuple[nn.Module, _StatsSession, int]:
    """A copy of ``net`` whose statistic-taking norms are :class:`SharedStatsNorm`; (copy, session, count)."""
    clone = copy.deepcopy(net)
    targets = [(name, module) for name, module in clone.named_modules() if normalises_with_input_stats(module)]
    session = _StatsSession(len(targets))
    for index, (name, module) in enumerate(targets):
        parent_name, _, child = name.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        setattr(parent, child, SharedStatsNorm(module, index, session))
    return clone, session, len(targets)


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

    def region(self) -> _Region:
        return _Region(self.keep_top - self.top, self.keep_left - self.left, self.keep_bottom - self.top,
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


# --- the tiled generator -------------------------------------------------------------------------


class TiledGenerator:
    """Calls a generator tile by tile, with whole-image statistics; same input / output as the generator.

    ``tile``: the side of the output tile each network call keeps (a multiple of the generator's
    size multiple); ``margin``: context pixels on each side (default: the receptive-field reach);
    ``stats``: one of :data:`STATS_MODES` (see the module docstring); ``stats_size``: the long side
    of the downscaled copy. ``progress`` is called with (tiles done, tiles in total) per pass.
    """

    def __init__(self, net: nn.Module, tile: int, margin: int | None = None, stats: str = "exact",
                 stats_size: int = 1024, sample_fraction: float = 0.25,
                 progress: Callable[[int, int], None] | None = None) -> None:
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
        self.stats_size, self.sample_fraction = stats_size, sample_fraction
        self.shared, self.session, self.n_norms = with_shared_stats(net)
        self.shared.eval()
        for module in self.shared.modules():
            if hasattr(module, "pad_to_multiple"):
                module.pad_to_multiple = True

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(x[i : i + 1]) for i in range(x.shape[0])])

    def _one(self, image: torch.Tensor) -> torch.Tensor:  # 1×C×H×W
        padded, height, width = pad_to_multiple(image, self.multiple)
        tiles = plan_tiles(padded.shape[-2], padded.shape[-1], self.tile, self.margin)
        session = self.session
        session.stats = [None] * self.n_norms
        if self.n_norms and self.stats == "downscaled":
            self._downscaled_stats(padded)
        if self.n_norms and self.stats in ("exact", "sampled"):
            gathered = tiles if self.stats == "exact" else sample_tiles(tiles, self.sample_fraction)
            for _ in range(self.n_norms):
                self._run_tiles(padded, gathered, gather="first_unknown")
        output = self._run_tiles(padded, tiles, keep_output=True)
        return output[..., :height, :width]

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

    def _run_tiles(self, padded: torch.Tensor, tiles: list[Tile], gather: str | None = None,
                   keep_output: bool = False) -> torch.Tensor | None:
        session = self.session
        session.start(gather)
        output = None
        for done, tile in enumerate(tiles, 1):
            session.region = tile.region()
            window = padded[..., tile.top : tile.bottom, tile.left : tile.right]
            try:
                result = self.shared(window)
            except _StopForward:
                result = None
            if keep_output:
                assert result is not None
                if output is None:
                    output = padded.new_empty(1, result.shape[1], *padded.shape[-2:])
                region = session.region
                output[..., tile.keep_top : tile.keep_bottom, tile.keep_left : tile.keep_right] = result[
                    ..., region.top : region.bottom, region.left : region.right]
            if self.progress is not None:
                self.progress(done, len(tiles))
        session.region = None
        session.finish()
        return output


__all__ = [
    "STATS_MODES",
    "SharedStatsNorm",
    "Tile",
    "TiledGenerator",
    "available_memory",
    "bytes_per_pixel",
    "choose_tile",
    "default_margin",
    "normalises_with_input_stats",
    "plan_tiles",
    "receptive_reach",
    "with_shared_stats",
]
