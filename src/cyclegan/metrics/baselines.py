"""Trivial baselines: what a score means only next to what doing (almost) nothing scores.

A PSNR of 12 dB says nothing by itself: on a data set whose targets are mostly one colour, a
constant image beats a model that learned the mapping's structure. Every place that shows a model's
PSNR / SSIM against the true translation also shows, on the same images:

* ``doing nothing``: the source image as it is;
* ``constant image``: every pixel the mean colour of the target domain;
* ``colour transfer``: the source domain's per-channel mean and standard deviation moved onto the
  target domain's (Reinhard et al. 2001, in RGB): one affine map per channel for the whole domain;
* ``histogram matching``: each channel mapped through the source domain's CDF and the target
  domain's inverse CDF: one monotone map per channel for the whole domain.

The two classical transfers are both kept (neither dominates: mean/std keeps smooth gradients,
histogram matching fits skewed palettes), and the headline is the margin over the *best* baseline,
in PSNR and in SSIM separately. Domain statistics come from the training folders (``trainA``,
``trainB``), which the model saw too; without a source folder the two transfers use each image's own
statistics instead (weaker on sets like ours, where one image's colours are not the domain's).
Without a target folder the statistics come from the ground truth itself, which favours the
baselines (an oracle); ``source`` in the statistics says which folder was used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cyclegan.data.images import list_images
from cyclegan.data.transforms import unit_image_tensor
from cyclegan.metrics.evaluate import split_label
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim

__all__ = [
    "BASELINES",
    "dataset_baselines",
    "DomainStatistics",
    "baseline_images",
    "folder_baselines",
    "format_comparison",
    "image_statistics",
    "margins",
    "page_items",
    "pooled_statistics",
    "score_baseline_pairs",
    "score_baselines",
    "domain_statistics",
]

_HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class DomainStatistics:
    """Per-channel statistics of a domain's pixels (values in [0, 1])."""

    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    cdf: torch.Tensor  # (C, 256): fraction of pixels <= each 8-bit level
    source: str  # where they came from, for the reader


def domain_statistics(folder: str | Path, channels: int = 3, limit: int | None = 500) -> DomainStatistics:
    """Mean, std and CDF per channel over (up to ``limit``) images of a domain's folder."""
    folder = Path(folder)
    paths, _ = list_images(folder, max_dataset_size=limit)  # raises DatasetError naming an empty folder
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    histogram = torch.zeros(channels, _HISTOGRAM_BINS, dtype=torch.float64)
    count = 0
    for path in paths:
        image = unit_image_tensor(path, channels)[0].to(torch.float64).flatten(1)  # (C, H*W)
        total += image.sum(1)
        total_sq += image.pow(2).sum(1)
        levels = (image * 255).round().long().clamp(0, 255)
        histogram.scatter_add_(1, levels, torch.ones_like(image))
        count += image.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(0).sqrt()
    cdf = histogram.cumsum(1) / count
    return DomainStatistics(mean.float(), std.float(), cdf.float(), str(folder))


def image_statistics(image: torch.Tensor, source: str = "image") -> DomainStatistics:
    """One image's own statistics: what the transfers use when the source domain is unknown."""
    flat = image.flatten(1)
    levels = (flat * 255).round().long().clamp(0, 255)
    histogram = torch.zeros(flat.shape[0], _HISTOGRAM_BINS).scatter_add_(1, levels, torch.ones_like(flat))
    return DomainStatistics(flat.mean(1), flat.std(1, unbiased=False), histogram.cumsum(1) / flat.shape[1], source)


def _colour_transfer(source: torch.Tensor, own: DomainStatistics, target: DomainStatistics) -> torch.Tensor:
    scale = (target.std / own.std.clamp_min(1e-6))[:, None, None]
    return ((source - own.mean[:, None, None]) * scale + target.mean[:, None, None]).clamp(0, 1)


def _histogram_match(source: torch.Tensor, own: DomainStatistics, target: DomainStatistics) -> torch.Tensor:
    """Each channel through its domain's CDF, then through the target's inverse CDF."""
    levels = (source * 255).round().long().clamp(0, 255).flatten(1)  # (C, H*W)
    quantile = own.cdf.gather(1, levels)
    matched = torch.stack([torch.searchsorted(target.cdf[c].contiguous(), quantile[c].contiguous())
                           for c in range(source.shape[0])])
    return (matched.clamp(0, 255).float() / 255).view_as(source)


