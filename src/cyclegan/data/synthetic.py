"""A built-in synthetic unpaired data set with a known ground-truth translation (no download).

Scenes are a shaded background plus a few rectangles, ellipses, triangles and striped patches, all
coloured from a fixed palette ``PALETTE_A`` whose six colours occur with clearly different
frequencies ``PALETTE_WEIGHTS`` (plus a small per-shape jitter). Domain A holds such scenes; domain B
holds *other, independently drawn* scenes passed through the fixed per-pixel colour map

    T(r, g, b) = (g, b, 255 - r)          (a channel rotation plus inversion of one channel)

whose inverse is ``T^-1(r, g, b) = (255 - b, r, g)``. Both are exact bijections of the 8-bit RGB cube,
so ``testA_gt = T(testA)`` and ``testB_gt = T^-1(testB)`` are the true translations, stored with the
same file names as the inputs.

Why the map is identifiable from the two unpaired domains alone:

* T sends the six palette colours far from every palette colour (at least ~150 of 441 RGB units
  apart), so B's colour distribution differs from A's; a channel swap of uniformly random colours
  would leave the distribution unchanged and no unpaired method could tell the true map from identity.
* The palette frequencies are all distinct (34 %, 24 %, 17 %, 12 %, 8 %, 5 %), so the only way to
  map A's colour clusters onto B's while matching the distributions is cluster i -> T(cluster i):
  any other assignment would change how often some colour appears.
* Inside a cluster the lighting is a one-sided darkening (factor 0.6 to 1), so each cluster is a
  short segment ending at its palette colour rather than a symmetric blob; its image under T fixes
  the direction, leaving only deviations of a few units.
* Shapes and their outlines are kept, so the spatial structure of both domains is the same.

Doing nothing (the identity) scores about 5 dB PSNR against ``testA_gt``. Every image is drawn from a
generator seeded by (seed, split, index), so a seed gives byte-identical files and a larger ``n``
keeps the first images unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SYNTHETIC_DEFAULTS: dict[str, int] = {"n": 200, "size": 64, "seed": 0, "n_test": 20}

# Found by a small search: six colours at least 90 apart whose images under T are >= 150 from all of them.
PALETTE_A = np.array(
    [[0, 195, 80], [5, 110, 0], [150, 225, 0], [55, 220, 200], [10, 15, 15], [110, 150, 40]], dtype=np.int64
)
PALETTE_WEIGHTS = np.array([0.34, 0.24, 0.17, 0.12, 0.08, 0.05])

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


def _colour(rng: np.random.Generator, exclude: int | None = None) -> tuple[int, tuple[int, int, int]]:
    weights = PALETTE_WEIGHTS.copy()
    if exclude is not None:
        weights[exclude] = 0.0  # a shape never vanishes into a background of its own colour
    idx = int(rng.choice(len(weights), p=weights / weights.sum()))
    jitter = rng.integers(-_JITTER, _JITTER + 1, size=3)
    colour = np.clip(PALETTE_A[idx] + jitter, 0, 255)
    return idx, (int(colour[0]), int(colour[1]), int(colour[2]))


def draw_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """One domain-A scene as a ``size x size x 3`` uint8 array."""
    bg_idx, bg = _colour(rng)
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        _, fill = _colour(rng, exclude=bg_idx)
        w, h = (rng.uniform(0.15, 0.5, size=2) * size).astype(int) + 2
        x0, y0 = int(rng.integers(-w // 3, size - w // 2)), int(rng.integers(-h // 3, size - h // 2))
        box = (x0, y0, x0 + int(w), y0 + int(h))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.rectangle(box, fill=fill)
        elif kind == 1:
            draw.ellipse(box, fill=fill)
        elif kind == 2:
            pts = rng.integers(0, size, size=(3, 2))
            draw.polygon([(int(x), int(y)) for x, y in pts], fill=fill)
        else:
            # Stripes give the scenes texture (high frequencies) and a second colour inside one shape.
            _, fill2 = _colour(rng, exclude=bg_idx)
            period = int(rng.integers(3, 8))
            vertical = bool(rng.integers(0, 2))
            start, stop = (box[0], box[2]) if vertical else (box[1], box[3])
            for k, pos in enumerate(range(start, stop, period)):
                end = min(pos + period - 1, stop)
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


def _save(array: np.ndarray, path: Path) -> None:
    # Fixed PNG settings and no metadata, so the bytes depend only on the pixels.
    Image.fromarray(array).save(path, format="PNG", compress_level=6, optimize=False)


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
    if n < 1 or n_test < 1:
        raise ValueError(f"n and n_test must be at least 1 (got n={n}, n_test={n_test})")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; choose another folder or pass overwrite=True")
        for name in _FOLDERS:
            shutil.rmtree(root / name, ignore_errors=True)
        (root / METADATA_FILENAME).unlink(missing_ok=True)
    for name in _FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)

    def scene(split: str, i: int) -> np.ndarray:
        return draw_scene(np.random.default_rng([seed, _STREAMS[split], i]), size)

    for i in range(n):
        _save(scene("trainA", i), root / "trainA" / f"A_{i:05d}.png")
        _save(synthetic_map(scene("trainB", i)), root / "trainB" / f"B_{i:05d}.png")
    for split, count in (("test", n_test), ("val", n_val)):
        for i in range(count):
            a = scene(f"{split}A", i)
            _save(a, root / f"{split}A" / f"A_{i:05d}.png")
            _save(synthetic_map(a), root / f"{split}A_gt" / f"A_{i:05d}.png")
            b_scene = scene(f"{split}B", i)
            _save(synthetic_map(b_scene), root / f"{split}B" / f"B_{i:05d}.png")
            _save(b_scene, root / f"{split}B_gt" / f"B_{i:05d}.png")

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
    (root / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return root
