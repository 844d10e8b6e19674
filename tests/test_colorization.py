"""``--model colorization``: the Lab conversion against scikit-image (the reference's), the codec's
scaling, the data set mode, one step, a short run through the trainer and loading its G back."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color

from cyclegan.config import TrainConfig
from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.core.precision import Precision
from cyclegan.data import DatasetError, create_dataset
from cyclegan.recipes import MODELS, create_model, default_config
from cyclegan.recipes.codec import picture_network
from cyclegan.recipes.colorization.colour import LabCodec, rgb_to_scaled_lab, scaled_lab_to_rgb
from cyclegan.recipes.colorization.model import ColorizationModel
from cyclegan.recipes.loading import load_generators
from cyclegan.training.trainer import train

CPU = torch.device("cpu")
TOLERANCE = 1e-3  # the bound, in Lab units (L 0..100) and in RGB [0, 1]

# Per channel: black and white, the sRGB curve's knee (0.04045) and its neighbours, one 8-bit step.
EDGE_LEVELS = (0.0, 1 / 255, 0.04, 0.04045, 0.041, 0.5, 254 / 255, 1.0)


def edge_colours() -> np.ndarray:
    """Every RGB combination of EDGE_LEVELS, K×3 in [0, 1]."""
    return np.stack(np.meshgrid(*[EDGE_LEVELS] * 3, indexing="ij"), -1).reshape(-1, 3)


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """K×3 → 1×3×K×1 (K pixels in a column), float32."""
    return torch.tensor(pixels.T[None, :, :, None], dtype=torch.float32)


def as_pixels(tensor: torch.Tensor) -> np.ndarray:
    """1×C×K×1 → K×C, float64."""
    return tensor[0, :, :, 0].T.double().numpy()


def ours_rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    light, ab = rgb_to_scaled_lab(as_tensor(rgb))
    return np.concatenate([(as_pixels(light) + 1) * 50, as_pixels(ab) * 110], 1)


def ours_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    tensor = as_tensor(lab)
    return as_pixels(scaled_lab_to_rgb(tensor[:, :1] / 50 - 1, tensor[:, 1:] / 110))


def skimage_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # out-of-gamut Lab: "... negative Z values that have been clipped"
        warnings.simplefilter("ignore")
        return color.lab2rgb(lab[None])[0]


def random_lab(n: int, seed: int = 0) -> np.ndarray:
    """What a network's output can decode to: any L in [0, 100] and ab in [-110, 110], most of it out of
    the sRGB gamut, plus the corners of that box."""
    rng = np.random.default_rng(seed)
    lab = np.stack([rng.uniform(0, 100, n), rng.uniform(-110, 110, n), rng.uniform(-110, 110, n)], 1)
    corners = np.stack(np.meshgrid([0.0, 50.0, 100.0], [-110.0, 0.0, 110.0], [-110.0, 0.0, 110.0],
                                   indexing="ij"), -1).reshape(-1, 3)
    return np.concatenate([lab, corners])


def lab_errors() -> dict[str, float]:
    """Largest absolute difference from scikit-image, per conversion (also printed by the report)."""
    rgb = np.concatenate([np.random.default_rng(0).random((4096, 3)), edge_colours()])
    lab = color.rgb2lab(rgb[None])[0]
    any_lab = random_lab(4096)
    return {
        "rgb2lab": float(np.abs(ours_rgb_to_lab(rgb) - lab).max()),
        "lab2rgb (sRGB colours)": float(np.abs(ours_lab_to_rgb(lab) - color.lab2rgb(lab[None])[0]).max()),
        "lab2rgb (any L, ab)": float(np.abs(ours_lab_to_rgb(any_lab) - skimage_lab_to_rgb(any_lab)).max()),
        "round trip rgb": float(np.abs(ours_lab_to_rgb(ours_rgb_to_lab(rgb)) - rgb).max()),
    }


def test_lab_conversion_matches_scikit_image_on_random_and_edge_colours():
    errors = lab_errors()
    assert all(error < TOLERANCE for error in errors.values()), errors


def test_lab_conversion_keeps_full_precision_under_bf16_autocast():
    rgb = np.random.default_rng(1).random((256, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        light, ab = rgb_to_scaled_lab(as_tensor(rgb))
        back = scaled_lab_to_rgb(light, ab)
    assert light.dtype == ab.dtype == back.dtype == torch.float32
    assert np.abs(as_pixels(back) - rgb).max() < TOLERANCE


# --- the codec ------------------------------------------------------------------------------------


def test_codec_scales_as_the_reference_and_decodes_to_rgb():
    codec = LabCodec()
    assert (codec.input_nc, codec.output_nc, codec.read_nc, codec.image_nc) == (1, 2, 3, 3)
    assert not codec.is_identity
    pictures = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    pictures[0, :, 0, 0], pictures[0, :, 0, 1] = 1.0, 0.0  # white: L 100, black: L 0
    light = codec.encode(pictures)
    assert light.shape == (2, 1, 8, 12)
    assert light[0, 0, 0, 0].item() == pytest.approx(1.0, abs=1e-4)  # 100 / 50 - 1
    assert light[0, 0, 0, 1].item() == pytest.approx(-1.0, abs=1e-4)  # 0 / 50 - 1
    lab = color.rgb2lab(pictures.permute(0, 2, 3, 1).double().numpy())
    assert np.abs(light[:, 0].double().numpy() - (lab[..., 0] / 50 - 1)).max() < TOLERANCE / 50
    ab = torch.tensor(lab[..., 1:] / 110, dtype=torch.float32).permute(0, 3, 1, 2)  # the true ab, scaled
    decoded = codec.decode(light, ab)
    assert decoded.shape == (2, 3, 8, 12) and decoded.dtype == torch.float32
    assert (decoded - pictures).abs().max() < TOLERANCE
    # ab = 0 is grey at the source's lightness; a grey (1-channel) picture is read as RGB.
    grey = codec.decode(light, torch.zeros(2, 2, 8, 12))
    assert (grey - grey[:, :1]).abs().max() < TOLERANCE
    assert torch.allclose(codec.encode(pictures[:, :1]), codec.encode(pictures[:, :1].expand(-1, 3, -1, -1)))
    # fp64 stays fp64 (the tiler measures networks in it); half precision is computed in fp32.
    assert codec.decode(light.double(), ab.double()).dtype == codec.encode(pictures.double()).dtype == torch.float64
    assert codec.encode(pictures.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="L \\(1 channel\\) to ab"):
        LabCodec(3, 3)


def test_recipe_gives_the_lab_codec_and_its_picture_network_maps_pictures_to_pictures():
    config = tiny_config()
    direction = ColorizationModel.direction("AtoB")
    codec = MODELS.get("colorization").image_codec(config, direction)
    assert isinstance(codec, LabCodec) and ColorizationModel.channels(config, direction) == (1, 2)
    with pytest.raises(ValueError, match="AtoB only"):
        ColorizationModel.direction("BtoA")
    G = create_model(config, is_train=False).nets["G"].eval()
    coded = picture_network(G, codec)
    out = coded(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert out.shape == (1, 3, 32, 32) and out.min() >= -1 and out.max() <= 1


# --- config, data, step ---------------------------------------------------------------------------


def tiny_config(dataroot: Path | str = "", checkpoints: Path | str = "ck", **optim) -> TrainConfig:
    """Colorization's own defaults at toy size (32 px, ngf / ndf 4; unet_256 needs 256 px)."""
    config = default_config("colorization")
    config.data = dataclasses.replace(config.data, dataroot=str(dataroot), load_size=36, crop_size=32,
                                      num_threads=0, batch_size=2)
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4)
    config.optim = dataclasses.replace(config.optim, n_epochs=1, n_epochs_decay=1, **optim)
    config.runtime = dataclasses.replace(
        config.runtime, name="run", checkpoints_dir=str(checkpoints), device="cpu", seed=0, deterministic=True,
        print_freq=1, display_freq=1, save_latest_freq=1000, save_epoch_freq=1, progress_bar=False,
        precision="fp32", tensorboard=False)
    return config


