"""Tests for the synthetic unpaired data set: layout, determinism, ground truth and identifiability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.config import DataConfig
from cyclegan.data import (
    PALETTE_A,
    PALETTE_WEIGHTS,
    SYNTHETIC_DEFAULTS,
    create_dataset,
    synthetic_inverse_map,
    synthetic_map,
    write_synthetic_dataset,
)

FOLDERS = ("trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt")


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("syn") / "data", n=12, size=32, seed=3, n_test=6)


def test_layout_and_counts(synthetic_root: Path) -> None:
    counts = {name: len(list((synthetic_root / name).glob("*.png"))) for name in FOLDERS}
    assert counts == {"trainA": 12, "trainB": 12, "testA": 6, "testB": 6, "testA_gt": 6, "testB_gt": 6}
    img = Image.open(next((synthetic_root / "trainA").glob("*.png")))
    assert img.mode == "RGB" and img.size == (32, 32)


def test_gt_stems_match_inputs(synthetic_root: Path) -> None:
    for split in ("testA", "testB"):
        inputs = sorted(p.stem for p in (synthetic_root / split).glob("*.png"))
        truths = sorted(p.stem for p in (synthetic_root / f"{split}_gt").glob("*.png"))
        assert inputs == truths


def test_same_seed_byte_identical(tmp_path: Path, synthetic_root: Path) -> None:
    again = write_synthetic_dataset(tmp_path / "again", n=12, size=32, seed=3, n_test=6)
    for name in FOLDERS:
        for path in sorted((synthetic_root / name).glob("*.png")):
            assert (again / name / path.name).read_bytes() == path.read_bytes()
    other = write_synthetic_dataset(tmp_path / "other", n=12, size=32, seed=4, n_test=6)
    assert (other / "trainA" / "A_00000.png").read_bytes() != (again / "trainA" / "A_00000.png").read_bytes()


def test_map_is_exact_bijection(synthetic_root: Path) -> None:
    cube = np.stack(np.meshgrid(*[np.arange(0, 256, 5, dtype=np.uint8)] * 3, indexing="ij"), -1)
    assert np.array_equal(synthetic_inverse_map(synthetic_map(cube)), cube)
    assert np.array_equal(synthetic_map(synthetic_inverse_map(cube)), cube)
    for path in (synthetic_root / "testA").glob("*.png"):
        a, gt = read(path), read(synthetic_root / "testA_gt" / path.name)
        assert np.array_equal(gt, synthetic_map(a))
        assert np.array_equal(synthetic_inverse_map(gt), a)
    for path in (synthetic_root / "testB").glob("*.png"):
        b, gt = read(path), read(synthetic_root / "testB_gt" / path.name)
        assert np.array_equal(synthetic_map(gt), b)


def test_trivial_baselines_score_low_and_need_colour_and_structure(tmp_path: Path) -> None:
    """The learning issue's bar: every trivial baseline scores low against the true translations;
    right colours in the wrong place (the true map of a shifted scene) score low too."""
    from cyclegan.metrics.baselines import dataset_baselines

    root = write_synthetic_dataset(tmp_path / "fair", n=60, size=64, seed=0, n_test=12)
    found = dataset_baselines(root, "test")
    assert found is not None and found["count"] == 12 and found["target_statistics"].endswith("trainB")
    scores = found["baselines"]
    assert set(scores) == {"doing nothing", "constant image", "colour transfer", "histogram matching"}
    assert max(s["psnr"] for s in scores.values()) < 11.5  # ~10.6 dB: colour transfer
    assert max(s["ssim"] for s in scores.values()) < 0.40
    shifted = [psnr(np.roll(synthetic_map(read(p)), 4, axis=1), read(root / "testA_gt" / p.name))
               for p in sorted((root / "testA").glob("*.png"))]
    assert np.mean(shifted) < 12.0  # colour without structure is not the answer either


def test_identity_scores_badly(synthetic_root: Path) -> None:
    scores = [
        psnr(read(p), read(synthetic_root / "testA_gt" / p.name))
        for p in (synthetic_root / "testA").glob("*.png")
    ]
    assert max(scores) < 12.0 and np.mean(scores) < 9.0


def test_domains_differ_so_the_map_is_identifiable() -> None:
    palette_b = synthetic_map(PALETTE_A.astype(np.uint8)).astype(np.int64)
    # T moves every palette colour far away from all palette colours: B's colours are not A's.
    distances = np.linalg.norm(palette_b[:, None, :] - PALETTE_A[None, :, :], axis=-1)
    assert distances.min() > 100
    # Distinct frequencies: only cluster i -> T(cluster i) matches the two distributions.
    assert len(set(PALETTE_WEIGHTS.tolist())) == len(PALETTE_WEIGHTS)
    assert np.isclose(PALETTE_WEIGHTS.sum(), 1.0)


def test_the_true_map_moves_colours_less_than_any_swap_of_two() -> None:
    """The design rule that keeps runs from settling on two shapes' colours swapped (the module
    docstring): for every pair of palette colours a, b, T moves them less than the swapped images do."""
    palette_b = synthetic_map(PALETTE_A.astype(np.uint8)).astype(np.float64)
    moves = np.linalg.norm(PALETTE_A[:, None, :] - palette_b[None, :, :], axis=-1)  # |a_i - T(a_j)|
    true = np.diag(moves)
    swap_cost = moves + moves.T - true[:, None] - true[None, :]
    off_diagonal = ~np.eye(len(PALETTE_A), dtype=bool)
    assert swap_cost[off_diagonal].min() > 30


def test_colour_statistics_follow_palette(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "stats", n=40, size=32, seed=0, n_test=1)
    pixels = np.concatenate([read(p).reshape(-1, 3) for p in sorted((root / "trainA").glob("*.png"))])
    nearest = np.argmin(np.linalg.norm(pixels[:, None, :] - PALETTE_A[None], axis=-1), axis=1)
    share = np.bincount(nearest, minlength=len(PALETTE_A)) / len(nearest)
    assert share[:2].sum() > share[-2:].sum()  # frequent palette colours outweigh rare ones
    b_pixels = np.concatenate([read(p).reshape(-1, 3) for p in sorted((root / "trainB").glob("*.png"))])
    near_a = np.linalg.norm(b_pixels[:, None, :].astype(float) - PALETTE_A[None], axis=-1).min(axis=1)
    assert np.median(near_a) > 60  # B's pixels are not A's colours


def test_default_set_loads_as_unaligned(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "fast", **SYNTHETIC_DEFAULTS)
    cfg = DataConfig(dataroot=str(root), load_size=64, crop_size=64, num_threads=0)
    ds = create_dataset(cfg)
    assert len(ds) == SYNTHETIC_DEFAULTS["n"] and ds[0]["A"].shape == (3, 64, 64)
    test = create_dataset(DataConfig(dataroot=str(root / "testA"), dataset_mode="single", preprocess="none"))
    assert len(test) == SYNTHETIC_DEFAULTS["n_test"]


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "d", n=3, size=16, n_test=2)
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(root, n=2, size=16, n_test=1)
    write_synthetic_dataset(root, n=2, size=16, n_test=1, overwrite=True)
    assert len(list((root / "trainA").glob("*.png"))) == 2  # old files removed, not mixed in
