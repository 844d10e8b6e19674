"""A built-in synthetic unpaired data set with a known ground-truth translation (no download).

Scenes are a background with a pattern of squares or bands plus rectangles, ellipses, triangles and
striped patches under a one-sided lighting ramp. Colours come from a fixed palette ``PALETTE_A``, and
each part of a scene has its own palette entry (background 0, its pattern 1, rectangles 2, ellipses 3,
triangles 4, stripes 5), with a small per-shape jitter. Domain A holds such scenes; domain B holds
*other, independently drawn* scenes passed through the fixed per-pixel colour map

    T(r, g, b) = (g, b, 255 - r)          (a channel rotation plus inversion of one channel)

whose inverse is ``T^-1(r, g, b) = (255 - b, r, g)``. Both are exact bijections of the 8-bit RGB cube,
so ``testA_gt = T(testA)`` and ``testB_gt = T^-1(testB)`` are the true translations, stored with the
same file names as the inputs.

Why it is a fair test (the learning issue): scoring well needs both the colours and the structure.

* Structure alone fails: doing nothing keeps every edge but scores ~6.7 dB PSNR against the truth,
  and the classical colour transfers (per-channel mean/std, histogram matching: one monotone map per
  channel) cannot rotate the channels, so they stay near 9.5-10.6 dB and SSIM ~0.3.
* Colour alone fails: almost every 11x11 window holds an edge of the checks, bands, shapes or
  stripes, so a constant image of B's mean colour scores ~10.4 dB and SSIM ~0.13.
  :mod:`cyclegan.metrics.baselines` computes all of them; ``tests/test_synthetic.py`` holds the bars.

Why the map is identifiable from the two unpaired domains alone:

* T sends the six palette colours far from every palette colour (at least 120 of 441 RGB units
  apart), so B's colour distribution differs from A's; a channel swap of uniformly random colours
  would leave the distribution unchanged and no unpaired method could tell the true map from identity.
* Each palette colour belongs to one kind of region (the background, its pattern, the ellipses,
  ...), and the regions occur with clearly different frequencies, so the only assignment of A's
  colours to B's that keeps both the shapes and the frequencies is cluster i -> T(cluster i). A
  discriminator sees a wrongly coloured ellipse.
* The true assignment is also the one that moves colours least, pair by pair: for any two palette
  colours a, b, |a - T(a)| + |b - T(b)| < |a - T(b)| + |b - T(a)|. Generators start near smooth
  maps and the identity loss holds B's colours in place, so runs settle first on a low-displacement
  assignment; with a palette where swapping two shapes' colours moved them less (the previous one:
  green ellipses went to magenta, the far corner of the cube, while red rectangles were as near
  magenta as black), runs kept that swap, scoring near the baselines, and only some escaped late.
* Inside a cluster the lighting is a one-sided darkening (factor 0.6 to 1), so each cluster is a
  short segment ending at its palette colour rather than a symmetric blob; its image under T fixes
  the direction, leaving only deviations of a few units.

Every image is drawn from a generator seeded by (seed, split, index), so a seed gives byte-identical
files and a larger ``n`` keeps the first images unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cyclegan.core.fileio import atomic_write

SYNTHETIC_DEFAULTS: dict[str, int] = {"n": 200, "size": 64, "seed": 0, "n_test": 20}

# Found by a search over {0, 85, 170, 255}^3 (see the module docstring): six colours at least 150
# apart, whose images under T are >= 120 from all of them, where swapping any two colours' images
# moves them more than T does (by >= 36 RGB units in all); of the few such palettes, the one whose
# strongest trivial baseline scores lowest on generated scenes.
PALETTE_A = np.array(
    [[255, 0, 0], [85, 0, 85], [255, 85, 170], [255, 255, 255], [0, 0, 255], [85, 170, 255]], dtype=np.int64
)
# Each palette colour's share of a scene's pixels (measured over 200 training scenes, nearest colour).
PALETTE_WEIGHTS = np.array([0.43, 0.23, 0.16, 0.09, 0.06, 0.03])
# Which palette entry each part of a scene takes: the colour says what a region is, as in a
# photograph (sky is blue, grass green), so a discriminator can tell a wrongly coloured shape. The
# parts occur with clearly different frequencies (the background's pattern covers a third of it;
# shape kinds are drawn with SHAPE_WEIGHTS), so the colours' frequencies differ too: with equal
# frequencies a generator swapped two shape colours and kept the swap.
_BACKGROUND, _PATTERN = 0, 1
_SHAPE_COLOURS = {"rectangle": 2, "ellipse": 3, "triangle": 4, "stripes": 5}
SHAPE_WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])

_JITTER = 8  # per-shape colour jitter, +- this many units per channel
_MIN_SHADE = 0.6  # darkest lighting factor

# Generator streams: each split draws its scenes from its own sequence.
_STREAMS = {"trainA": 0, "trainB": 1, "testA": 2, "testB": 3, "valA": 4, "valB": 5}
_FOLDERS = ("trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt", "valA", "valB", "valA_gt", "valB_gt")
METADATA_FILENAME = "synthetic.json"


def synthetic_map(rgb: np.ndarray) -> np.ndarray:
    """The true A -> B translation T(r, g, b) = (g, b, 255 - r) on uint8 ``... x 3`` arrays."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    return np.stack([rgb[..., 1], rgb[..., 2], 255 - rgb[..., 0]], axis=-1)


