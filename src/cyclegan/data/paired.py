"""Paired (aligned) data for pix2pix: each file holds A and B side by side, A on the left.

- :func:`write_paired_synthetic_dataset`: the synthetic scenes of :mod:`cyclegan.data.synthetic`
  with their true translation ``T(A)`` as B, in ``train/ val/ test/``. The A halves are the unpaired
  set's ``trainA / valA / testA`` images for the same seed (same generator streams), so a pix2pix and
  a CycleGAN run are scored on the same test images.
- :func:`combine_folders`: the reference's ``datasets/combine_A_and_B.py``: ``fold_A/<split>/x.png``
  and ``fold_B/<split>/x.png`` → ``out/<split>/x.png`` (A|B), pairing by file name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cyclegan.core.fileio import atomic_write
from cyclegan.data.images import list_images, load_image
from cyclegan.data.synthetic import (
    SYNTHETIC_DEFAULTS,
    draw_scene,
    prepare_output_folder,
    save_png,
    synthetic_map,
    write_synthetic_dataset,
)

# The unpaired set's generator streams for trainA, testA, valA (cyclegan.data.synthetic._STREAMS):
# a scene is a pure function of (seed, stream, index), so the A halves equal those images.
_A_STREAMS = {"train": 0, "test": 2, "val": 4}
METADATA_FILENAME = "synthetic.json"


class PairingError(ValueError):
    """Folders that cannot be combined into pairs; the message names the files."""


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``H × W × 3`` A and B as one ``H × 2W × 3`` image, A on the left (the aligned layout)."""
    return np.concatenate([a, b], axis=1)


