"""Whole-image norm statistics for tiles, and how far a generator's output pixel can reach.

The machinery behind :class:`cyclegan.inference.tiling.TiledGenerator` (whose docstring says why
and how tiles use it):

- :func:`receptive_reach` / :func:`default_margin`: the context a tile needs on each side so that
  its kept centre equals the whole-image pass;
- :func:`with_shared_stats`: a copy of a generator whose statistic-taking norm layers are
  :class:`SharedStatsNorm`, which normalises every tile with statistics given for the whole image,
  gathered through a :class:`StatsSession` over each tile's kept :class:`Region`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class _Footprint(nn.Module):
    """A convolution's geometry on one channel, every tap positive: where its output can depend on its input."""

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        super().__init__()
        self.conv = conv
        self.weight = torch.ones(1, 1, *conv.kernel_size, dtype=torch.float64) / math.prod(conv.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, x = self.conv, x.sum(1, keepdim=True)
        if isinstance(conv, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, self.weight, None, conv.stride, conv.padding, conv.output_padding, 1,
                                      conv.dilation)
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            return F.conv2d(x, self.weight, None, conv.stride, 0, conv.dilation)
        return F.conv2d(x, self.weight, None, conv.stride, conv.padding, conv.dilation)


_VALUE_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.ReLU, nn.LeakyReLU, nn.Tanh,
                 nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Dropout)


@torch.no_grad()
def receptive_reach(net: nn.Module) -> int:
    """How many input pixels away, in any direction, a generator's output pixel can depend on.

    Measured on the network's footprint: a one-channel float64 copy in which every convolution
    averages its taps and every norm and activation is the identity, so that every path adds a
    positive amount and a one-pixel impulse lights exactly the outputs it can influence (one impulse
    per phase of the strided layers). The chain arithmetic of ``inspect`` gives the receptive field's
    size, not where it sits: anti-aliased resampling (CUT) shifts it off centre, and tiles need both.
    """
    footprint = copy.deepcopy(net).cpu().double().eval()
    for name, module in list(footprint.named_modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, *_VALUE_LAYERS)):
            parent_name, _, child = name.rpartition(".")
            replacement = _Footprint(module) if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) else nn.Identity()
            setattr(footprint.get_submodule(parent_name) if parent_name else footprint, child, replacement)
        elif isinstance(getattr(module, "filt", None), torch.Tensor):  # anti-aliasing blur: one copy per channel
            module.filt = module.filt[:1].abs()
    multiple = getattr(net, "size_multiple", 1)
    if hasattr(footprint, "input_nc"):
        footprint.input_nc = 1
    # One impulse per phase of the strided layers, each in its own image; past 16 phases (U-Nets) one
    # image with a multiple×multiple square, whose reach, measured from its far edge, may exceed the
    # true one by up to multiple − 1 (a wider margin: still exact, a little slower).
    phases = range(multiple) if multiple <= 16 else [None]
    side = max(64, 4 * multiple)
    while True:
        start = side // 2 // multiple * multiple
        impulses = torch.zeros(len(phases), 1, side, side, dtype=torch.float64)
        for index, phase in enumerate(phases):
            span = slice(start, start + multiple) if phase is None else slice(start + phase, start + phase + 1)
            impulses[index, 0, span, span] = 1
        lit = footprint(impulses).sum(1) > 0
        reach = 0
        for index, phase in enumerate(phases):
            first, last = (start, start + multiple - 1) if phase is None else (start + phase, start + phase)
            rows, cols = lit[index].any(1).nonzero()[:, 0], lit[index].any(0).nonzero()[:, 0]
            reach = max(reach, last - int(rows.min()), int(rows.max()) - first, last - int(cols.min()),
                        int(cols.max()) - first)
        if reach < side // 2 - multiple - 1 or side >= 16384:
            return reach
        side *= 2


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


class StopForward(Exception):
    """Raised by the norm being measured in an ``exact`` pass: the rest of the network is not needed."""


@dataclass
class Region:
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


class StatsSession:
    """What the stand-in norms do during one pass: which statistics to use, what to gather."""

    def __init__(self, n_norms: int) -> None:
        self.stats: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_norms
        # "all": every norm gathers its input's moments; "first_unknown": the first norm in execution
        # order without statistics gathers, then the pass stops (an exact pass); None: no gathering.
        self.gather: str | None = None
        self.region: Region | None = None
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

    def __init__(self, original: nn.Module, index: int, session: StatsSession) -> None:
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
                raise StopForward
        stats = session.stats[self.index]
        if stats is None:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
        else:
            mean, var = (s.to(x.device).view(1, -1, 1, 1) for s in stats)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def with_shared_stats(net: nn.Module) -> tuple[nn.Module, StatsSession, int]:
    """A copy of ``net`` whose statistic-taking norms are :class:`SharedStatsNorm`; (copy, session, count)."""
    clone = copy.deepcopy(net)
    targets = [(name, module) for name, module in clone.named_modules() if normalises_with_input_stats(module)]
    session = StatsSession(len(targets))
    for index, (name, module) in enumerate(targets):
        parent_name, _, child = name.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        setattr(parent, child, SharedStatsNorm(module, index, session))
    return clone, session, len(targets)


__all__ = [
    "Region",
    "SharedStatsNorm",
    "StatsSession",
    "StopForward",
    "default_margin",
    "normalises_with_input_stats",
    "receptive_reach",
    "with_shared_stats",
]
