"""Validation during training: held-out images scored every ``--eval_freq`` epochs.

The held-out set is the training data's mode on the ``val`` phase: ``valA / valB`` for unpaired
data, ``val/`` (A|B side by side) for paired data. With ground truth (the paired B half, or the true
translations ``valA_gt/`` that the synthetic set writes) the recipe's first translator (see
``TrainingRecipe.directions``) runs alone on its source images and its output is scored with PSNR and
SSIM against that truth. That PSNR is the objective (the ``plateau`` LR policy follows it and
``best.safetensors`` is chosen by it). Without ground truth every translator runs, and the objective
is the recipe's own score (CycleGAN: the cycle-consistency L1 of both cycles, lower is better).

With ground truth, the trivial baselines (:mod:`cyclegan.metrics.baselines`: doing nothing, a
constant image, colour transfer, histogram matching) are scored once on the same images, and every
record carries the best of them (``val_baseline_psnr`` / ``val_baseline_ssim``) and the model's
margin over it (``val_margin_psnr`` / ``val_margin_ssim``): a PSNR alone cannot say whether the model
learned anything. Their colour statistics come from ``train<target>/`` (unpaired data) or, for
paired data, from the validation truths themselves (which favours the baselines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from cyclegan.config import TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.data import create_dataset
from cyclegan.data.transforms import unit_image_tensor
from cyclegan.metrics.baselines import domain_statistics, margins, pooled_statistics, score_baseline_pairs
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim
from cyclegan.recipes import MODELS, TrainingRecipe

# Held-out items per network call, and at most this many input values (A and B, every channel) per
# call: large images go in smaller batches, so memory stays near that of 8 RGB pairs at 256 px.
VAL_BATCH = 8
VAL_BATCH_VALUES = 8 * 2 * 3 * 256 * 256


class Validator:
    def __init__(self, config: TrainConfig, seed: int) -> None:
        root = Path(config.data.dataroot)
        self.direction = config.data.direction
        data = dataclasses.replace(config.data, phase="val", preprocess="none", no_flip=True, serial_batches=True)
        self.dataset = create_dataset(data, seed=seed)
        self.paired = config.data.dataset_mode == "aligned"
        recipe = MODELS.get(config.model.model)
        self.translator = recipe.directions[0]
        self.output_nc = config.data.output_nc
        # Unpaired data: ground truth for the first translator's direction in val<source>_gt (the folder
        # roles swap for BtoA runs: valA_gt holds T(valA), valB_gt T^-1(valB)).
        source_folder = self.translator.source
        if self.direction == "BtoA":
            source_folder = "B" if source_folder == "A" else "A"
        self.ground_truth: Path | None = None
        if not self.paired and (root / f"val{source_folder}_gt").is_dir():
            self.ground_truth = root / f"val{source_folder}_gt"
        # The source-domain files, each scored once (the unaligned set cycles the shorter folder).
        self.sources = [Path(p) for p in getattr(self.dataset, f"{source_folder}_paths", [])]
        target_folder = "A" if source_folder == "B" else "B"
        self.domains = (root / f"train{source_folder}", root / f"train{target_folder}")
        self.input_nc = config.data.input_nc
        self.baselines: dict[str, dict[str, float]] | None = None  # scored once, on the first pass
        # With ground truth the score is the first translator's output against it, and validation runs
        # that translator alone: the other direction and the cycles (CycleGAN's val_cycle_l1, the
        # objective without ground truth) would triple its cost for a figure nothing then follows.
        self.scores_truth = self.paired or self.ground_truth is not None
        if self.scores_truth:
            self.objective, self.mode = "val_psnr", "max"
        elif recipe.fallback_objective is not None:
            self.objective, self.mode = recipe.fallback_objective
        else:
            raise ValueError(
                f"{config.model.model} has no validation score without ground truth: add "
                f"{root / f'val{source_folder}_gt'} or remove the validation folders"
            )

    @staticmethod
    def expected_folders(config: TrainConfig) -> str:
        root = Path(config.data.dataroot)
        if config.data.dataset_mode == "aligned":
            return f"{root / 'val'} (A|B pairs)"
        return f"{root / 'valA'} and {root / 'valB'}"

    @staticmethod
    def available(config: TrainConfig) -> bool:
        root = Path(config.data.dataroot)
        if config.data.dataset_mode == "aligned":
            return (root / "val").is_dir()
        if config.data.dataset_mode == "unaligned":
            return (root / "valA").is_dir() and (root / "valB").is_dir()
        return False

    def improved(self, score: float, best: float | None) -> bool:
        return best is None or (score > best if self.mode == "max" else score < best)

    def _items(self, device: torch.device) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        """Each held-out item as (its ``A`` / ``B`` images, C×H×W in [-1, 1], roles swapped for BtoA;
        its ground truth, 1×C×H×W in [0, 1], or None: none, or paired data, whose truth is ``real_B``)."""
        for i in range(len(self.dataset)):
            item = self.dataset[(0, i)]
            images = {key: item[key].to(device) for key in ("A", "B") if key in item}
            if self.direction == "BtoA":  # the folders stay A / B; the roles swap
                images["A"], images["B"] = images["B"], images["A"]
            truth = None
            if not self.paired and self.ground_truth is not None and i < len(self.sources):
                truth = unit_image_tensor(self.ground_truth / self.sources[i].name, self.output_nc).to(device)
            yield images, truth

    def _batches(self, device: torch.device) -> Iterator[tuple[dict[str, torch.Tensor], list]]:
        """The items stacked into batches of up to VAL_BATCH images of one shape (one network call
        per batch instead of per image: the small held-out images use the hardware poorly one by one)."""
        pending: list[tuple[dict[str, torch.Tensor], torch.Tensor | None]] = []

        def shapes(entry):
            images, truth = entry
            return {k: v.shape for k, v in images.items()}, None if truth is None else truth.shape

        def stacked():
            return {key: torch.stack([images[key] for images, _ in pending]) for key in pending[0][0]}, \
                [truth for _, truth in pending]

        for entry in self._items(device):
            values = sum(v.numel() for v in entry[0].values()) * (len(pending) + 1)
            if pending and (len(pending) == VAL_BATCH or values > VAL_BATCH_VALUES
                            or shapes(entry) != shapes(pending[0])):
                yield stacked()
                pending = []
            pending.append(entry)
        if pending:
            yield stacked()

    @torch.no_grad()
    def score(self, model: TrainingRecipe, device: torch.device, precision: Precision) -> dict[str, float]:
        model.eval()
        terms: dict[str, list[float]] = {}
        psnrs: list[float] = []
        ssims: list[float] = []
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (source, truth) in [0, 1], for the baselines
        try:
            for batch, truths in self._batches(device):
                with precision.autocast():
                    out = model.translate(batch, first_only=self.scores_truth)
                for j in range(len(truths)):  # the recipe's terms per image, as it defines them
                    image = {k: v[j:j + 1] for k, v in out.items()}
                    for name, values in model.validation_terms(image).items():
                        terms.setdefault(name, []).extend(values)
                self._score_batch(batch, out, truths, (psnrs, ssims, pairs))
        finally:
            model.train()
        scores = {name: sum(values) / len(values) for name, values in terms.items() if values}
        if psnrs:
            scores["val_psnr"] = sum(min(p, PSNR_CAP_DB) for p in psnrs) / len(psnrs)
            scores["val_ssim"] = sum(ssims) / len(ssims)
            if self.baselines is None:
                self.baselines = self._score_baselines(pairs)
            for metric in ("psnr", "ssim"):
                best = max(b[metric] for b in self.baselines.values())
                scores[f"val_baseline_{metric}"] = best
                scores[f"val_margin_{metric}"] = scores[f"val_{metric}"] - best
        return scores

    def _score_batch(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor],
                     truths: list[torch.Tensor | None], into: tuple[list, list, list]) -> None:
        """PSNR / SSIM of the first translator's output against the ground truth, per image, appended to
        ``into`` = (psnrs, ssims, baseline pairs); the pairs only until the baselines are scored."""
        psnrs, ssims, pairs = into
        _, fake_label, _ = self.translator.labels
        if self.paired:
            truth = (out[f"real_{self.translator.target}"].float() + 1) / 2
        elif truths[0] is not None:  # one shape per batch: all of them or none have a truth file
            truth = torch.cat(truths)
        else:
            return
        fake = (out[fake_label].float().clamp(-1, 1) + 1) / 2
        if fake.shape[-2:] != truth.shape[-2:]:
            fake = F.interpolate(fake, size=truth.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)
        psnrs.extend(psnr(fake, truth).tolist())
        ssims.extend(ssim(fake, truth).tolist())
        if self.baselines is None:
            source = (batch[self.translator.source].float() + 1) / 2
            pairs.extend(zip(source.cpu(), truth.cpu(), strict=True))

    def _score_baselines(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict[str, float]]:
        source_dir, target_dir = self.domains
        if target_dir.is_dir():
            target = domain_statistics(target_dir, self.output_nc)
        else:
            target = pooled_statistics([truth for _, truth in pairs], "the validation truths")
        source = domain_statistics(source_dir, self.input_nc) if source_dir.is_dir() else None
        return score_baseline_pairs(pairs, target, source)


# What a run below a trivial baseline should try next, besides more iterations (the learning issue):
# the other recipe's preset, then the reference's own settings, which learned maps the presets missed.
_OTHER_PRESET = {"cycle_gan": "CUT's preset (--model cut --preset quick)",
                 "cut": "CycleGAN's preset (--model cycle_gan --preset quick)"}


def closing_verdict(record: Mapping[str, float] | None, baselines: Mapping[str, Mapping[str, float]] | None = None,
                    model: str = "cycle_gan", iterations: int | None = None) -> list[str]:
    """The last lines a run with ground truth logs: its final margins over the best trivial baseline and,
    when it ends below one (in PSNR or in SSIM), that it does, by how much, and what to try.

    ``record``: the last validation record (``val_psnr``, ``val_ssim``, ``val_baseline_*``,
    ``val_margin_*``, ``iter``); ``baselines``: each baseline's scores (:attr:`Validator.baselines`),
    to name the best one; ``model``: the recipe's name; ``iterations``: how many the run trained (default:
    the record's). Empty without margins (no ground truth).
    """
    if not record or "val_margin_psnr" not in record or "val_margin_ssim" not in record:
        return []
    found = margins({"psnr": record["val_psnr"], "ssim": record["val_ssim"]}, baselines) if baselines else {}
    validated_at = int(record.get("iter", 0))
    iterations = validated_at if iterations is None else iterations
    below = []
    for metric, label, unit, digits in (("psnr", "PSNR", " dB", 2), ("ssim", "SSIM", "", 3)):
        margin, best = record[f"val_margin_{metric}"], record[f"val_baseline_{metric}"]
        if margin < 0:
            name = found.get(f"best_baseline_{metric}", "the best trivial baseline")
            below.append(f"{label} {record[f'val_{metric}']:.{digits}f}{unit} is {-margin:.{digits}f}{unit} under "
                         f"{name} ({best:.{digits}f}{unit})")
    lines = [f"last validation (iteration {validated_at}): val PSNR {record['val_psnr']:.2f} dB, SSIM "
             f"{record['val_ssim']:.3f}; margin over the best trivial baseline {record['val_margin_psnr']:+.2f} dB "
             f"PSNR, {record['val_margin_ssim']:+.3f} SSIM"]
    if below:
        other = _OTHER_PRESET.get(model, "another recipe's preset (--model cut --preset quick)")
        lines += [f"this run ends below a trivial baseline: {'; '.join(below)}",
                  f"to try: more iterations (--max_iters {max(2 * iterations, 1)}), {other}, or the reference's "
                  f"settings (no --preset: ngf / ndf 64, batch 1, instance norm, lr 0.0002)"]
    return lines
