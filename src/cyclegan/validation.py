"""Validation during training: held-out ``valA / valB`` scored every ``--eval_freq`` epochs.

Always the mean cycle-consistency L1 (needs no ground truth). When the true translations are
there (``valA_gt/``, as the synthetic set writes them), also PSNR and SSIM of G_A(valA) against
them, and that PSNR is the objective: the ``plateau`` LR policy follows it and the best
checkpoint (``best.safetensors``) is chosen by it. Without ground truth the objective is the
cycle L1 (lower is better).

With ground truth, the trivial baselines (:mod:`cyclegan.metrics.baselines`: doing nothing, a
constant image, colour transfer, histogram matching) are scored once on the same images, and every
record carries the best of them (``val_baseline_psnr`` / ``val_baseline_ssim``) and the model's
margin over it (``val_margin_psnr`` / ``val_margin_ssim``): a PSNR alone cannot say whether the model
learned anything.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from cyclegan.config import TrainConfig
from cyclegan.data import create_dataset
from cyclegan.metrics.baselines import dataset_baselines
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim
from cyclegan.precision import Precision
from cyclegan.translate import unit_image_tensor


class Validator:
    def __init__(self, config: TrainConfig, seed: int) -> None:
        root = Path(config.data.dataroot)
        self.direction = config.data.direction
        data = dataclasses.replace(config.data, phase="val", preprocess="none", no_flip=True, serial_batches=True)
        self.dataset = create_dataset(data, seed=seed)
        # Ground truth for G_A's direction: valA_gt holds T(valA) (valB_gt for BtoA runs).
        source = "B" if self.direction == "BtoA" else "A"
        self.ground_truth = root / f"val{source}_gt"
        self.output_nc = config.data.output_nc
        has_truth = self.ground_truth.is_dir()
        self.objective, self.mode = ("val_psnr", "max") if has_truth else ("val_cycle_l1", "min")
        if not has_truth:
            self.ground_truth = None
        self.baselines = (dataset_baselines(root, "val", self.direction, config.data.input_nc, self.output_nc)
                          if has_truth else None)
        # The source-domain files, each scored once (the data set cycles the shorter folder).
        self.sources = [Path(p) for p in getattr(self.dataset, "B_paths" if self.direction == "BtoA" else "A_paths")]

    @staticmethod
    def available(config: TrainConfig) -> bool:
        root = Path(config.data.dataroot)
        return (root / "valA").is_dir() and (root / "valB").is_dir()

    def improved(self, score: float, best: float | None) -> bool:
        return best is None or (score > best if self.mode == "max" else score < best)

    @torch.no_grad()
    def score(self, model, device: torch.device, precision: Precision) -> dict[str, float]:
        model.eval()
        cycle, count, psnrs, ssims = 0.0, 0, [], []
        try:
            for i in range(len(self.dataset)):
                item = self.dataset[(0, i)]
                real_A, real_B = item["A"].unsqueeze(0).to(device), item["B"].unsqueeze(0).to(device)
                if self.direction == "BtoA":  # the folders stay A / B; the roles swap
                    real_A, real_B = real_B, real_A
                with precision.autocast():
                    out = model.cycle(real_A, real_B)
                cycle += (out["rec_A"].float() - real_A).abs().mean().item()
                cycle += (out["rec_B"].float() - real_B).abs().mean().item()
                count += 2
                if self.ground_truth is not None and i < len(self.sources):
                    truth = unit_image_tensor(self.ground_truth / self.sources[i].name, self.output_nc).to(device)
                    fake = (out["fake_B"].float().clamp(-1, 1) + 1) / 2
                    if fake.shape[-2:] != truth.shape[-2:]:
                        fake = F.interpolate(fake, size=truth.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)
                    psnrs.append(float(psnr(fake, truth)))
                    ssims.append(float(ssim(fake, truth)))
        finally:
            model.train()
        scores = {"val_cycle_l1": cycle / max(count, 1)}
        if psnrs:
            scores["val_psnr"] = sum(min(p, PSNR_CAP_DB) for p in psnrs) / len(psnrs)
            scores["val_ssim"] = sum(ssims) / len(ssims)
            if self.baselines is not None:
                for metric in ("psnr", "ssim"):
                    best = max(b[metric] for b in self.baselines["baselines"].values())
                    scores[f"val_baseline_{metric}"] = best
                    scores[f"val_margin_{metric}"] = scores[f"val_{metric}"] - best
        return scores
