"""FID / KID: the statistics against hand-computed values, and the whole folder path with a locally made
(random) Inception-v3 weights file — nothing is downloaded."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.metrics import evaluate_folders, format_table, to_json
from cyclegan.metrics.fid import (
    FEATURE_DIM,
    InceptionFeatures,
    InceptionWeightsMissing,
    clean_resize,
    fid_kid_folders,
    folder_features,
    frechet_distance_features,
    kernel_inception_distance,
    quantize,
    resolve_inception_weights,
)

from .conftest import code_pickle

# ------------------------------------------------------------------------------------------ FID


def _fid_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), eigenvalues of S1 S2 taken directly."""
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w = np.linalg.eigvals(s1 @ s2)
    assert np.max(np.abs(w.imag)) < 1e-8
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(w.real, 0, None))))


@pytest.mark.parametrize(("n1", "n2", "d"), [(5, 7, 30), (40, 3, 8), (60, 50, 6)])
def test_fid_matches_definition(n1: int, n2: int, d: int) -> None:
    # (5, 7, 30): fewer samples than dimensions (our small-matrix route); (60, 50, 6): torch-fidelity's.
    rng = np.random.default_rng(n1 + n2 + d)
    x, y = rng.normal(size=(n1, d)), rng.normal(0.3, 1.5, size=(n2, d)) @ rng.normal(size=(d, d))
    assert frechet_distance_features(x, y) == pytest.approx(_fid_by_definition(x, y), rel=1e-6)
    assert frechet_distance_features(y, x) == pytest.approx(frechet_distance_features(x, y), rel=1e-9)


def test_fid_identical_singular_sets_give_zero() -> None:
    # Fewer samples than dimensions, as with < 2048 images: exactly 0 for identical sets, no noise.
    f = np.random.default_rng(1).normal(size=(5, 2048))
    assert frechet_distance_features(f, f.copy()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="N, M >= 2"):
        frechet_distance_features(f[:1], f)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance_features(f, f[:, :3])


# ------------------------------------------------------------------------------------------ KID


def _kid_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, written out with explicit loops."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_direct_computation() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1.0, size=(7, 4))
    # subset_size = the whole set: every subset is a permutation, so each value is the full-set MMD².
    mean, std = kernel_inception_distance(x, y, num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(_kid_loops(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10)


def test_kid_subsets_are_the_direct_value_on_drawn_rows() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(6, 3)) + 1.0
    mean, std = kernel_inception_distance(x, y, num_subsets=4, subset_size=5, seed=7)
    # Re-draw the same rows (same generator, same order of calls) and compute each subset by loops.
    draw = np.random.default_rng(7)
    values = []
    for _ in range(4):
        xi = draw.choice(9, 5, replace=False)
        yi = draw.choice(6, 5, replace=False)
        values.append(_kid_loops(x[xi], y[yi]))
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)
    # Reproducible with one seed, different with another.
    assert kernel_inception_distance(x, y, 4, 5, seed=7) == (mean, std)
    assert kernel_inception_distance(x, y, 4, 5, seed=8)[0] != mean


def test_kid_subset_size_capped_and_errors() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=(10, 2))
    mean, _ = kernel_inception_distance(x, y, num_subsets=3, subset_size=1000)
    assert math.isfinite(mean)  # subset size became 3, not 1000
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(x[:1], y)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kernel_inception_distance(x, y[:, :1])


# ------------------------------------------------------------------------ quantisation and resize


def test_quantize_matches_saved_png_rounding() -> None:
    t = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0]).view(1, 1, 1, 6)
    assert quantize(t).flatten().tolist() == [0, 0, 128, 255, 255, 255]
    u = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    assert quantize(u) is u


