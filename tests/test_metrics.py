"""Tests for cyclegan.metrics: PSNR/SSIM numerics and the folder evaluation behind ``cyclegan eval``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data import BadImageError
from cyclegan.metrics import PSNR_CAP_DB, evaluate_folders, format_table, psnr, split_label, ssim, to_json

# ----------------------------------------------------------------------------- reference SSIM


def _gauss_window_2d(win: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(win) - win // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g)
    return w / w.sum()


def _ssim_numpy(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Independent, deliberately naive SSIM: explicit loop over every valid 11x11 window.

    x, y: (C, H, W) float64. Population statistics with Gaussian weights, K1=0.01, K2=0.03, SSIM
    map averaged over the valid positions and then over channels (skimage's convention).
    """
    w = _gauss_window_2d()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_channel = []
    for xc, yc in zip(x, y, strict=True):
        h, wd = xc.shape
        vals = []
        for i in range(h - 10):
            for j in range(wd - 10):
                px, py = xc[i : i + 11, j : j + 11], yc[i : i + 11, j : j + 11]
                mx, my = (w * px).sum(), (w * py).sum()
                vx = (w * (px - mx) ** 2).sum()
                vy = (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        per_channel.append(np.mean(vals))
    return float(np.mean(per_channel))


# ------------------------------------------------------------------------------------- PSNR


def test_psnr_constant_offset() -> None:
    x = torch.full((3, 8, 8), 0.25)
    for d in (0.5, 0.1, 0.01):
        assert float(psnr(x + d, x)) == pytest.approx(20 * math.log10(1 / d), abs=1e-4)


def test_psnr_shapes_data_range_and_identical() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = psnr(x, y)
    assert out.shape == (4,)
    assert psnr(x[1], y[1]).dim() == 0
    assert float(psnr(x[1], y[1])) == pytest.approx(float(out[1]))
    # Scaling images and data_range together leaves PSNR unchanged.
    assert torch.allclose(psnr(x * 255, y * 255, data_range=255.0), out)
    # Hand value: MSE over pixels and channels.
    mse = float(((x[0].double() - y[0].double()) ** 2).mean())
    assert float(out[0]) == pytest.approx(10 * math.log10(1 / mse), rel=1e-9)
    assert math.isinf(float(psnr(x, x)[0]))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(3, 10, 20), torch.rand(3, 10, 20))
    with pytest.raises(ValueError):
        ssim(torch.rand(8, 8), torch.rand(8, 8))


# ------------------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one() -> None:
    x = torch.rand(2, 3, 20, 24)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_ssim_matches_naive_numpy() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 17, 19, generator=g)
    # Correlated second image so SSIM is far from 0 and the structure term matters.
    y = (0.7 * x + 0.3 * torch.rand(2, 3, 17, 19, generator=g)).clamp(0, 1)
    got = ssim(x, y)
    for i in range(2):
        want = _ssim_numpy(x[i].double().numpy(), y[i].double().numpy())
        assert float(got[i]) == pytest.approx(want, abs=1e-10)
    # data_range scaling: same value on 0..255 images.
    assert torch.allclose(ssim(x * 255, y * 255, data_range=255.0), got, atol=1e-10)


def test_ssim_constant_images_closed_form() -> None:
    # Constant images: variances and covariance are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.3, 0.6
    c1 = 0.01**2
    x, y = torch.full((1, 12, 12), a), torch.full((1, 12, 12), b)
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def test_ssim_symmetric_and_per_channel_mean() -> None:
    torch.manual_seed(3)
    x, y = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    assert float(ssim(x, y)) == pytest.approx(float(ssim(y, x)), abs=1e-12)
    per_channel = [float(ssim(x[c : c + 1], y[c : c + 1])) for c in range(3)]
    assert float(ssim(x, y)) == pytest.approx(sum(per_channel) / 3, abs=1e-12)


SSIM_FIXTURE = Path(__file__).parent / "fixtures" / "ssim_skimage.json"


@pytest.mark.parametrize("case", json.loads(SSIM_FIXTURE.read_text())["cases"], ids=lambda c: f"seed{c['seed']}")
def test_ssim_equals_skimage(case) -> None:
    """scikit-image's values, stored (its README line says how), so a clone without skimage checks them too."""
    rng = np.random.default_rng(case["seed"])
    x = rng.random(case["shape"])
    y = rng.random(case["shape"]) if case["noise"] is None else np.clip(
        x + case["noise"] * rng.standard_normal(case["shape"]), 0, 1)
    assert float(ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float())) == pytest.approx(case["ssim"], abs=1e-6)


