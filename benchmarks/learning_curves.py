"""Learning curves: the reference's settings against the quick preset, beside the trivial baselines.

For each variant, one training run on a task with known true translations; every epoch the trainer's
validation scores G_A(valA) against valA_gt (PSNR, SSIM) and the best trivial baseline on the same
images (cyclegan.metrics.baselines). Printed: a markdown table per variant (iterations, seconds of
training, val PSNR / SSIM and the margins); written with --out: the curves as JSON and a plot
against iterations and against seconds.

Tasks (made here, nothing downloaded):
- ``synthetic``: the built-in set (`cyclegan data synthetic`, 200 images per domain, 64 px);
- ``photos``: 64 px crops of scikit-image's bundled colour photographs (astronaut, coffee, chelsea,
  rocket, motorcycle, ...; `pip install scikit-image`); B = other crops under a colour look
  (channels rotated r,g,b -> b,r,g, then a tone curve); train crops from each photo's left two thirds,
  test / val crops from its right third.

Variants: ``reference``: the reference's hyper-parameters (lr 2e-4, λ_identity 0.5, batch 1, basic
D, lsgan, random init) at the CPU preset's size (64 px, resnet_6blocks, ngf/ndf 32); ``quick``:
``--preset quick``; ``cut`` / ``fastcut``: ``--preset quick --model cut --CUT_mode CUT|FastCUT`` (the
preset's sizes; what it sets for CUT mode, CUT's own defaults for FastCUT; as ``cyclegan demo --model cut``); ``NAME=JSON``: the quick preset with overrides, e.g.
``lr5=\'{"optim.lr": 0.0005}\'``, or with a known variant before a dash, that variant with overrides
(``cut-ngf32=\'{"model.ngf": 32}\'``). Each variant trains ``--iters`` iterations if given, else its own
(``optim.max_iters`` in its overrides, the preset's for ``quick`` / ``cut`` / ``fastcut``, 2,000 for
``reference``), and decays the learning rate linearly over the second half (the reference's epoch
schedule is for 200 epochs; at 2,000 iterations it would never decay).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, markdown_table  # noqa: E402

from cyclegan.config import TrainConfig, fit_epochs_to_iterations  # noqa: E402
from cyclegan.data import write_synthetic_dataset  # noqa: E402
from cyclegan.metrics.baselines import dataset_baselines  # noqa: E402
from cyclegan.recipes import preset_config_for  # noqa: E402
from cyclegan.recipes.cut.config import CUTOptions
from cyclegan.training.trainer import Trainer  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "immunohistochemistry")


def photo_look(rgb: np.ndarray) -> np.ndarray:
    """The photos task's true A -> B map: channels rotated (r, g, b) -> (b, r, g), then a tone curve."""
    x = rgb[..., [2, 0, 1]].astype(np.float64) / 255
    return np.clip(np.rint(255 * x**0.8), 0, 255).astype(np.uint8)


def _crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        out.append(image[y:y + size, x:x + size])
    return out


