"""The README's picture: a demo run's test inputs, their translations and the true translations.

    python scripts/results_picture.py --demo ./demo --out docs/assets/results.png

reads ``<demo>/results/<run>/test_latest/images`` (what ``cyclegan demo`` writes: ``<stem>_real_A``,
``<stem>_fake_B`` and ``<stem>_true_B``, or ``<stem>_real_B`` for paired data) and writes one PNG:
a row of inputs, a row of translations, a row of truths, labelled, laid out by torchvision's
``make_grid``. The images are real outputs of the run, not retouched; they are enlarged (nearest
neighbour, so no pixel is invented) because the demo trains at 64 px.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

ROWS = (("real_A", "input"), ("fake_B", "translation"), ("true_B", "truth"))
LABEL_WIDTH = 120
MAX_BYTES = 300_000  # the README's picture stays light enough for any connection


def results_folder(demo: Path) -> Path:
    """The images folder of the demo's test results (the first run, if there are several)."""
    folders = sorted(demo.glob("results/*/test_latest/images"))
    if not folders:
        raise SystemExit(f"no results under {demo}/results/*/test_latest/images: run `cyclegan demo --out {demo}`")
    return folders[0]


def picture(images: Path, count: int, scale: int) -> Image.Image:
    """The labelled grid of ``count`` test images, each enlarged ``scale`` times."""
    stems = sorted(p.name[: -len("_real_A.png")] for p in images.glob("*_real_A.png"))[:count]
    if not stems:
        raise SystemExit(f"no *_real_A.png in {images}")
    tiles = []
    for label, _ in ROWS:
        for stem in stems:
            path = images / f"{stem}_{label}.png"
            if label == "true_B" and not path.is_file():
                path = images / f"{stem}_real_B.png"  # paired data: its B half is the truth
            tile = TF.to_image(Image.open(path).convert("RGB"))
            tiles.append(TF.resize(tile, [tile.shape[1] * scale, tile.shape[2] * scale],
                                   interpolation=TF.InterpolationMode.NEAREST))
    grid = make_grid(torch.stack(tiles), nrow=len(stems), padding=4, pad_value=255)
    body = TF.to_pil_image(grid)
    canvas = Image.new("RGB", (body.width + LABEL_WIDTH, body.height), "white")
    canvas.paste(body, (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=18)
    row_height = (body.height - 4) / len(ROWS)
    for row, (_, title) in enumerate(ROWS):
        draw.text((10, 4 + row_height * (row + 0.5)), title, fill="black", font=font, anchor="lm")
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo"), help="a `cyclegan demo --out` folder")
    parser.add_argument("--out", type=Path, default=Path("docs/assets/results.png"), help="the PNG to write")
    parser.add_argument("--count", type=int, default=6, help="test images shown")
    parser.add_argument("--scale", type=int, default=2, help="enlargement of each image (nearest neighbour)")
    args = parser.parse_args(argv)
    image = picture(results_folder(args.demo), args.count, args.scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, format="PNG", optimize=True)
    size = args.out.stat().st_size
    print(f"{args.out}: {image.width}×{image.height}, {size / 1000:.0f} kB")
    if size > MAX_BYTES:
        print(f"larger than {MAX_BYTES / 1000:.0f} kB: use fewer images (--count) or a smaller --scale",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