# ---------------------------------------------------------------------------------- folders


def _img(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin(xx / 7.0 + seed) * np.cos(yy / 9.0)
    return np.clip(np.stack([base, base[::-1], 255 - base], -1) + rng.normal(0, 3, (h, w, 3)), 0, 255)


def test_split_label() -> None:
    assert split_label("horse1_fake_B") == ("horse1", "fake_B")
    assert split_label("horse1_real_A") == ("horse1", "real_A")
    assert split_label("x_rec_B") == ("x", "rec_B")
    assert split_label("n_idt_A") == ("n", "idt_A")
    assert split_label("img_fake") == ("img", "fake")
    assert split_label("a_real_fake_B") == ("a_real", "fake_B")
    assert split_label("horse1") == ("horse1", None)
    assert split_label("fake_B") == ("fake_B", None)  # nothing before the suffix: not a label
    assert split_label("my_fakeness") == ("my_fakeness", None)


def test_evaluate_matches_suffixes_and_reports_unmatched(tmp_path: Path) -> None:
    fake, real = tmp_path / "images", tmp_path / "gt"
    for i, stem in enumerate(["horse1", "horse2"]):
        gt = _smooth(24, 24, i)
        _img(real / f"{stem}.png", gt)
        _img(fake / f"{stem}_fake_B.png", np.clip(gt + 10, 0, 255))
        # Other visuals of a results folder must be ignored (real_A is identical to gt here: would give inf).
        _img(fake / f"{stem}_real_A.png", gt)
        _img(fake / f"{stem}_rec_A.png", gt)
    _img(fake / "zebra9_fake_B.png", _smooth(24, 24, 9))
    _img(real / "extra.jpg", _smooth(24, 24, 5))

    res = evaluate_folders(fake, real)
    assert res["count"] == 2
    assert [r["name"] for r in res["per_image"]] == ["horse1", "horse2"]
    assert res["fake_label"] == "fake_B"
    assert {"name": "zebra9_fake_B.png", "side": "fake"} in res["unmatched"]
    assert {"name": "extra.jpg", "side": "real"} in res["unmatched"]
    assert len(res["unmatched"]) == 2
    for r in res["per_image"]:
        assert 20 < r["psnr"] < 40 and math.isfinite(r["psnr"])
        assert 0 < r["ssim"] < 1
        assert r["resized"] is False
    assert res["psnr"] == pytest.approx(sum(r["psnr"] for r in res["per_image"]) / 2)
    assert res["ssim"] == pytest.approx(sum(r["ssim"] for r in res["per_image"]) / 2)

    # JSON shape (what `cyclegan eval --format json` prints).
    data = json.loads(to_json(res))
    assert set(data) >= {"psnr", "ssim", "count", "per_image", "unmatched"}
    assert isinstance(data["psnr"], float) and isinstance(data["count"], int)
    assert set(data["per_image"][0]) >= {"name", "psnr", "ssim"}

    table = format_table(res)
    assert "horse1" in table and "mean" in table and "PSNR" in table and "unmatched: 1 fake, 1 real" in table


def test_evaluate_identical_gives_inf_and_capped_mean(tmp_path: Path) -> None:
    a, b = _smooth(16, 16, 1), _smooth(16, 16, 2)
    _img(tmp_path / "fake" / "a.png", a)
    _img(tmp_path / "real" / "a.png", a)
    _img(tmp_path / "fake" / "b.png", np.clip(b + 5, 0, 255))  # plain names: the whole folder is used
    _img(tmp_path / "real" / "b.png", b)
    res = evaluate_folders(tmp_path / "fake", tmp_path / "real")
    by_name = {r["name"]: r for r in res["per_image"]}
    assert math.isinf(by_name["a"]["psnr"]) and by_name["a"]["ssim"] == pytest.approx(1.0)
    assert math.isfinite(res["psnr"])
    assert res["psnr"] == pytest.approx((PSNR_CAP_DB + by_name["b"]["psnr"]) / 2)
    # Strict JSON: no bare Infinity token.
    text = to_json(res)
    assert "Infinity" not in text
    assert json.loads(text)["per_image"][0]["psnr"] == "inf"
    assert "inf" in format_table(res)


def test_evaluate_resizes_fake_to_ground_truth(tmp_path: Path) -> None:
    gt = _smooth(32, 40, 0)
    _img(tmp_path / "real" / "p.png", gt)
    big = np.asarray(Image.fromarray(gt.astype(np.uint8)).resize((80, 64), Image.BICUBIC))
    _img(tmp_path / "fake" / "p_fake_B.png", big)
    res = evaluate_folders(tmp_path / "fake", tmp_path / "real")
    assert res["count"] == 1 and res["per_image"][0]["resized"] is True
    assert res["psnr"] > 25 and res["ssim"] > 0.8
    assert "(resized)" in format_table(res)


def test_evaluate_single_results_folder_pix2pix_style(tmp_path: Path) -> None:
    # pix2pix results: real_A, fake_B, real_B side by side; --fake and --real both point at it.
    d = tmp_path / "images"
    gt = _smooth(16, 16, 7)
    _img(d / "s1_real_A.png", 255 - gt)
    _img(d / "s1_fake_B.png", gt)
    _img(d / "s1_real_B.png", gt)
    res = evaluate_folders(d, d)
    assert res["count"] == 1 and math.isinf(res["per_image"][0]["psnr"])


def test_evaluate_metric_selection_and_fake_label(tmp_path: Path) -> None:
    gt = _smooth(16, 16, 3)
    _img(tmp_path / "real" / "q.png", gt)
    _img(tmp_path / "fake" / "q_fake_B.png", np.clip(gt + 20, 0, 255))
    _img(tmp_path / "fake" / "q_fake_A.png", gt)
    res = evaluate_folders(tmp_path / "fake", tmp_path / "real", metrics=("psnr",))
    assert "ssim" not in res and "ssim" not in res["per_image"][0]
    assert math.isfinite(res["psnr"])  # fake_B chosen by default
    res_a = evaluate_folders(tmp_path / "fake", tmp_path / "real", metrics=["ssim"], fake_label="fake_A")
    assert res_a["ssim"] == pytest.approx(1.0) and "psnr" not in res_a
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_folders(tmp_path / "fake", tmp_path / "real", metrics=("bogus",))


def test_evaluate_errors(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    with pytest.raises(FileNotFoundError, match="fake folder"):
        evaluate_folders(tmp_path / "nope", tmp_path / "real")
    _img(tmp_path / "fake" / "cat_fake_B.png", _smooth(16, 16, 1))
    with pytest.raises(ValueError, match="no images"):
        evaluate_folders(tmp_path / "fake", tmp_path / "real")
    _img(tmp_path / "real" / "dog.png", _smooth(16, 16, 1))
    with pytest.raises(ValueError, match="no fake/real pairs") as exc:
        evaluate_folders(tmp_path / "fake", tmp_path / "real")
    assert "cat" in str(exc.value) and "dog" in str(exc.value)
    _img(tmp_path / "real" / "dog.jpg", _smooth(16, 16, 1))
    with pytest.raises(ValueError, match="more than one image"):
        evaluate_folders(tmp_path / "fake", tmp_path / "real")


def test_evaluate_reads_images_by_the_data_loaders_rules(tmp_path: Path) -> None:
    """A phone photo stored sideways with an EXIF orientation tag is scored upright (as the data
    loader feeds it to the network), and an unreadable file is named, not a PIL traceback."""
    upright = _smooth(24, 16, 3).astype(np.uint8)  # 24 rows × 16 columns as displayed
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # EXIF 6 = rotate 90° clockwise to display
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "real").mkdir()
    Image.fromarray(stored).save(tmp_path / "real" / "photo.png", exif=exif)
    _img(tmp_path / "fake" / "photo_fake_B.png", upright)
    res = evaluate_folders(tmp_path / "fake", tmp_path / "real")
    record = res["per_image"][0]
    assert not record.get("resized") and math.isinf(record["psnr"])

    (tmp_path / "fake" / "photo_fake_B.png").write_bytes(b"not an image")
    with pytest.raises(BadImageError, match="photo_fake_B.png"):
        evaluate_folders(tmp_path / "fake", tmp_path / "real")