def synthetic_inverse_map(rgb: np.ndarray) -> np.ndarray:
    """The true B -> A translation T^-1(r, g, b) = (255 - b, r, g)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    return np.stack([255 - rgb[..., 2], rgb[..., 0], rgb[..., 1]], axis=-1)


def _colour(rng: np.random.Generator, index: int) -> tuple[int, int, int]:
    jitter = rng.integers(-_JITTER, _JITTER + 1, size=3)
    colour = np.clip(PALETTE_A[index] + jitter, 0, 255)
    return int(colour[0]), int(colour[1]), int(colour[2])


def draw_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """One domain-A scene as a ``size x size x 3`` uint8 array."""
    # A background with a pattern (a grid of squares or bands, a third of each period) so that
    # almost every SSIM window holds an edge: on flat regions a constant image would score nearly
    # as well as a model.
    img = Image.new("RGB", (size, size), _colour(rng, _BACKGROUND))
    draw = ImageDraw.Draw(img)
    period = int(rng.integers(max(6, size // 8), max(9, size // 4)))
    mark = max(2, period // 3)
    other = _colour(rng, _PATTERN)
    pattern = int(rng.integers(0, 3))  # squares, vertical bands, horizontal bands
    for y in range(0, size, period):
        for x in range(0, size, period):
            if pattern == 0:
                draw.rectangle((x, y, x + 2 * mark - 1, y + 2 * mark - 1), fill=other)
            elif pattern == 1:
                draw.rectangle((x, y, x + mark - 1, y + period - 1), fill=other)
            else:
                draw.rectangle((x, y, x + period - 1, y + mark - 1), fill=other)
    kinds = list(_SHAPE_COLOURS)
    for _ in range(int(rng.integers(3, 7))):
        kind = kinds[int(rng.choice(len(kinds), p=SHAPE_WEIGHTS))]
        fill = _colour(rng, _SHAPE_COLOURS[kind])
        w, h = (rng.uniform(0.15, 0.45, size=2) * size).astype(int) + 2
        x0, y0 = int(rng.integers(-w // 3, size - w // 2)), int(rng.integers(-h // 3, size - h // 2))
        box = (x0, y0, x0 + int(w), y0 + int(h))
        if kind == "rectangle":
            draw.rectangle(box, fill=fill)
        elif kind == "ellipse":
            draw.ellipse(box, fill=fill)
        elif kind == "triangle":
            pts = rng.integers(0, size, size=(3, 2))
            draw.polygon([(int(x), int(y)) for x, y in pts], fill=fill)
        else:
            # Stripes of the shape's colour over the rectangle's own colour: texture inside a shape.
            fill2 = _colour(rng, _SHAPE_COLOURS["rectangle"])
            stripe_period = int(rng.integers(3, 8))
            vertical = bool(rng.integers(0, 2))
            start, stop = (box[0], box[2]) if vertical else (box[1], box[3])
            for k, pos in enumerate(range(start, stop, stripe_period)):
                end = min(pos + stripe_period - 1, stop)
                stripe = (pos, box[1], end, box[3]) if vertical else (box[0], pos, box[2], end)
                draw.rectangle(stripe, fill=fill if k % 2 == 0 else fill2)
    # One-sided lighting: a linear darkening along a random direction (see the module docstring).
    angle = rng.uniform(0, 2 * np.pi)
    depth = rng.uniform(0, 1 - _MIN_SHADE)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    shade = 1.0 - depth * ramp
    out = np.asarray(img, dtype=np.float64) * shade[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path, durable: bool = False) -> None:
    """Write one picture atomically, with fixed PNG settings and no metadata, so the bytes depend only on
    the pixels. ``durable``: fsync it too (not for generated sets, which are written again in seconds)."""
    atomic_write(path, lambda handle: Image.fromarray(array).save(handle, format="PNG", compress_level=6),
                 durable=durable)


def prepare_output_folder(out_dir: str | Path, folders: tuple[str, ...], n: int, n_test: int, size: int,
                          overwrite: bool) -> Path:
    """Check a synthetic set's sizes and its output folder; with ``overwrite``, remove ``folders``."""
    if n < 1 or n_test < 1:
        raise ValueError(f"n and n_test must be at least 1 (got n={n}, n_test={n_test})")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; choose another folder or pass overwrite=True")
        for name in folders:
            shutil.rmtree(root / name, ignore_errors=True)
    return root


