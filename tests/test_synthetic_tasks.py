"""Tests for the family of synthetic tasks (the learning issue): layout, determinism, true translations,
identifiability facts, that no trivial baseline already solves a task, and the closing verdict of a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.data import PALETTE_A, write_synthetic_dataset
from cyclegan.data import synthetic as synthetic_module
from cyclegan.data.paired import write_paired_synthetic_dataset
from cyclegan.data.synthetic_tasks import (
    DEFAULT_TASK,
    ELLIPSE_MIN,
    FAR,
    GREY,
    NEAR,
    SOME_OBJECTS,
    SYNTHETIC_TASKS,
    TEXTURE,
    _hue_rotate,
    ellipse_mask,
    inside_distance,
    write_paired_task_dataset,
    write_task_dataset,
)
from cyclegan.metrics.baselines import dataset_baselines
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim
from cyclegan.training.validation import closing_verdict

TASKS = SYNTHETIC_TASKS.names()
SMALL = {"n": 3, "size": 32, "n_test": 2}

# The best trivial baseline's mean PSNR (dB) / SSIM against the truth stays under these, per task, on
# 32 px scenes (n 20, 6 test images, seed 0). Measured: default 10.3 / 0.33, hue150 10.9 / 0.14, invert
# 10.0 / 0.14, permute_curve 9.8 / 0.28, colourize 16.3 / 0.72, grey 15.2 / 0.53, zebra 13.2 / 0.59,
# ellipses 17.1 / 0.86 (doing nothing's SSIM), tint 24.8 / 0.92, film 24.9 / 0.92. The near-identity
# tasks sit high by design (doing nothing keeps the structure), yet far from the truth.
BASELINE_BARS = {
    "default": (12.0, 0.42), "hue150": (12.5, 0.25), "invert": (12.0, 0.25), "permute_curve": (11.5, 0.38),
    "colourize": (18.0, 0.80), "grey": (17.0, 0.62), "zebra": (15.0, 0.68), "ellipses": (19.0, 0.92),
    "tint": (26.5, 0.95), "film": (26.5, 0.95),
}


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_registry_covers_the_issue_s_kinds_of_map() -> None:
    assert len(TASKS) >= 8 and DEFAULT_TASK in TASKS
    groups = {SYNTHETIC_TASKS.get(name).group for name in TASKS}
    assert groups == {NEAR, FAR, TEXTURE, SOME_OBJECTS, GREY}
    for name in TASKS:  # every task says why the unpaired domains pin its map down
        assert "dentifiable" in SYNTHETIC_TASKS.get(name).doc or name == DEFAULT_TASK, name
    with pytest.raises(ValueError, match="known: colourize, default, ellipses"):
        SYNTHETIC_TASKS.get("nope")


@pytest.mark.parametrize("task", TASKS)
def test_task_writes_the_layout_and_the_true_translations(tmp_path: Path, task: str) -> None:
    spec = SYNTHETIC_TASKS.get(task)
    root = write_task_dataset(task, tmp_path / task, n=4, size=32, n_test=2, n_val=3)
    expected = {"trainA": 4, "trainB": 4, "testA": 2, "testB": 2, "testA_gt": 2, "valA": 3, "valB": 3, "valA_gt": 3}
    if spec.invertible:
        expected.update({"testB_gt": 2, "valB_gt": 3})
    folders = {p.name: len(list(p.glob("*.png"))) for p in root.iterdir() if p.is_dir()}
    assert folders == expected
    assert read(root / "trainB" / "B_00000.png").shape == (32, 32, 3)
    for split in ("test", "val"):
        for path in sorted((root / f"{split}A").glob("*.png")):
            a, truth = read(path), read(root / f"{split}A_gt" / path.name)
            if spec.map_draws_b:  # the truth is the map applied to the input
                assert np.array_equal(truth, spec.pixel_map(a))
            else:  # colourize: the input is the map (grey) of the truth
                assert np.array_equal(a, spec.pixel_map(truth))
        for path in sorted((root / f"{split}B").glob("*.png")) if spec.invertible else []:
            b, truth = read(path), read(root / f"{split}B_gt" / path.name)
            assert np.array_equal(b, spec.pixel_map(truth)) if spec.map_draws_b else np.array_equal(truth,
                                                                                                 spec.pixel_map(b))
    if task != DEFAULT_TASK:
        assert json.loads((root / "synthetic.json").read_text())["task"] == task


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_gives_byte_identical_files(tmp_path: Path, task: str) -> None:
    first = files(write_task_dataset(task, tmp_path / "first", seed=5, **SMALL))
    assert files(write_task_dataset(task, tmp_path / "again", seed=5, **SMALL)) == first
    other = files(write_task_dataset(task, tmp_path / "other", seed=6, **SMALL))
    assert other["trainB/B_00000.png"] != first["trainB/B_00000.png"]


def test_default_task_is_the_built_in_set_and_shares_its_scenes(tmp_path: Path) -> None:
    built_in = files(write_synthetic_dataset(tmp_path / "built_in", **SMALL))
    assert files(write_task_dataset(DEFAULT_TASK, tmp_path / "default", **SMALL)) == built_in
    invert = write_task_dataset("invert", tmp_path / "invert", **SMALL)  # unfiltered: the same A scenes
    assert (invert / "trainA" / "A_00000.png").read_bytes() == built_in["trainA/A_00000.png"]
    assert files(write_paired_task_dataset(DEFAULT_TASK, tmp_path / "p1", **SMALL)) == files(
        write_paired_synthetic_dataset(tmp_path / "p2", **SMALL))


@pytest.mark.parametrize("task", ["zebra", "colourize"])
def test_paired_variant_holds_a_and_its_truth_side_by_side(tmp_path: Path, task: str) -> None:
    spec = SYNTHETIC_TASKS.get(task)
    root = write_paired_task_dataset(task, tmp_path / "paired", **SMALL)
    unpaired = write_task_dataset(task, tmp_path / "unpaired", **SMALL)
    assert sorted(p.name for p in root.iterdir()) == ["synthetic.json", "test", "train", "val"]
    both = read(root / "train" / "A_00001.png")
    a, b = both[:, :32], both[:, 32:]
    assert np.array_equal(a, read(unpaired / "trainA" / "A_00001.png"))
    assert np.array_equal(b, spec.pixel_map(a)) if spec.map_draws_b else np.array_equal(a, spec.pixel_map(b))


def test_ellipse_mask_threshold_separates_white_from_every_other_palette_colour() -> None:
    """The module docstring's derivation: white jittered down and darkened as far as the lighting goes
    stays above ELLIPSE_MIN; every other colour jittered up, unlit, stays below it."""
    jitter, shade = synthetic_module._JITTER, synthetic_module._MIN_SHADE
    ellipse = synthetic_module._SHAPE_COLOURS["ellipse"]
    assert np.floor((PALETTE_A[ellipse] - jitter) * shade).min() >= ELLIPSE_MIN
    others = np.delete(PALETTE_A, ellipse, axis=0)
    assert (np.minimum(others + jitter, 255).min(axis=1) < ELLIPSE_MIN).all()
    scene = synthetic_module.draw_scene(np.random.default_rng([0, 2, 0]), 64)
    assert 0 < ellipse_mask(scene).mean() < 0.5


def test_inside_distance_counts_from_the_outline_and_ignores_the_frame() -> None:
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True
    distance = inside_distance(mask)
    assert distance[4, 4] == 3 and distance[2, 2] == 1 and distance[0, 0] == 0
    assert (inside_distance(np.ones((5, 5), dtype=bool)) > 0).all()  # fills the frame: ends, never eroded away


def test_hue_rotation_is_exact_on_primaries_and_keeps_greys() -> None:
    colours = np.array([[255, 0, 0], [0, 255, 0], [128, 128, 128], [10, 200, 90]], dtype=np.uint8)
    assert np.array_equal(_hue_rotate(colours[:2], 120.0), [[0, 255, 0], [0, 0, 255]])
    assert np.array_equal(_hue_rotate(colours, 0.0), colours)
    assert np.array_equal(_hue_rotate(colours[2:3], 150.0), colours[2:3])


@pytest.mark.parametrize("task", TASKS)
def test_no_trivial_baseline_solves_the_task(tmp_path: Path, task: str) -> None:
    """The truth scores far above every baseline, and the best baseline stays under its measured bar."""
    root = write_task_dataset(task, tmp_path / task, n=20, size=32, n_test=6, seed=0)
    found = dataset_baselines(root, "test")
    assert found is not None and found["target_statistics"].endswith("trainB")
    best = {m: max(s[m] for s in found["baselines"].values()) for m in ("psnr", "ssim")}
    psnr_bar, ssim_bar = BASELINE_BARS[task]
    assert best["psnr"] < psnr_bar and best["ssim"] < ssim_bar, (task, best)
    truth = truth_scores(root, SYNTHETIC_TASKS.get(task))
    assert truth["psnr"] - best["psnr"] > 50 and truth["ssim"] - best["ssim"] > 0.05, (truth, best)


def truth_scores(root: Path, spec) -> dict[str, float]:
    """Mean PSNR (capped, as the baselines) and SSIM of the true translation of each testA image."""
    scores = {"psnr": 0.0, "ssim": 0.0}
    sources = sorted((root / "testA").glob("*.png"))
    for path in sources:
        truth = read(root / "testA_gt" / path.name)
        answer = spec.pixel_map(read(path)) if spec.map_draws_b else truth  # colourize: the scene itself
        unit = [torch.tensor(x).permute(2, 0, 1)[None].float() / 255 for x in (answer, truth)]
        scores["psnr"] += min(float(psnr(*unit)), PSNR_CAP_DB) / len(sources)
        scores["ssim"] += float(ssim(*unit)) / len(sources)
    return scores


def test_cli_writes_a_task_and_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "zebra"
    assert main(["data", "synthetic", str(out), "--task", "zebra", "--n", "2", "--n_test", "1", "--size", "32"]) == 0
    assert "task zebra" in capsys.readouterr().out and (out / "valA_gt" / "A_00000.png").is_file()
    assert main(["data", "synthetic", str(tmp_path / "p"), "--task", "grey", "--paired", "--n", "2", "--n_test", "1",
                 "--size", "32"]) == 0
    assert read(tmp_path / "p" / "train" / "A_00000.png").shape == (32, 64, 3)
    with pytest.raises(SystemExit):
        main(["data", "synthetic", str(tmp_path / "x"), "--task", "nope"])
    assert "colourize" in capsys.readouterr().err


RECORD = {"iter": 2000, "val_psnr": 14.21, "val_ssim": 0.449, "val_baseline_psnr": 17.19, "val_baseline_ssim": 0.63,
          "val_margin_psnr": 14.21 - 17.19, "val_margin_ssim": 0.449 - 0.63}
BASELINES = {"doing nothing": {"psnr": 6.0, "ssim": 0.3}, "constant image": {"psnr": 17.19, "ssim": 0.63}}


def test_closing_verdict_says_when_a_run_ends_below_a_trivial_baseline() -> None:
    lines = closing_verdict(RECORD, BASELINES, "cycle_gan", iterations=2000)
    assert len(lines) == 3
    assert lines[0].startswith("last validation (iteration 2000)") and "-2.98 dB PSNR, -0.181 SSIM" in lines[0]
    assert lines[1] == ("this run ends below a trivial baseline: PSNR 14.21 dB is 2.98 dB under constant image "
                        "(17.19 dB); SSIM 0.449 is 0.181 under constant image (0.630)")
    assert "--max_iters 4000" in lines[2] and "--model cut --preset quick" in lines[2]
    assert "reference's settings (no --preset" in lines[2]
    cut = closing_verdict(RECORD, None, "cut")
    assert "--model cycle_gan --preset quick" in cut[2] and "under the best trivial baseline (17.19 dB)" in cut[1]


def test_closing_verdict_is_one_line_above_the_baselines_and_silent_without_truth() -> None:
    above = {**RECORD, "val_psnr": 20.0, "val_ssim": 0.7, "val_margin_psnr": 2.81, "val_margin_ssim": 0.07}
    assert closing_verdict(above, BASELINES) == [
        "last validation (iteration 2000): val PSNR 20.00 dB, SSIM 0.700; margin over the best trivial baseline "
        "+2.81 dB PSNR, +0.070 SSIM"]
    ssim_only = {**above, "val_margin_ssim": -0.01}
    assert "SSIM 0.700 is 0.010 under" in closing_verdict(ssim_only, BASELINES)[1]
    assert closing_verdict(None) == [] and closing_verdict({"iter": 5, "val_cycle_l1": 0.2}) == []
