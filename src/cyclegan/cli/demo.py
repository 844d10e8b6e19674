"""``cyclegan demo``: the main job end to end on the built-in synthetic data set.

Makes the synthetic set in the recipe's data layout (no download), trains a small CycleGAN (or any
registered recipe: ``--model pix2pix`` / ``cut`` / ``colorization``) on it
with the quick preset's sizes, translates the test set, writes the training and results pages, and
scores the translated testA against the true translations next to the trivial baselines (doing
nothing, a constant image, colour transfer, histogram matching) on the same images: the margin over
the best of them is the headline.

Interrupted (Ctrl-C, SIGTERM), it saves, says how to resume and stops with a non-zero status: a
half-trained model's score is not the demo's result.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan.config import TrainConfig, preset_config
from cyclegan.data.datasets import DATASETS
from cyclegan.data.paired import write_synthetic_for_layout
from cyclegan.inference.test_run import run_test
from cyclegan.metrics.baselines import format_comparison
from cyclegan.recipes import MODELS, default_config, default_config_at_sizes, preset_config_for
from cyclegan.training.trainer import Trainer

DEMO_DATA = {"n": 200, "n_test": 20, "size": 64}
DEMO_PRESET = "quick"


class DemoInterrupted(RuntimeError):
    """Training was stopped by a signal; the checkpoint is saved and the demo can be resumed."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


def demo_config(dataroot: Path, checkpoints_dir: Path, iters: int | None, device: str, seed: int,
                precision: str, model: str = "cycle_gan") -> TrainConfig:
    """The quick preset's CycleGAN or CUT (each with what the preset sets for it), or pix2pix at the
    same size with its own defaults (batch norm, dropout, vanilla GAN, L1 × 100) but the preset's
    generator and sizes (unet_256 would need 256-pixel crops). The batches are channels-last: CycleGAN's
    quick networks (no norm layers) train faster on them on a CPU, in fp32 and bf16 alike, and the
    other recipes' about as fast (benchmarks/README.md)."""
    # A recipe with its own settings for the preset (preset_defaults) trains them; pix2pix has none.
    has_preset = DEMO_PRESET in MODELS.get(model).preset_defaults
    config = preset_config_for(DEMO_PRESET, model) if has_preset else preset_config(DEMO_PRESET)
    optim = config.optim if iters is None else dataclasses.replace(config.optim, max_iters=iters)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, dataroot=str(dataroot)),
        optim=optim,
        runtime=dataclasses.replace(
            config.runtime, name=f"synthetic_{model.replace('_', '')}", checkpoints_dir=str(checkpoints_dir),
            device=device, seed=seed, print_freq=100, display_freq=200, save_latest_freq=500,
            precision=precision, channels_last=True,
        ),
    )
    if has_preset:
        return config
    return default_config_at_sizes(model, config, optim=config.optim, runtime=config.runtime)


@dataclass
class DemoResult:
    run_dir: Path
    results_page: Path
    training_page: Path
    scores: dict[str, Any]  # the model's psnr / ssim, "baselines" and the margins (cyclegan test's scores)
    iterations: int
    seconds: float
    translator: str = "G_A"  # the network that translated testA (the recipe's first translator)

    @property
    def margin_psnr(self) -> float:
        return self.scores["margin_psnr"]

    @property
    def margin_ssim(self) -> float:
        return self.scores["margin_ssim"]

    def summary(self) -> str:
        table = format_comparison(self.scores, self.scores["baselines"]["baselines"],
                                  label=f"{self.translator}(testA)")
        return "\n".join([
            f"trained {self.iterations} iterations in {self.seconds / 60:.1f} min",
            f"training page: {self.training_page}",
            f"results page:  {self.results_page}",
            f"scores against the true translations of testA ({self.scores['count']} images):",
            table,
        ])


def run_demo(out: str | Path = "./demo", iters: int | None = None, device: str = "auto", seed: int = 0,
             precision: str | None = None, model: str = "cycle_gan") -> DemoResult:
    """Make the synthetic set in the recipe's data layout, train ``model`` on it with the quick preset,
    translate its test images and score them beside the trivial baselines."""
    out = Path(out)
    layout = DATASETS.get(default_config(model).data.dataset_mode).layout
    # The unpaired set keeps its old folder; the others sit beside it, named by their layout.
    test_root = out / ("data" if layout == "unaligned" else f"data_{layout}")
    if not test_root.is_dir():
        write_synthetic_for_layout(layout, test_root, seed=seed, **DEMO_DATA)
    config = demo_config(test_root, out / "checkpoints", iters, device, seed, precision or "auto", model)
    start = time.perf_counter()
    result = Trainer(config, resume="auto").fit()
    seconds = time.perf_counter() - start
    if result.stopped_by_signal is not None:
        raise DemoInterrupted(
            f"stopped by {result.stopped_by_signal} after {result.progress.total_iters} of "
            f"{config.optim.max_iters} iterations; the checkpoint is saved. No score is printed for a "
            f"half-trained model. Resume with: cyclegan demo --out {out}"
            + (f" --iters {iters}" if iters is not None else "")
            + (f" --model {model}" if model != "cycle_gan" else ""),
            result.stopped_by_signal,
        )
    summary = run_test(dataroot=test_root, name=config.runtime.name, checkpoints_dir=out / "checkpoints",
                       results_dir=out / "results", device=device)
    return DemoResult(
        run_dir=result.run_dir, results_page=summary.page, training_page=result.run_dir / "web" / "index.html",
        scores=summary.scores or {}, iterations=result.progress.total_iters, seconds=seconds,
        translator=MODELS.get(model).directions[0].net,
    )
