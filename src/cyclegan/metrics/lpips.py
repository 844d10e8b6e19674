"""LPIPS, the learned perceptual image distance (Zhang et al. 2018), from weights already on disk.

The network and the computation are the ``lpips`` package's (``lpips.LPIPS``, v0.1); what is ours is
where its weights come from, since ``lpips`` would fetch the backbone through torchvision. Nothing is
downloaded here. LPIPS needs two files:

* the **backbone**: torchvision's ImageNet classifier weights, e.g. ``alexnet-owt-7be5be79.pth``
  from ``https://download.pytorch.org/models/`` (``vgg16-397923af.pth`` for ``net="vgg"``,
  ``squeezenet1_1-b8a52dc0.pth`` for ``net="squeeze"``). Pass its path (``--lpips_weights``), or
  put it in ``$CYCLEGAN_CACHE/lpips/`` (default ``~/.cache/cyclegan/lpips/``); torch.hub's cache
  (``~/.cache/torch/hub/checkpoints/``, where torchvision saves it) is searched too.
* the **linear layers** calibrated on human judgements (v0.1, a few KB): the files the ``lpips``
  package ships (``lpips/weights/v0.1/alex.pth``); or a copy at ``<cache>/lpips/lpips_v0.1_alex.pth``;
  or a path passed as ``linear_weights``.

Both are read with ``torch.load(weights_only=True)``, so a file can never run code. Identical images
give exactly 0; the value is symmetric and non-negative (lower is closer).
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cyclegan.core.download import cache_dir
from cyclegan.core.fileio import load_tensor_dict

__all__ = [
    "BACKBONES",
    "LPIPS",
    "LPIPSWeightsMissing",
    "lpips_cache_dir",
    "resolve_lpips_backbone",
    "resolve_lpips_linear",
]

VERSION = "0.1"
DOWNLOAD_BASE = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class Backbone:
    """One LPIPS trunk: its torchvision constructor and weights file (lpips itself knows its layers)."""

    constructor: str  # name in torchvision.models
    filename: str  # torchvision's ImageNet weights file for it
    min_size: int  # smallest height/width the tapped layers accept

    @property
    def url(self) -> str:
        return f"{DOWNLOAD_BASE}/{self.filename}"


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone("alexnet", "alexnet-owt-7be5be79.pth", 31),
    "vgg": Backbone("vgg16", "vgg16-397923af.pth", 16),
    "squeeze": Backbone("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", 17),
}


class LPIPSWeightsMissing(FileNotFoundError):
    """An LPIPS weights file is not on disk; the message says which one and how to get it."""


def _backbone(net: str) -> Backbone:
    if net not in BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r}; choose from {list(BACKBONES)}")
    return BACKBONES[net]


def lpips_cache_dir() -> Path:
    """``$CYCLEGAN_CACHE/lpips`` if set, else ``~/.cache/cyclegan/lpips``."""
    return cache_dir() / "lpips"


def _linear_cache_name(net: str) -> str:
    return f"lpips_v{VERSION}_{net}.pth"


def _package_linear_path(net: str) -> Path | None:
    """``lpips/weights/v0.1/<net>.pth`` of an installed ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "weights" / f"v{VERSION}" / f"{net}.pth"
        if path.is_file():
            return path
    return None