def test_clean_resize_is_pil_bicubic_on_float() -> None:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(3, 40, 60), dtype=np.uint8)
    out = clean_resize(img, size=299)
    assert out.shape == (3, 299, 299) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    # Not re-quantised: bicubic upsampling yields fractional values.
    assert np.any(out != np.round(out))
    ref = np.asarray(Image.fromarray(img[1].astype(np.float32)).resize((299, 299), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(out[1], np.clip(ref, 0, 255))
    # Downscaling a fine checkerboard: an anti-aliased filter averages it to grey; a 2-tap bilinear
    # sample (the aliased resize clean-fid warns about) would keep large swings.
    board = ((np.indices((598, 598)).sum(0) % 2) * 255).astype(np.uint8)
    small = clean_resize(np.stack([board] * 3), size=299)
    assert abs(small.mean() - 127.5) < 1.0 and small.std() < 10
    with pytest.raises(TypeError, match="uint8"):
        clean_resize(img.astype(np.float32))


# ------------------------------------------------------------------------------- weights lookup


def test_missing_weights_error_tells_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(InceptionWeightsMissing) as info:
        resolve_inception_weights()
    msg = str(info.value)
    assert "cyclegan download inception" in msg
    assert str(tmp_path / "cache" / "inception" / "pt_inception-2015-12-05-6726825d.pth") in msg
    with pytest.raises(InceptionWeightsMissing, match="--inception_weights"):
        resolve_inception_weights(tmp_path / "nope.pth")
    # Cache filled by hand: found without arguments.
    target = tmp_path / "cache" / "inception" / "pt_inception-2015-12-05-6726825d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert resolve_inception_weights() == target


# ------------------------------------------------------------------------ the whole path, locally


def _random_inception_weights(path: Path) -> Path:
    """Save a randomly initialised torch-fidelity Inception-v3 state dict (no download involved)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    buffer = io.BytesIO()
    torch.save({}, buffer)
    buffer.seek(0)
    original = FeatureExtractorInceptionV3.load_state_dict
    # The constructor insists on loading weights; let it "load" an empty dict, keeping the random init.
    FeatureExtractorInceptionV3.load_state_dict = lambda self, *a, **k: None  # type: ignore[method-assign]
    try:
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("test", ["2048"], feature_extractor_weights_path=buffer)
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original  # type: ignore[method-assign]
    # PyTorch's default init shrinks activations through ~90 layers to ~1e-7; He init keeps them O(1),
    # so the distances below are far from floating-point noise.
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch_fidelity")
    return _random_inception_weights(tmp_path_factory.mktemp("inception") / "random_inception.pth")


@pytest.fixture(scope="module")
def extractor(weights: Path) -> InceptionFeatures:
    return InceptionFeatures(weights, device="cpu")


def _write_images(folder: Path, n: int, seed: int, size: tuple[int, int] = (48, 40), shift: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 200, size=(size[1] // 8, size[0] // 8, 3)).astype(np.uint8)
        img = Image.fromarray(np.clip(base.astype(int) + shift, 0, 255).astype(np.uint8)).resize(size, Image.NEAREST)
        img.save(folder / f"img{i:02d}.png")
    return folder


def test_features_match_torch_fidelity_forward_at_299(extractor: InceptionFeatures) -> None:
    # At 299x299 torch-fidelity's TF-style bilinear resize is the identity, so its own forward and ours
    # (which skips that resize) must give the same pool3 features.
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 299, 299), generator=g, dtype=torch.uint8)
    ours = extractor(images)
    with torch.no_grad():
        theirs = extractor.net(images)[0].double().numpy()
    assert ours.shape == (2, FEATURE_DIM) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert ours.std() > 1e-3  # the He-initialised network gives non-degenerate features


def test_weights_only_loading_refuses_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(code_pickle(tmp_path / "executed"))
    with pytest.raises(ValueError, match="weights_only"):
        InceptionFeatures(path)
    assert not (tmp_path / "executed").exists()
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="not the FID Inception-v3 weights"):
        InceptionFeatures(wrong)


@pytest.mark.slow
def test_fid_kid_folders_end_to_end(tmp_path: Path, weights: Path, extractor: InceptionFeatures) -> None:
    a = _write_images(tmp_path / "a", 4, seed=0)
    a_copy = _write_images(tmp_path / "a_copy", 4, seed=0, size=(48, 40))
    b = _write_images(tmp_path / "b", 3, seed=1, size=(64, 64), shift=60)

    same = fid_kid_folders(a, a_copy, extractor=extractor)
    print(f"identical folders: FID {same['fid']:.3g}, KID {same['kid']:.3g} ± {same['kid_std']:.3g}")
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert same["fid_samples"] == {"real": 4, "fake": 4}
    assert same["kid_subset_size"] == 4 and same["kid_subsets"] == 100

    # Through the weights path (a second, freshly loaded network), in batches of 2.
    diff = fid_kid_folders(a, b, weights_path=weights, batch_size=2)
    print(f"different folders: FID {diff['fid']:.4g}, KID {diff['kid']:.4g} ± {diff['kid_std']:.3g}")
    assert diff["fid"] > 1e-3 and diff["kid"] > 0
    assert diff["fid_samples"] == {"real": 4, "fake": 3} and diff["kid_subset_size"] == 3
    # The batch size does not change the features.
    np.testing.assert_allclose(folder_features(b, extractor, 1), folder_features(b, extractor, 16), rtol=1e-5)

    # A generated tensor, quantised, gives the same features as its saved PNG.
    t = torch.rand(1, 3, 40, 48) * 2 - 1
    png = quantize(t)[0]
    Image.fromarray(png.permute(1, 2, 0).numpy()).save(tmp_path / "t.png")
    np.testing.assert_allclose(extractor(quantize(t)), folder_features([tmp_path / "t.png"], extractor), rtol=1e-6)


@pytest.mark.slow
def test_evaluate_folders_fid_kid_json(tmp_path: Path, weights: Path) -> None:
    # A cycle_gan results folder: fid/kid use the fake_B images only, against all of the real folder.
    real = _write_images(tmp_path / "testB", 3, seed=3)
    results = tmp_path / "images"
    results.mkdir()
    for i, p in enumerate(sorted(real.iterdir())):
        Image.open(p).save(results / f"x{i}_fake_B.png")
        Image.open(p).save(results / f"x{i}_real_A.png")
    res = evaluate_folders(results, real, metrics=("fid", "kid"), inception_weights=weights)
    assert res["fid"] == pytest.approx(0.0, abs=1e-6)  # the fakes are copies of the reals (other names)
    assert set(res) >= {"fid", "kid", "kid_std", "fid_samples"} and "per_image" not in res
    assert res["fid_samples"] == {"real": 3, "fake": 3} and res["fake_label"] == "fake_B"
    parsed = json.loads(to_json(res))
    assert parsed["fid"] == pytest.approx(res["fid"])
    assert "FID" in format_table(res) and "KID" in format_table(res)
    # Mixed with a paired metric: same JSON shape as before plus the fid keys.
    gt = tmp_path / "gt"
    gt.mkdir()
    for i, p in enumerate(sorted(real.iterdir())):
        Image.open(p).save(gt / f"x{i}.png")
    mixed = evaluate_folders(results, gt, metrics=("psnr", "fid"), inception_weights=weights)
    assert mixed["count"] == 3 and mixed["psnr"] == pytest.approx(100.0) and "kid" not in mixed
    assert mixed["fid"] == pytest.approx(0.0, abs=1e-6)
    assert "FID" in format_table(mixed)
