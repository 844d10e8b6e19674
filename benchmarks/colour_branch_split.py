"""Where a run's error lies: its generator whole, and its colour branch alone, against the true translations.

A generator with a colour branch (``--colour_branch``, ``--residual_output``; the quick preset's) is a
global per-pixel colour map plus a convolutional body. ``G.colour_only(x)`` is its output without the
body, so scoring both on pictures with known answers tells whether a run lost to the colour map or to
what the body draws:

    .venv/bin/python benchmarks/colour_branch_split.py RUN_DIR DATAROOT [--direction AtoB] [--epoch latest]

``DATAROOT`` holds ``valA/`` and ``valA_gt/`` (``BtoA``: ``valB/``, ``valB_gt/``), as
``cyclegan data synthetic --task NAME`` writes them. It prints PSNR / SSIM (fp32, the pictures as
stored) for the whole generator, its colour branch alone and doing nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cyclegan.data.transforms import unit_image_tensor
from cyclegan.inference.translator import Translator
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim
from cyclegan.recipes.codec import inner_network


def split_scores(run_dir: Path, dataroot: Path, direction: str = "AtoB", epoch: str = "latest",
                 split: str = "val") -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM of the whole generator, its colour branch alone and the input, against the truths."""
    side = "A" if direction == "AtoB" else "B"
    sources, truths = dataroot / f"{split}{side}", dataroot / f"{split}{side}_gt"
    names = sorted(path.name for path in sources.glob("*.png") if (truths / path.name).is_file())
    if not names:
        raise FileNotFoundError(f"no picture of {sources} has its true translation in {truths}: "
                                f"write the data with `cyclegan data synthetic --task NAME`")
    generator = inner_network(Translator.from_run(run_dir, epoch=epoch, direction=direction).net).eval()
    outputs = {"whole generator": generator, "colour branch alone": generator.colour_only,
               "doing nothing": lambda x: x}
    sums = {name: {"psnr": 0.0, "ssim": 0.0} for name in outputs}
    with torch.no_grad():
        for name in names:
            source, truth = unit_image_tensor(sources / name, 3) * 2 - 1, unit_image_tensor(truths / name, 3)
            for label, output in outputs.items():
                fake = (output(source).clamp(-1, 1) + 1) / 2
                sums[label]["psnr"] += min(float(psnr(fake, truth)), PSNR_CAP_DB) / len(names)
                sums[label]["ssim"] += float(ssim(fake, truth)) / len(names)
    return sums


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a CycleGAN or CUT run folder (its checkpoint)")
    parser.add_argument("dataroot", type=Path, help="the run's data, with the true translations")
    parser.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    parser.add_argument("--epoch", default="latest")
    parser.add_argument("--split", default="val", help="val or test: which pictures to score")
    args = parser.parse_args(argv)
    scores = split_scores(args.run_dir, args.dataroot, args.direction, args.epoch, args.split)
    print("| output | PSNR (dB) | SSIM |\n| --- | --- | --- |")
    for label, score in scores.items():
        print(f"| {label} | {score['psnr']:.2f} | {score['ssim']:.3f} |")


if __name__ == "__main__":
    main()