def write_paired_synthetic_dataset(
    out_dir: str | Path,
    n: int = SYNTHETIC_DEFAULTS["n"],
    size: int = SYNTHETIC_DEFAULTS["size"],
    seed: int = SYNTHETIC_DEFAULTS["seed"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    overwrite: bool = False,
    n_val: int | None = None,
) -> Path:
    """Write ``train/ val/ test/`` of ``size × 2·size`` A|B files where B = T(A), the true mapping.

    ``n`` training pairs, ``n_test`` test pairs, ``n_val`` (default ``n_test``) validation pairs.
    An existing non-empty ``out_dir`` is an error unless ``overwrite`` (which replaces only these
    folders and the metadata).
    """
    n_val = n_test if n_val is None else n_val
    root = prepare_output_folder(out_dir, tuple(_A_STREAMS), n, n_test, size, overwrite)
    for split, count in (("train", n), ("test", n_test), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = draw_scene(np.random.default_rng([seed, _A_STREAMS[split], i]), size)
            save_png(side_by_side(a, synthetic_map(a)), root / split / f"A_{i:05d}.png")
    metadata: dict[str, Any] = {
        "paired": True, "n": n, "size": size, "seed": seed, "n_test": n_test, "n_val": n_val,
        "layout": "A | B side by side, B = T(A)", "map_AtoB": "(r, g, b) -> (g, b, 255 - r)",
    }
    atomic_write(root / METADATA_FILENAME, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return root


def write_synthetic_pictures(
    out_dir: str | Path,
    n: int = SYNTHETIC_DEFAULTS["n"],
    size: int = SYNTHETIC_DEFAULTS["size"],
    seed: int = SYNTHETIC_DEFAULTS["seed"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    overwrite: bool = False,
    n_val: int | None = None,
) -> Path:
    """Write ``train/ val/ test/`` of the synthetic scenes alone (domain A's, the same pictures as the
    paired set's A halves): the layout of a recipe whose every picture is its own truth (colorization)."""
    n_val = n_test if n_val is None else n_val
    root = prepare_output_folder(out_dir, tuple(_A_STREAMS), n, n_test, size, overwrite)
    for split, count in (("train", n), ("test", n_test), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save_png(draw_scene(np.random.default_rng([seed, _A_STREAMS[split], i]), size),
                     root / split / f"A_{i:05d}.png")
    metadata = {"pictures": True, "n": n, "size": size, "seed": seed, "n_test": n_test, "n_val": n_val}
    atomic_write(root / METADATA_FILENAME, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return root


def write_synthetic_for_layout(layout: str, out_dir: str | Path, **options: Any) -> Path:
    """The synthetic set in a data set mode's layout (``BaseDataset.layout``): unaligned folders,
    aligned A|B files, or pictures."""
    writers = {"unaligned": write_synthetic_dataset, "aligned": write_paired_synthetic_dataset,
               "pictures": write_synthetic_pictures}
    if layout not in writers:
        raise ValueError(f"no synthetic data for the {layout!r} layout; known: {', '.join(writers)}")
    return writers[layout](out_dir, **options)


def combine_folders(fold_A: str | Path, fold_B: str | Path, out: str | Path) -> dict[str, int]:
    """Pair ``fold_A`` and ``fold_B`` by file name into A|B files under ``out``; returns pairs per split.

    Splits are the subfolders of ``fold_A`` (``train``, ``val``, ``test`` ...), each matched with the
    same subfolder of ``fold_B``; a ``fold_A`` without subfolders is one split written into ``out``
    itself. Every split is checked before anything is written: a name on one side only, or two
    images of one pair with different sizes, is an error that lists them.
    """
    fold_A, fold_B, out = Path(fold_A), Path(fold_B), Path(out)
    for folder in (fold_A, fold_B):
        if not folder.is_dir():
            raise FileNotFoundError(f"--fold_{'A' if folder == fold_A else 'B'} {folder} is not a folder")
    splits = sorted(p.name for p in fold_A.iterdir() if p.is_dir())
    jobs = [(fold_A / s, fold_B / s, out / s, s) for s in splits] if splits else [(fold_A, fold_B, out, ".")]
    plans = []
    problems: list[str] = []
    for dir_A, dir_B, dir_out, split in jobs:
        if not dir_B.is_dir():
            problems.append(f"{dir_B} is missing (it pairs with {dir_A})")
            continue
        files_A = {p.name: p for p in list_images(dir_A)[0]}
        files_B = {p.name: p for p in list_images(dir_B)[0]}
        only_A, only_B = sorted(set(files_A) - set(files_B)), sorted(set(files_B) - set(files_A))
        if only_A:
            problems.append(f"{len(only_A)} file(s) of {dir_A} have no namesake in {dir_B}: {', '.join(only_A[:5])}")
        if only_B:
            problems.append(f"{len(only_B)} file(s) of {dir_B} have no namesake in {dir_A}: {', '.join(only_B[:5])}")
        pairs = []
        for name in sorted(set(files_A) & set(files_B)):
            with Image.open(files_A[name]) as image_A, Image.open(files_B[name]) as image_B:
                if image_A.size != image_B.size:
                    problems.append(f"{name}: {files_A[name]} is {image_A.size[0]}×{image_A.size[1]} but "
                                    f"{files_B[name]} is {image_B.size[0]}×{image_B.size[1]}")
            pairs.append((files_A[name], files_B[name]))
        plans.append((dir_out, split, pairs))
    if problems:
        raise PairingError("cannot combine the folders into A|B pairs:\n  " + "\n  ".join(problems)
                           + "\nrename or remove those files (pairs are matched by file name), then run again")
    counts = {}
    for dir_out, split, pairs in plans:
        dir_out.mkdir(parents=True, exist_ok=True)
        for path_A, path_B in pairs:
            pair = side_by_side(np.asarray(load_image(path_A, 3)), np.asarray(load_image(path_B, 3)))
            save_png(pair, dir_out / f"{path_A.stem}.png", durable=True)
        counts[split] = len(pairs)
    return counts


__all__ = ["PairingError", "combine_folders", "side_by_side", "write_paired_synthetic_dataset"]