def write_photos(folder: Path, n: int = 4, size: int = 40, grey: int = 0) -> Path:
    """``n`` smooth colour pictures (the first ``grey`` of them grey) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size)
    for i in range(n):
        weights = rng.random((3, 3))
        pixels = np.stack([w[0] * ramp[:, None] + w[1] * ramp[None, :] + w[2] * 0.3 for w in weights], -1)
        pixels = (np.clip(pixels / 2, 0, 1) * 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("L") if i < grey else image).save(folder / f"photo_{i}.png")
    return folder


def test_defaults_are_pix2pix_with_lab_channels_and_data():
    config = default_config("colorization")
    pix2pix = default_config("pix2pix")
    assert (config.data.dataset_mode, config.data.input_nc, config.data.output_nc) == ("colorization", 1, 2)
    assert dataclasses.asdict(config.model) == {**dataclasses.asdict(pix2pix.model), "model": "colorization"}
    assert config.pix2pix == pix2pix.pix2pix and ColorizationModel.config_section == "pix2pix"
    config.data.output_nc = 3
    with pytest.raises(ValueError, match="--output_nc 3"):
        create_model(config)


def test_dataset_items_are_scaled_l_and_ab_of_each_photo(tmp_path):
    write_photos(tmp_path / "d" / "train", n=3, grey=1)
    (tmp_path / "d" / "train" / "broken.png").write_bytes(b"not an image")
    config = tiny_config(tmp_path / "d")
    config.data.max_bad_fraction = 0.5
    dataset = create_dataset(config.data, seed=0)
    assert len(dataset) == 3 and dataset.skipped_bad == 1
    for index in range(3):
        item = dataset[(0, index)]
        assert item["A"].shape == (1, 32, 32) and item["B"].shape == (2, 32, 32)
        assert item["A"].dtype == item["B"].dtype == torch.float32 and type(item["A"]) is torch.Tensor
        assert item["A"].min() >= -1 and item["A"].max() <= 1 and item["B"].abs().max() <= 1
        assert item["A_paths"] == item["B_paths"] and Path(item["A_paths"]).parent.name == "train"
        assert torch.equal(dataset[(0, index)]["B"], item["B"])  # a pure function of (seed, epoch, index)
    # photo_0 is grey: no colour; the others have some. L and ab are those of the (cropped) picture.
    assert dataset[(0, 0)]["B"].abs().max() < 1e-3 and dataset[(0, 1)]["B"].abs().max() > 0.05
    picture = scaled_lab_to_rgb(dataset[(0, 1)]["A"][None], dataset[(0, 1)]["B"][None])[0]
    lab = color.rgb2lab(picture.permute(1, 2, 0).double().numpy())
    assert np.abs(lab[..., 1:] / 110 - dataset[(0, 1)]["B"].permute(1, 2, 0).numpy()).max() < TOLERANCE
    with pytest.raises(DatasetError):
        create_dataset(dataclasses.replace(config.data, phase="test"))
    with pytest.raises(ValueError, match="AtoB"):
        create_dataset(dataclasses.replace(config.data, direction="BtoA"))


def test_step_trains_l_to_ab_and_shows_rgb_visuals():
    model = create_model(tiny_config())
    assert model.nets["G"].model[1].in_channels == 1 and model.nets["D"].model[0].in_channels == 3
    model.build_optimizers()
    pictures = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    light, ab = rgb_to_scaled_lab(pictures)
    result = model.training_step({"A": light, "B": ab}, Precision("fp32", CPU))
    assert list(result.losses) == ["G_GAN", "G_L1", "D_real", "D_fake"] and not result.skipped
    visuals = model.current_visuals()
    assert list(visuals) == ["real_A", "real_B_rgb", "fake_B_rgb"]
    assert [v.shape[1] for v in visuals.values()] == [1, 3, 3]
    assert all(v.min() >= -1 and v.max() <= 1 for v in visuals.values())
    assert ((visuals["real_B_rgb"] + 1) / 2 - pictures).abs().max() < TOLERANCE  # L and true ab: the photo
    out = model.translate({"A": light, "B": ab})
    assert {"real_A", "fake_B", "real_B", "fake_B_rgb", "real_B_rgb"} <= set(out)
    assert out["fake_B"].shape == (2, 2, 32, 32) and out["fake_B_rgb"].shape == (2, 3, 32, 32)
    assert "real_B_rgb" not in model.translate({"A": light})


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_steps_write_g_and_d_and_load_generators_rebuilds_g(tmp_path):
    data = write_photos(tmp_path / "d" / "train", n=4).parent
    result = train(tiny_config(data, tmp_path / "ck", max_iters=2))
    assert result.progress.total_iters == 2 and result.checkpoint.exists()
    state = load_checkpoint(result.checkpoint)
    assert set(state["nets"]) == {"G", "D"}
    pages = {p.name.split("_", 1)[1] for p in (result.run_dir / "web" / "images").glob("epoch*.png")}
    assert pages == {"real_A.png", "real_B_rgb.png", "fake_B_rgb.png"}
    loaded = load_generators(result.run_dir)
    assert list(loaded.nets) == ["G"] and loaded.config.model.model == "colorization"
    out = loaded.nets["G"](torch.zeros(1, 1, 32, 32))
    assert loaded.nets["G"].model[1].in_channels == 1 and out.shape == (1, 2, 32, 32)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cli_trains_the_reference_command_line(tmp_path):
    write_photos(tmp_path / "D" / "train", n=4, size=72)
    write_photos(tmp_path / "D" / "test", n=2, size=72)
    command = [sys.executable, "-m", "cyclegan", "train", "--dataroot", str(tmp_path / "D"), "--name", "n",
               "--model", "colorization", "--max_iters", "3", "--preset", "quick",
               "--checkpoints_dir", str(tmp_path / "ck")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "ck" / "n" / "latest.safetensors")
    assert set(state["nets"]) == {"G", "D"}
    config = TrainConfig.from_dict(state["config"])
    assert (config.data.dataset_mode, config.data.input_nc, config.data.output_nc) == ("colorization", 1, 2)
