"""LPIPS from local weights only: random torchvision backbones saved to tmp_path, no network."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cyclegan.metrics import evaluate_folders, format_table, to_json
from cyclegan.metrics.lpips import (
    BACKBONES,
    LPIPS,
    LPIPSWeightsMissing,
    _package_linear_path,
    resolve_lpips_backbone,
    resolve_lpips_linear,
)

from .conftest import code_pickle

HAS_LPIPS_PACKAGE = _package_linear_path("alex") is not None
# The LPIPS paper's taps: the channels of each linear layer, and where each slice ends in torchvision's
# ``features`` (alexnet: features[0:2], [2:5], [5:8], [8:10], [10:12]).
LINEAR_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
                   "squeeze": (64, 128, 256, 384, 384, 512, 512)}
SLICE_ENDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30), "squeeze": (2, 5, 8, 10, 11, 12, 13)}


def _save_backbone(path: Path, net: str = "alex", seed: int = 0, with_classifier: bool = False) -> Path:
    """A random torchvision ``<net>`` state dict with torchvision's key names (``features.N.*``).

    Only the features are saved (the real file's 61M-parameter classifier would be 230 MB); a small
    stand-in ``classifier`` key shows such keys are ignored.
    """
    torch.manual_seed(seed)
    features = getattr(torchvision.models, BACKBONES[net].constructor)(weights=None).features
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    if with_classifier:
        state["classifier.1.weight"] = torch.zeros(4, 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _save_linear(path: Path, net: str = "alex", seed: int = 0) -> Path:
    """Random non-negative v0.1-style linear weights (``lin<k>.model.1.weight``, ``(1, C, 1, 1)``)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LINEAR_CHANNELS[net])
    }
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lpips")
    return _save_backbone(root / "alexnet.pth", with_classifier=True), _save_linear(root / "lin_alex.pth")


@pytest.fixture(scope="module")
def model(weights: tuple[Path, Path]) -> LPIPS:
    return LPIPS(weights[0], linear_weights=weights[1])