def resolve_lpips_backbone(path: str | Path | None = None, net: str = "alex") -> Path:
    """The backbone weights file: ``path`` (a file, or a folder holding the torchvision file), else
    the first present of ``<cache>/lpips/<file>`` and torch.hub's ``checkpoints/<file>``.

    Raises :class:`LPIPSWeightsMissing` naming the file, its URL and where to put it.
    """
    bb = _backbone(net)
    how = (
        f"Download {bb.url} on a machine with network access and pass its path with --lpips_weights, "
        f"or copy it to {lpips_cache_dir() / bb.filename} (set CYCLEGAN_CACHE to use another cache folder)."
    )
    if path is not None:
        given = Path(path).expanduser()
        candidate = given / bb.filename if given.is_dir() else given
        if not candidate.is_file():
            raise LPIPSWeightsMissing(
                f"LPIPS backbone weights not found at {candidate} (from --lpips_weights): "
                f"LPIPS-{net} needs torchvision's {bb.constructor} ImageNet weights {bb.filename}. {how}"
            )
        return candidate
    candidates = [lpips_cache_dir() / bb.filename, Path(torch.hub.get_dir()) / "checkpoints" / bb.filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise LPIPSWeightsMissing(
        f"LPIPS-{net} needs torchvision's {bb.constructor} ImageNet weights ({bb.filename}), which are not "
        f"downloaded automatically. {how}\n  Looked in: {', '.join(str(c) for c in candidates)}"
    )


def resolve_lpips_linear(path: str | Path | None = None, net: str = "alex") -> Path:
    """The linear-layer (v0.1) weights: ``path``, else ``<cache>/lpips/lpips_v0.1_<net>.pth``, else the
    file shipped in the ``lpips`` pip package. Raises :class:`LPIPSWeightsMissing` when there is none."""
    _backbone(net)
    ship = f"lpips/weights/v{VERSION}/{net}.pth"
    how = (
        f"`pip install lpips` (it ships {ship}), or copy {ship} from "
        f"https://github.com/richzhang/PerceptualSimilarity to {lpips_cache_dir() / _linear_cache_name(net)}"
    )
    if path is not None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise LPIPSWeightsMissing(f"LPIPS linear-layer weights not found at {given}. Get them with {how}.")
        return given
    cached = lpips_cache_dir() / _linear_cache_name(net)
    if cached.is_file():
        return cached
    shipped = _package_linear_path(net)
    if shipped is not None:
        return shipped
    raise LPIPSWeightsMissing(f"LPIPS-{net} needs its linear-layer weights ({net}.pth, v{VERSION}): {how}.")


def _backbone_state(net: str, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                    path: Path) -> dict[str, torch.Tensor]:
    """lpips' ``net.slice<k>.N.*`` tensors from torchvision's ``features.N.*`` (lpips keeps torchvision's
    layer indices N in its slices), checked against the ``expected`` shapes. The classifier and the
    layers after the last tap are not read; a features-only dict (no ``features.`` prefix) works too."""
    bb = _backbone(net)
    features = {key.removeprefix("features."): value for key, value in state.items()}
    given = {key: features[key.split(".", 2)[2]] for key in expected if key.split(".", 2)[2] in features}
    missing = sorted(set(expected) - set(given))
    wrong = sorted(k for k in set(expected) & set(given) if given[k].shape != expected[k].shape)
    if missing or wrong:
        detail = f"missing {missing[:4]}" if missing else f"wrong shapes for {wrong[:4]}"
        raise ValueError(
            f"{path}: not torchvision {bb.constructor} weights as LPIPS-{net} needs ({detail}); "
            f"expected {bb.filename} from {bb.url}"
        )
    return given


def _linear_state(net: str, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                  path: Path) -> dict[str, torch.Tensor]:
    """The per-layer channel weights ``lin<k>.model.1.weight`` (shape ``(1, C, 1, 1)``), checked."""
    linear = {}
    for key, want in expected.items():
        w = state.get(key)
        if w is None or w.shape != want.shape:
            got = "missing" if w is None else f"shape {tuple(w.shape)}"
            raise ValueError(
                f"{path}: not LPIPS-{net} linear weights ({key}: {got}, expected {tuple(want.shape)}); "
                f"use lpips/weights/v{VERSION}/{net}.pth"
            )
        if not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"{path}: LPIPS linear weights must be finite and non-negative ({key})")
        linear[key] = w.to(torch.float32)
    return linear


class LPIPS(nn.Module):
    """LPIPS distance between images in [0, 1].

    ``LPIPS(backbone_weights=None, net="alex", linear_weights=None, device="cpu")``: the weights are
    resolved with :func:`resolve_lpips_backbone` and :func:`resolve_lpips_linear` (missing ones raise
    :class:`LPIPSWeightsMissing`). Calling it with two float images in [0, 1] (or ``uint8``) of the
    same shape, ``(N, 3, H, W)`` or ``(3, H, W)``, returns the distances as a float tensor of shape
    ``(N,)`` (0-d for a single image). Differentiable (usable as a loss); wrap in ``torch.no_grad()``
    to score. ``H, W`` must be at least ``BACKBONES[net].min_size`` (31 for alex).
    """

    def __init__(
        self,
        backbone_weights: str | Path | None = None,
        net: str = "alex",
        linear_weights: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        try:
            import lpips
        except ImportError as error:
            raise ImportError("LPIPS needs the lpips package: pip install 'cyclegan[lpips]' (or lpips)") from error
        self.net = net
        self.min_size = _backbone(net).min_size
        self.backbone_path = resolve_lpips_backbone(backbone_weights, net)
        self.linear_path = resolve_lpips_linear(linear_weights, net)
        backbone = load_tensor_dict(self.backbone_path, "LPIPS backbone weights")
        linear = load_tensor_dict(self.linear_path, "LPIPS linear weights")
        # On the meta device: no random init of weights that are all loaded below (and of torchvision's
        # large classifier, which lpips drops); lpips still calls torchvision's deprecated pretrained=False.
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        expected = network.state_dict()  # shapes only (meta tensors)
        state = {
            **_backbone_state(net, backbone, {k: v for k, v in expected.items() if k.startswith("net.")},
                              self.backbone_path),
            **_linear_state(net, linear, {k: v for k, v in expected.items() if re.match(r"lin\d", k)},
                            self.linear_path),
        }
        network = network.to_empty(device="cpu")
        network.scaling_layer = lpips.ScalingLayer()  # its constant buffers, lost on the meta device
        # Not strict: lpips lists its linear layers twice (lin<k> and lins.<k>, the same modules).
        unloaded = set(network.load_state_dict(state, strict=False).missing_keys)
        if any(not k.startswith(("lins.", "scaling_layer.")) for k in unloaded):  # another lpips layout
            raise RuntimeError(f"this lpips version has layers LPIPS cannot load: {sorted(unloaded)}")
        self.network = network.eval().requires_grad_(False).to(torch.device(device))

    def _prepare(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype == torch.uint8:
            img = img.float() / 255.0
        elif not img.is_floating_point():
            raise TypeError(f"LPIPS expects float images in [0, 1] or uint8, got {img.dtype}")
        return img.to(self.network.scaling_layer.shift.device, torch.float32)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        single = x.dim() == 3
        if single:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images (N, 3, H, W) or (3, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"LPIPS-{self.net} needs images of at least {self.min_size}x{self.min_size}, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        distance = self.network(self._prepare(x), self._prepare(y), normalize=True).flatten()  # (N, 1, 1, 1) -> (N,)
        return distance[0] if single else distance