# Each baseline is a pure function of (source image in [0, 1], source statistics, target statistics).
BASELINES: dict[str, Callable[[torch.Tensor, DomainStatistics, DomainStatistics], torch.Tensor]] = {
    "doing nothing": lambda source, own, target: source,
    "constant image": lambda source, own, target: target.mean[:, None, None].expand_as(source).clone(),
    "colour transfer": _colour_transfer,
    "histogram matching": _histogram_match,
}


def baseline_images(source: torch.Tensor, target: DomainStatistics,
                    source_domain: DomainStatistics | None = None) -> dict[str, torch.Tensor]:
    """Every baseline's output for one ``(C, H, W)`` source image in [0, 1]."""
    channels = target.mean.shape[0]
    if source.shape[0] != channels:  # e.g. grey -> colour: compare the grey levels in every channel
        source = source.mean(0, keepdim=True).expand(channels, -1, -1).contiguous()
        source_domain = None
    own = source_domain if source_domain is not None else image_statistics(source)
    return {name: fn(source, own, target) for name, fn in BASELINES.items()}


def pooled_statistics(images: Sequence[torch.Tensor], source: str) -> DomainStatistics:
    """Statistics pooled over in-memory ``(C, H, W)`` images in [0, 1] (e.g. the ground truths)."""
    return image_statistics(torch.cat([image.flatten(1) for image in images], dim=1)[:, None, :], source)


def score_baseline_pairs(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], target: DomainStatistics,
                         source_domain: DomainStatistics | None = None) -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM of every baseline over ``(source, truth)`` pairs of ``(C, H, W)`` images in [0, 1]."""
    if not pairs:
        raise ValueError("no (source, truth) pairs to score the baselines on")
    sums = {name: {"psnr": 0.0, "ssim": 0.0} for name in BASELINES}
    for source, truth in pairs:
        if source.shape[-2:] != truth.shape[-2:]:
            source = F.interpolate(source[None], size=truth.shape[-2:], mode="bicubic", antialias=True)[0].clamp(0, 1)
        for name, image in baseline_images(source, target, source_domain).items():
            sums[name]["psnr"] += min(float(psnr(image, truth)), PSNR_CAP_DB)
            sums[name]["ssim"] += float(ssim(image, truth))
    return {name: {k: v / len(pairs) for k, v in scores.items()} for name, scores in sums.items()}


def score_baselines(
    sources: Sequence[Path], truths: Sequence[Path], target: DomainStatistics,
    source_domain: DomainStatistics | None = None, input_nc: int = 3,
) -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM of every baseline against the true translations, file pair by file pair."""
    if len(sources) != len(truths) or not sources:
        raise ValueError(f"need as many sources as truths, and at least one (got {len(sources)}, {len(truths)})")
    pairs = [(unit_image_tensor(Path(source), input_nc)[0], unit_image_tensor(Path(truth), target.mean.shape[0])[0])
             for source, truth in zip(sources, truths, strict=True)]
    return score_baseline_pairs(pairs, target, source_domain)