def _images(n: int = 2, size: tuple[int, int] = (48, 40), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish images (a low-res pattern upsampled) so that noise is a real perturbation.
    low = torch.rand(n, 3, size[0] // 8, size[1] // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------- the distance


def test_identical_images_give_zero(model: LPIPS) -> None:
    x = _images()
    with torch.no_grad():
        d = model(x, x.clone())
    assert d.shape == (2,)
    assert torch.equal(d, torch.zeros(2))
    assert model(x[0], x[0]).dim() == 0


def test_symmetric_nonnegative_and_grows_with_noise(model: LPIPS) -> None:
    x = _images(n=3)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        dists = [model(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
        y = (x + 0.1 * noise).clamp(0, 1)
        assert torch.allclose(model(x, y), model(y, x), rtol=1e-5, atol=1e-7)
    for d in dists:
        assert (d > 0).all()
    assert (dists[0] < dists[1]).all() and (dists[1] < dists[2]).all()


def test_uint8_input_matches_float(model: LPIPS) -> None:
    x8 = (_images() * 255).round().to(torch.uint8)
    y8 = (_images(seed=3) * 255).round().to(torch.uint8)
    with torch.no_grad():
        assert torch.allclose(model(x8, y8), model(x8.float() / 255, y8.float() / 255))


def test_bad_inputs_are_refused(model: LPIPS) -> None:
    x = _images()
    with pytest.raises(ValueError, match="one shape"):
        model(x, x[:1])
    with pytest.raises(ValueError, match="at least 31x31"):
        model(x[..., :30, :], x[..., :30, :])
    with pytest.raises(ValueError, match="RGB"):
        model(x[:, :1], x[:, :1])


def test_usable_as_a_loss(model: LPIPS) -> None:
    x = _images()
    y = _images(seed=5).requires_grad_(True)
    model(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.skipif(not HAS_LPIPS_PACKAGE, reason="the lpips package (its shipped linear weights) is not installed")
@pytest.mark.parametrize("net", ["alex", pytest.param("vgg", marks=pytest.mark.slow), "squeeze"])
def test_same_as_the_lpips_package(tmp_path: Path, net: str) -> None:
    """Our torchvision-based network with the shipped v0.1 linear layers == lpips.LPIPS, to float precision.

    The backbone is loaded into lpips' slices with its own key names (``net.slice<k>.<N>.*``), which
    also checks that our ``features.N`` -> slice mapping is lpips' one.
    """
    lpips = pytest.importorskip("lpips")
    backbone = _save_backbone(tmp_path / f"{net}.pth", net=net)
    ours = LPIPS(backbone, net=net)  # default linear weights: the package's shipped v0.1 file
    assert ours.linear_path == _package_linear_path(net)

    with warnings.catch_warnings():  # lpips calls torchvision's deprecated pretrained=False
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    cuts = SLICE_ENDS[net]
    mapped = {}
    for key, value in torch.load(backbone, weights_only=True).items():
        index = int(key.split(".")[1])
        if index < cuts[-1]:
            slice_no = next(j for j, c in enumerate(cuts) if index < c) + 1
            mapped[f"net.slice{slice_no}.{key[len('features.'):]}"] = value
    missing, unexpected = ref.load_state_dict(mapped, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("net.")]

    x = _images(n=3, size=(64, 48))
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    with torch.no_grad():
        expected = ref(x, y, normalize=True).flatten()
        got = ours(x, y)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), (got, expected)


# ------------------------------------------------------------------------------ weights on disk


def test_weights_only_loading_refuses_code(tmp_path: Path, weights: tuple[Path, Path]) -> None:
    evil = tmp_path / "evil.pth"
    evil.write_bytes(code_pickle(tmp_path / "executed", "features.0.weight"))
    with pytest.raises(ValueError, match="weights_only"):
        LPIPS(evil, linear_weights=weights[1])
    with pytest.raises(ValueError, match="weights_only"):
        LPIPS(weights[0], linear_weights=evil)
    assert not (tmp_path / "executed").exists()


def test_wrong_files_are_refused(tmp_path: Path, weights: tuple[Path, Path]) -> None:
    vgg = _save_backbone(tmp_path / "vgg.pth", net="vgg")
    with pytest.raises(ValueError, match="not torchvision alexnet weights"):
        LPIPS(vgg, linear_weights=weights[1])
    with pytest.raises(ValueError, match="not LPIPS-alex linear weights"):
        LPIPS(weights[0], linear_weights=_save_linear(tmp_path / "lin_vgg.pth", net="vgg"))
    negative = tmp_path / "neg.pth"
    state = torch.load(weights[1], weights_only=True)
    state["lin0.model.1.weight"] = -state["lin0.model.1.weight"]
    torch.save(state, negative)
    with pytest.raises(ValueError, match="non-negative"):
        LPIPS(weights[0], linear_weights=negative)
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        LPIPS(weights[0], net="resnet")


def test_missing_weights_error_tells_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CYCLEGAN_CACHE", str(cache))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LPIPSWeightsMissing) as info:
        resolve_lpips_backbone()
    msg = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in msg
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg
    assert "--lpips_weights" in msg and str(cache / "lpips" / "alexnet-owt-7be5be79.pth") in msg
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(LPIPSWeightsMissing, match="--lpips_weights"):
        resolve_lpips_backbone(tmp_path / "nope.pth")
    with pytest.raises(LPIPSWeightsMissing, match="vgg16-397923af.pth"):
        resolve_lpips_backbone(net="vgg")

    # Found in the cache, in torch.hub's cache, or in a folder passed as the path.
    hub_file = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"x")
    assert resolve_lpips_backbone() == hub_file
    cached = cache / "lpips" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_lpips_backbone() == cached
    assert resolve_lpips_backbone(cache / "lpips") == cached


def test_missing_linear_weights_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CYCLEGAN_CACHE", str(cache))
    monkeypatch.setattr("cyclegan.metrics.lpips._package_linear_path", lambda net: None)
    with pytest.raises(LPIPSWeightsMissing) as info:
        resolve_lpips_linear()
    msg = str(info.value)
    assert "pip install lpips" in msg and "lpips/weights/v0.1/alex.pth" in msg
    assert str(cache / "lpips" / "lpips_v0.1_alex.pth") in msg
    with pytest.raises(LPIPSWeightsMissing, match="linear-layer weights not found"):
        resolve_lpips_linear(tmp_path / "nope.pth")
    target = cache / "lpips" / "lpips_v0.1_alex.pth"
    target.parent.mkdir(parents=True)
    _save_linear(target)
    assert resolve_lpips_linear() == target


def test_construction_does_not_touch_the_network(
    weights: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args, **kwargs):
        raise AssertionError("LPIPS tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    model = LPIPS(weights[0], linear_weights=weights[1])
    assert (model.backbone_path, model.linear_path) == weights
    x = _images(n=1)
    with torch.no_grad():
        assert model(x, x).item() == 0.0


# --------------------------------------------------------------------------- evaluate_folders


def _write(folder: Path, name: str, arr: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


def test_evaluate_folders_lpips(
    tmp_path: Path, weights: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Default linear weights come from the cache (works with or without the lpips package installed).
    cache = tmp_path / "cache"
    monkeypatch.setenv("CYCLEGAN_CACHE", str(cache))
    (cache / "lpips").mkdir(parents=True)
    (cache / "lpips" / "lpips_v0.1_alex.pth").write_bytes(weights[1].read_bytes())

    rng = np.random.default_rng(0)
    real, fake = tmp_path / "real", tmp_path / "fake"
    base = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 48x48
    noisy = np.clip(base.astype(int) + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)
    _write(real, "a.png", base)
    _write(fake, "a_fake_B.png", base)  # identical
    _write(real, "b.png", base)
    _write(fake, "b_fake_B.png", noisy)
    _write(fake, "b_real_A.png", noisy)  # not a fake: ignored

    res = evaluate_folders(fake, real, metrics=("psnr", "lpips"), lpips_weights=weights[0])
    per = {r["name"]: r for r in res["per_image"]}
    assert set(per) == {"a", "b"}
    assert per["a"]["lpips"] == 0.0 and per["b"]["lpips"] > 0.0
    assert math.isclose(res["lpips"], (per["a"]["lpips"] + per["b"]["lpips"]) / 2)
    assert res["lpips_net"] == "alex" and "psnr" in res and "ssim" not in res

    # The same value as the model called directly on the loaded images.
    ref = LPIPS(weights[0], linear_weights=weights[1])
    x = torch.from_numpy(noisy).permute(2, 0, 1).float() / 255
    y = torch.from_numpy(base).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        assert math.isclose(per["b"]["lpips"], float(ref(x, y)), rel_tol=1e-6)

    assert "LPIPS" in format_table(res)
    assert '"lpips"' in to_json(res)

    # Defaults are unchanged (no weights needed), and missing weights fail with the instructions.
    assert "lpips" not in evaluate_folders(fake, real)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LPIPSWeightsMissing, match="alexnet-owt-7be5be79.pth"):
        evaluate_folders(fake, real, metrics=("lpips",))