def write_synthetic_dataset(
    out_dir: str | Path,
    n: int = SYNTHETIC_DEFAULTS["n"],
    size: int = SYNTHETIC_DEFAULTS["size"],
    seed: int = SYNTHETIC_DEFAULTS["seed"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    overwrite: bool = False,
    n_val: int | None = None,
) -> Path:
    """Write ``trainA/ trainB/ testA/ testB/`` plus the true translations ``testA_gt/ testB_gt/``.

    ``n`` images per training domain and ``n_test`` per test domain, ``size`` pixels square; also a
    held-out validation split ``valA/ valB/`` with ``valA_gt/ valB_gt/`` (``n_val`` images, default
    ``n_test``) that training scores each epoch. Returns ``out_dir``. An existing non-empty
    ``out_dir`` is an error unless ``overwrite`` (which replaces only these folders and the metadata).
    """
    n_val = n_test if n_val is None else n_val
    root = prepare_output_folder(out_dir, _FOLDERS, n, n_test, size, overwrite)
    (root / METADATA_FILENAME).unlink(missing_ok=True)
    for name in _FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)

    def scene(split: str, i: int) -> np.ndarray:
        return draw_scene(np.random.default_rng([seed, _STREAMS[split], i]), size)

    for i in range(n):
        save_png(scene("trainA", i), root / "trainA" / f"A_{i:05d}.png")
        save_png(synthetic_map(scene("trainB", i)), root / "trainB" / f"B_{i:05d}.png")
    for split, count in (("test", n_test), ("val", n_val)):
        for i in range(count):
            a = scene(f"{split}A", i)
            save_png(a, root / f"{split}A" / f"A_{i:05d}.png")
            save_png(synthetic_map(a), root / f"{split}A_gt" / f"A_{i:05d}.png")
            b_scene = scene(f"{split}B", i)
            save_png(synthetic_map(b_scene), root / f"{split}B" / f"B_{i:05d}.png")
            save_png(b_scene, root / f"{split}B_gt" / f"B_{i:05d}.png")

    metadata: dict[str, Any] = {
        "n": n,
        "size": size,
        "seed": seed,
        "n_test": n_test,
        "n_val": n_val,
        "map_AtoB": "(r, g, b) -> (g, b, 255 - r)",
        "map_BtoA": "(r, g, b) -> (255 - b, r, g)",
        "palette_A": PALETTE_A.tolist(),
        "palette_weights": PALETTE_WEIGHTS.tolist(),
    }
    atomic_write(root / METADATA_FILENAME, json.dumps(metadata, indent=2, sort_keys=True) + "\n", durable=False)
    return root