def write_photo_task(root: Path, n: int = 200, n_test: int = 20, size: int = 64, seed: int = 0) -> Path:
    """Unpaired crops of the same photographs: train from each photo's left two thirds, test / val from its right
    third (never seen in training). Held-out *photos* were tried first: the only bundled colour photos left over
    are the Hubble deep field and a retina fundus, mostly black, where doing nothing keeps black black and wins."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)

    def photo(name: str) -> np.ndarray:
        loaded = getattr(skdata, name)()
        image = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)[..., :3]  # stereo: the left view
        # Half size: a 64 px crop then holds objects rather than texture alone.
        return np.asarray(Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2), Image.LANCZOS))

    photos = [photo(name) for name in PHOTOS]
    train = [p[:, : 2 * p.shape[1] // 3] for p in photos]
    held_out = [p[:, 2 * p.shape[1] // 3:] for p in photos]
    for folder in ("trainA", "trainB", "testA", "testA_gt", "testB", "valA", "valA_gt", "valB"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def save(array: np.ndarray, path: Path) -> None:
        Image.fromarray(array).save(path)

    for i in range(n):
        save(_crops(train[i % len(train)], 1, size, rng)[0], root / "trainA" / f"A_{i:05d}.png")
        save(photo_look(_crops(train[(i + 3) % len(train)], 1, size, rng)[0]), root / "trainB" / f"B_{i:05d}.png")
    for split in ("test", "val"):
        for i in range(n_test):
            a = _crops(held_out[i % len(held_out)], 1, size, rng)[0]
            save(a, root / f"{split}A" / f"A_{i:05d}.png")
            save(photo_look(a), root / f"{split}A_gt" / f"A_{i:05d}.png")
            save(photo_look(_crops(held_out[(i + 1) % len(held_out)], 1, size, rng)[0]),
                 root / f"{split}B" / f"B_{i:05d}.png")
    return root


def variant_config(name: str, overrides: dict[str, Any], dataroot: Path, out: Path, iters: int | None,
                   images: int, seed: int) -> TrainConfig:
    base = name.split("-")[0]  # "cut-ngf32": CUT's defaults with the overrides
    if base == "reference":
        config = TrainConfig()
        config.data = dataclasses.replace(config.data, load_size=72, crop_size=64, num_threads=0)
        config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=32, ndf=32)
    elif base in ("cut", "fastcut"):  # `--preset quick --model cut [--CUT_mode FastCUT]` (as `demo --model cut`)
        config = preset_config_for("quick", "cut", cut=CUTOptions(CUT_mode="FastCUT" if base == "fastcut" else "CUT"))
    else:
        config = preset_config_for("quick")
    if iters is None:
        iters = overrides.get("optim.max_iters", 2000 if base == "reference" else config.optim.max_iters)
    for key, value in overrides.items():
        section, field = key.split(".")
        setattr(config, section, dataclasses.replace(getattr(config, section), **{field: value}))
    config.data = dataclasses.replace(config.data, dataroot=str(dataroot))
    config.optim = fit_epochs_to_iterations(dataclasses.replace(config.optim, max_iters=iters), images,
                                            config.data.batch_size)
    config.runtime = dataclasses.replace(
        config.runtime, name=name, checkpoints_dir=str(out / "runs"), device="cpu", seed=seed, tensorboard=False,
        progress_bar=False, display_freq=10**9, save_latest_freq=10**9, save_epoch_freq=10**6)
    return config


class TimedTrainer(Trainer):
    """Records the seconds of training (validation excluded) at each validation."""

    def fit(self):
        self.clock_start, self.validation_seconds, self.times = time.perf_counter(), 0.0, []
        return super().fit()

    def _validate(self, logger) -> float:
        self.times.append(time.perf_counter() - self.clock_start - self.validation_seconds)
        started = time.perf_counter()
        try:
            return super()._validate(logger)
        finally:
            self.validation_seconds += time.perf_counter() - started


def run_variant(config: TrainConfig) -> list[dict[str, Any]]:
    trainer = TimedTrainer(config, resume="never")
    result = trainer.fit()
    curve = []
    for record, seconds in zip(result.progress.validation, trainer.times, strict=True):
        curve.append({"iter": record["iter"], "seconds": round(seconds, 1),
                      **{k: round(v, 4) for k, v in record.items() if k.startswith("val_")}})
    return curve


def plot(curves: dict[str, list[dict[str, Any]]], baseline: dict[str, float], out_png: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.4), dpi=100)
    FigureCanvasAgg(fig)
    for row, metric in enumerate(("psnr", "ssim")):
        for col, axis in enumerate(("iter", "seconds")):
            ax = fig.add_subplot(2, 2, 2 * row + col + 1)
            for name, curve in curves.items():
                ax.plot([p[axis] for p in curve], [p[f"val_{metric}"] for p in curve], marker="o", label=name)
            ax.axhline(baseline[metric], color="grey", linestyle="--", label="best trivial baseline")
            ax.set_xlabel("iterations" if axis == "iter" else "seconds of training")
            ax.set_ylabel(f"val {metric.upper()}" + (" (dB)" if metric == "psnr" else ""))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("synthetic", "photos"), default="synthetic")
    parser.add_argument("--variants", nargs="+", default=["reference", "quick"])
    parser.add_argument("--iters", type=int, default=None, help="default: each variant's own (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="./learning_curves")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataroot = out / f"data_{args.task}"
    if not (dataroot / "trainA").is_dir():
        if args.task == "synthetic":
            write_synthetic_dataset(dataroot, n=200, n_test=20, size=64, seed=args.seed)
        else:
            write_photo_task(dataroot, seed=args.seed)
    images = len(list((dataroot / "trainA").glob("*.png")))
    found = dataset_baselines(dataroot, "val")
    assert found is not None
    best = {m: max(b[m] for b in found["baselines"].values()) for m in ("psnr", "ssim")}
    print(f"## Learning curves — task {args.task}\n")
    print(f"- machine: {machine_description(torch.device('cpu'), torch.get_num_threads())}")
    print("- trivial baselines on valA vs valA_gt (PSNR dB / SSIM): " + ", ".join(
        f"{name} {s['psnr']:.2f} / {s['ssim']:.3f}" for name, s in found["baselines"].items()))
    curves: dict[str, list[dict[str, Any]]] = {}
    for spec in args.variants:
        name, _, raw = spec.partition("=")
        config = variant_config(name, json.loads(raw) if raw else {}, dataroot, out, args.iters, images, args.seed)
        curves[name] = curve = run_variant(config)
        print(f"\n### {name}" + (f" ({raw})" if raw else "") + f", {config.optim.max_iters} iterations, batch "
              f"{config.data.batch_size}, ngf / ndf {config.model.ngf} / {config.model.ndf}")
        print(markdown_table(
            ["iterations", "seconds", "val PSNR (dB)", "val SSIM", "margin PSNR (dB)", "margin SSIM"],
            [[p["iter"], p["seconds"], f"{p['val_psnr']:.2f}", f"{p['val_ssim']:.3f}",
              f"{p['val_psnr'] - best['psnr']:+.2f}", f"{p['val_ssim'] - best['ssim']:+.3f}"] for p in curve]))
        sys.stdout.flush()
        (out / f"curves_{args.task}.json").write_text(json.dumps(
            {"task": args.task, "iters": args.iters, "baselines": found["baselines"], "curves": curves}, indent=1))
    plot(curves, best, out / f"curves_{args.task}.png", f"{args.task}: val scores vs the best trivial baseline")
    print(f"\ncurves: {out / f'curves_{args.task}.json'}, plot: {out / f'curves_{args.task}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
