"""Trivial baselines: each is what it says, the margin is over the best, and a model that outputs a
constant or noise does not beat them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.metrics.baselines import (
    BASELINES,
    DomainStatistics,
    baseline_images,
    dataset_baselines,
    domain_statistics,
    format_comparison,
    image_statistics,
    margins,
    page_items,
    score_baselines,
)
from cyclegan.metrics.paired import psnr, ssim


def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def test_domain_statistics_are_the_pixels_moments(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(8, 10, 3)) for _ in range(3)]
    for i, a in enumerate(arrays):
        save(a, tmp_path / f"{i}.png")
    stats = domain_statistics(tmp_path)
    pixels = np.concatenate([a.reshape(-1, 3) for a in arrays]) / 255
    assert np.allclose(stats.mean.numpy(), pixels.mean(0), atol=1e-6)
    assert np.allclose(stats.std.numpy(), pixels.std(0), atol=1e-6)
    assert stats.cdf.shape == (3, 256) and torch.allclose(stats.cdf[:, -1], torch.ones(3))
    assert stats.source == str(tmp_path)


def test_each_baseline_does_what_it_says() -> None:
    torch.manual_seed(0)
    source = torch.rand(3, 16, 16) * 0.5
    target = image_statistics(torch.rand(3, 16, 16) * 0.3 + 0.6)
    out = baseline_images(source, target)
    assert set(out) == set(BASELINES)
    assert torch.equal(out["doing nothing"], source)
    assert torch.allclose(out["constant image"], target.mean[:, None, None].expand(3, 16, 16))
    moved = out["colour transfer"].flatten(1)
    assert torch.allclose(moved.mean(1), target.mean, atol=1e-4)
    assert torch.allclose(moved.std(1, unbiased=False), target.std, atol=1e-4)
    # Histogram matching keeps each channel's order of pixels and takes on the target's levels.
    matched = out["histogram matching"]
    for c in range(3):
        order = source[c].flatten().argsort()
        assert bool((matched[c].flatten()[order].diff() >= 0).all())
    assert matched.min() >= target.mean.min() - 3 * target.std.max()


def test_domain_level_transfer_uses_the_source_domain() -> None:
    """With source-domain statistics the transfer is one map for the whole domain, not per image."""
    source_domain = DomainStatistics(torch.full((3,), 0.2), torch.full((3,), 0.1), torch.zeros(3, 256), "A")
    target = DomainStatistics(torch.full((3,), 0.7), torch.full((3,), 0.2), torch.zeros(3, 256), "B")
    image = torch.full((3, 4, 4), 0.3)  # one flat image: its own std is zero
    out = baseline_images(image, target, source_domain)["colour transfer"]
    assert torch.allclose(out, torch.full_like(image, 0.7 + (0.3 - 0.2) * 2))


def test_margin_is_over_the_best_baseline_per_metric() -> None:
    baselines = {"a": {"psnr": 10.0, "ssim": 0.5}, "b": {"psnr": 12.0, "ssim": 0.3}}
    found = margins({"psnr": 15.0, "ssim": 0.4}, baselines)
    assert found == {"best_baseline_psnr": "b", "margin_psnr": 3.0, "best_baseline_ssim": "a",
                     "margin_ssim": pytest.approx(-0.1)}
    text = format_comparison({"psnr": 15.0, "ssim": 0.4}, baselines)
    assert text.splitlines()[-1] == "margin over the best baseline: +3.00 dB PSNR, -0.100 SSIM"
    items = page_items({"psnr": 15.0, "ssim": 0.4}, {"baselines": baselines})
    assert items["margin over the best baseline (b), PSNR (dB)"] == 3.0


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cyclegan.data import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("base") / "data", n=20, size=32, seed=1, n_test=6)


def _model_scores(outputs: list[torch.Tensor], truths: list[Path]) -> dict[str, float]:
    from cyclegan.data.transforms import unit_image_tensor

    pairs = [(out, unit_image_tensor(t, 3)[0]) for out, t in zip(outputs, truths, strict=True)]
    return {"psnr": float(np.mean([float(psnr(o, t)) for o, t in pairs])),
            "ssim": float(np.mean([float(ssim(o, t)) for o, t in pairs]))}


def test_constant_or_noise_model_does_not_beat_the_baselines(small_set: Path) -> None:
    """The quality bar the demo asserts: a model that outputs a constant or noise has no margin,
    while the true translation has a large one."""
    from cyclegan.data import synthetic_map
    from cyclegan.data.transforms import unit_image_tensor

    found = dataset_baselines(small_set, "test")
    assert found is not None
    sources = sorted((small_set / "testA").glob("*.png"))
    truths = [small_set / "testA_gt" / p.name for p in sources]
    generator = torch.Generator().manual_seed(0)
    constant = _model_scores([torch.full((3, 32, 32), 0.5) for _ in sources], truths)
    noise = _model_scores([torch.rand(3, 32, 32, generator=generator) for _ in sources], truths)
    learned = _model_scores(
        [torch.from_numpy(synthetic_map((unit_image_tensor(p, 3)[0].permute(1, 2, 0).numpy() * 255).round()))
         .permute(2, 0, 1).float() / 255 * 0.98 + 0.01 for p in sources], truths)
    for bad in (constant, noise):
        found_margin = margins(bad, found["baselines"])
        assert found_margin["margin_psnr"] <= 0 or found_margin["margin_ssim"] <= 0
    good = margins(learned, found["baselines"])
    assert good["margin_psnr"] > 10 and good["margin_ssim"] > 0.3


def test_dataset_baselines_needs_ground_truth(tmp_path: Path, small_set: Path) -> None:
    (tmp_path / "testA").mkdir()
    save(np.zeros((8, 8, 3)), tmp_path / "testA" / "x.png")
    assert dataset_baselines(tmp_path, "test") is None
    limited = dataset_baselines(small_set, "test", stems={"A_00000", "A_00001"})
    assert limited is not None and limited["count"] == 2


def test_score_baselines_checks_its_pairs(small_set: Path) -> None:
    stats = domain_statistics(small_set / "trainB")
    with pytest.raises(ValueError, match="as many sources as truths"):
        score_baselines([small_set / "testA" / "A_00000.png"], [], stats)
