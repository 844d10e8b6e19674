"""``cyclegan demo``: the main job end to end on the built-in synthetic data set.

Makes the synthetic set (no download), trains a small CycleGAN on it, translates the test set,
writes the training and results pages, and scores G_A(testA) against the true translations next
to the score of doing nothing, so the gain is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan.config import CycleGANConfig, DataConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig

# The CPU preset: 64×64 crops, ngf/ndf 32, resnet_6blocks, no identity term (it pulls a
# colour map toward doing nothing).
DEMO_ITERS = 2000
DEMO_DATA = {"n": 200, "n_test": 20, "size": 64}


def demo_config(dataroot: Path, checkpoints_dir: Path, iters: int, device: str, seed: int, precision: str) -> TrainConfig:
    return TrainConfig(
        # No loader workers: decoding in the training process runs at ~1,700 images/s here
        # (benchmarks/loader.py), a rounding error next to a ~90 ms step; workers only add IPC.
        data=DataConfig(dataroot=str(dataroot), load_size=72, crop_size=64, batch_size=1, num_threads=0),
        model=ModelConfig(netG="resnet_6blocks", ngf=32, ndf=32),
        cycle_gan=CycleGANConfig(lambda_identity=0.0),
        # One long "epoch budget"; max_iters ends the run. The LR decays linearly over the second half.
        optim=OptimConfig(n_epochs=max(1, iters // (2 * DEMO_DATA["n"])),
                          n_epochs_decay=max(1, iters // (2 * DEMO_DATA["n"])) + 1, max_iters=iters),
        runtime=RuntimeConfig(name="synthetic_cyclegan", checkpoints_dir=str(checkpoints_dir), device=device,
                              seed=seed, print_freq=100, display_freq=200, save_latest_freq=500, save_epoch_freq=1,
                              precision=precision),
    )


@dataclass
class DemoResult:
    run_dir: Path
    results_page: Path
    training_page: Path
    psnr: float
    ssim: float
    identity_psnr: float
    identity_ssim: float
    iterations: int
    seconds: float

    def summary(self) -> str:
        return "\n".join([
            f"trained {self.iterations} iterations in {self.seconds / 60:.1f} min",
            f"training page: {self.training_page}",
            f"results page:  {self.results_page}",
            f"G_A(testA) vs true translation: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.3f}",
            f"doing nothing (testA as is):     PSNR {self.identity_psnr:.2f} dB, SSIM {self.identity_ssim:.3f}",
            f"gain: {self.psnr - self.identity_psnr:+.2f} dB",
        ])


def pix2pix_demo_config(dataroot: Path, checkpoints_dir: Path, iters: int, device: str, seed: int,
                        precision: str) -> TrainConfig:
    """The same preset for pix2pix on the paired set: its own defaults (batch norm, dropout, vanilla
    GAN, L1 × 100) but resnet_6blocks, as unet_256 needs 256-pixel crops."""
    from cyclegan.models import default_config

    cyclegan = demo_config(dataroot, checkpoints_dir, iters, device, seed, precision)
    config = default_config("pix2pix", data=cyclegan.data, optim=cyclegan.optim, runtime=cyclegan.runtime)
    config.model.netG, config.model.ngf, config.model.ndf = "resnet_6blocks", 32, 32
    config.runtime.name = "synthetic_pix2pix"
    return config


def run_demo(out: str | Path = "./demo", iters: int | None = None, device: str = "auto", seed: int = 0,
             precision: str | None = None, model: str = "cycle_gan") -> DemoResult:
    import time

    from cyclegan.data import write_synthetic_dataset
    from cyclegan.data.paired import write_paired_synthetic_dataset
    from cyclegan.metrics import evaluate_folders
    from cyclegan.testing import run_test
    from cyclegan.trainer import Trainer

    out = Path(out)
    dataroot = out / "data"
    if not (dataroot / "trainA").is_dir():
        write_synthetic_dataset(dataroot, seed=seed, **DEMO_DATA)
    iters = DEMO_ITERS if iters is None else iters
    test_root = dataroot
    if model == "pix2pix":
        # Its test A halves are testA and its B halves testA_gt: the same images as the CycleGAN demo.
        test_root = out / "data_paired"
        if not (test_root / "train").is_dir():
            write_paired_synthetic_dataset(test_root, seed=seed, **DEMO_DATA)
        config = pix2pix_demo_config(test_root, out / "checkpoints", iters, device, seed, precision or "auto")
    else:
        config = demo_config(dataroot, out / "checkpoints", iters, device, seed, precision or "auto")
    start = time.perf_counter()
    result = Trainer(config, resume="auto").fit()
    seconds = time.perf_counter() - start
    summary = run_test(dataroot=test_root, name=config.runtime.name, checkpoints_dir=out / "checkpoints",
                       results_dir=out / "results", device=device)
    identity = evaluate_folders(dataroot / "testA", dataroot / "testA_gt")
    scores: dict[str, Any] = summary.scores or {}
    return DemoResult(
        run_dir=result.run_dir, results_page=summary.page, training_page=result.run_dir / "web" / "index.html",
        psnr=scores["psnr"], ssim=scores["ssim"], identity_psnr=identity["psnr"], identity_ssim=identity["ssim"],
        iterations=result.progress.total_iters, seconds=seconds,
    )