def margins(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The model's margin over the best baseline, per metric, and which baseline that was."""
    out: dict[str, Any] = {}
    for metric in ("psnr", "ssim"):
        if metric not in model or not baselines:
            continue
        best = max(baselines, key=lambda name: baselines[name][metric])
        out[f"best_baseline_{metric}"] = best
        out[f"margin_{metric}"] = float(model[metric]) - baselines[best][metric]
    return out


def page_items(model: Mapping[str, float], comparison: Mapping[str, Any] | None,
               model_label: str = "model") -> dict[str, Any]:
    """Ordered ``{label: value}`` rows for a page: the model, each baseline, then the margins."""
    items: dict[str, Any] = {f"PSNR {model_label} (dB)": model["psnr"], f"SSIM {model_label}": model["ssim"]}
    if not comparison:
        return items
    baselines = comparison["baselines"]
    for name, scores in baselines.items():
        items[f"PSNR {name} (dB)"] = scores["psnr"]
        items[f"SSIM {name}"] = scores["ssim"]
    found = margins(model, baselines)
    items[f"margin over the best baseline ({found['best_baseline_psnr']}), PSNR (dB)"] = found["margin_psnr"]
    items[f"margin over the best baseline ({found['best_baseline_ssim']}), SSIM"] = found["margin_ssim"]
    return items


def format_comparison(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                      label: str = "model") -> str:
    """A console table: the model's PSNR / SSIM, each baseline's, then the margin line."""
    width = max(len(label), *(len(name) for name in baselines))
    lines = [f"{'':<{width}}  {'PSNR (dB)':>9}  {'SSIM':>6}",
             f"{label:<{width}}  {model['psnr']:>9.2f}  {model['ssim']:>6.3f}"]
    for name, scores in baselines.items():
        lines.append(f"{name:<{width}}  {scores['psnr']:>9.2f}  {scores['ssim']:>6.3f}")
    found = margins(model, baselines)
    lines.append(f"margin over the best baseline: {found['margin_psnr']:+.2f} dB PSNR, "
                 f"{found['margin_ssim']:+.3f} SSIM")
    return "\n".join(lines)


def dataset_baselines(dataroot: str | Path, split: str = "test", direction: str = "AtoB",
                      input_nc: int = 3, output_nc: int = 3,
                      stems: Collection[str] | None = None) -> dict[str, Any] | None:
    """The baselines of a data set laid out as ours: ``<split>A`` vs ``<split>A_gt`` (``B`` for BtoA).

    Domain statistics from ``trainA`` / ``trainB`` (the ground truth itself when there is no
    target training folder). ``stems`` limits the pairs to those file stems (the images a model was
    scored on). ``None`` when the data set holds no true translations.
    """
    root = Path(dataroot)
    source, target = ("B", "A") if direction == "BtoA" else ("A", "B")
    truth_dir = root / f"{split}{source}_gt"
    if not truth_dir.is_dir():
        return None
    sources, _ = list_images(root / f"{split}{source}")
    pairs = [(path, truth_dir / path.name) for path in sources
             if (truth_dir / path.name).is_file() and (stems is None or path.stem in stems)]
    if not pairs:
        return None
    target_dir = root / f"train{target}"
    target_stats = domain_statistics(target_dir if target_dir.is_dir() else truth_dir, output_nc)
    source_dir = root / f"train{source}"
    source_stats = domain_statistics(source_dir, input_nc) if source_dir.is_dir() else None
    scores = score_baselines([p for p, _ in pairs], [t for _, t in pairs], target_stats, source_stats, input_nc)
    return {"baselines": scores, "target_statistics": target_stats.source,
            "source_statistics": source_stats.source if source_stats else "each image's own", "count": len(pairs)}


def folder_baselines(stems: Collection[str], source_dir: str | Path, truth_dir: str | Path,
                     target_domain: str | Path | None = None, source_domain: str | Path | None = None,
                     input_nc: int = 3, output_nc: int = 3, plain_sources: bool = True) -> dict[str, Any] | None:
    """The baselines for ``cyclegan eval``: sources and truths matched by stem (``x_real_A.png`` in a
    results folder matches ``x.png``; unlabelled files count as sources only with ``plain_sources``).
    Without ``target_domain`` the truths' own statistics are used (favouring the baselines).
    ``None`` when no source matches a scored stem."""
    def index(folder: Path, labels: tuple[str | None, ...]) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in list_images(folder)[0]:
            base, label = split_label(path.stem)
            if label in labels:
                found.setdefault(base, path)
        return found

    sources = index(Path(source_dir), ("real_A", "real", None) if plain_sources else ("real_A", "real"))
    truths = index(Path(truth_dir), ("real_B", "true_B", None))
    stems = [s for s in sorted(stems) if s in sources and s in truths]
    if not stems:
        return None
    pairs = [(unit_image_tensor(sources[s], input_nc)[0], unit_image_tensor(truths[s], output_nc)[0]) for s in stems]
    if target_domain is not None:
        target_stats = domain_statistics(target_domain, output_nc)
    else:  # the scored truths themselves (an oracle: it favours the baselines)
        target_stats = pooled_statistics([truth for _, truth in pairs], f"the ground truth in {truth_dir}")
    source_stats = domain_statistics(source_domain, input_nc) if source_domain else None
    return {"baselines": score_baseline_pairs(pairs, target_stats, source_stats),
            "target_statistics": target_stats.source,
            "source_statistics": source_stats.source if source_stats else "each image's own", "count": len(pairs)}
