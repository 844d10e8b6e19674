"""The recipe contract (models/base.py) and pix2pix: every registered recipe goes through the same
trainer, checkpoints, translation, export and pages; pix2pix's flags, defaults, data and step."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import build_parser, config_from_args, main
from cyclegan.config import TrainConfig
from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.core.precision import Precision
from cyclegan.data import write_synthetic_dataset
from cyclegan.data.paired import PairingError, combine_folders, write_paired_synthetic_dataset
from cyclegan.data.synthetic import synthetic_map
from cyclegan.inference.test_run import run_test
from cyclegan.networks import define_G
from cyclegan.recipes import MODELS, create_model, default_config
from cyclegan.training.trainer import Trainer

CPU = torch.device("cpu")


def tiny_recipe_config(model: str, dataroot, checkpoints, name: str = "run", **runtime) -> TrainConfig:
    """The recipe's own defaults at toy size: 32 px, ngf / ndf 4, resnet_6blocks (unet_256 needs 256 px)."""
    config = default_config(model)
    config.data = dataclasses.replace(config.data, dataroot=str(dataroot), load_size=36, crop_size=32, num_threads=0)
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4)
    if model == "cycle_gan":
        config.model.pool_size = 3
    config.optim = dataclasses.replace(config.optim, n_epochs=1, n_epochs_decay=1)
    config.runtime = dataclasses.replace(
        config.runtime, name=name, checkpoints_dir=str(checkpoints), device="cpu", seed=0, deterministic=True,
        print_freq=1, display_freq=1, save_latest_freq=1000, save_epoch_freq=1, progress_bar=False,
        precision="fp32", tensorboard=False, **runtime)
    return config


def recipe_data(model: str, root):
    """Paired data for aligned recipes, unpaired for the rest (4 training images of 32 px)."""
    if default_config(model).data.dataset_mode == "aligned":
        return write_paired_synthetic_dataset(root, n=4, size=32, n_test=2, n_val=2)
    return write_synthetic_dataset(root, n=4, size=32, n_test=2, n_val=2)


# Every recipe through every door (train, resume, test, translate, serve, export, int8, report, demo):
# tests/test_matrix.py.


# --- pix2pix ---------------------------------------------------------------------------------------


def test_pix2pix_flags_take_its_defaults_unless_given():
    parser = build_parser()
    config = config_from_args(parser.parse_args(["train", "--dataroot", "d", "--model", "pix2pix"]))
    m = config.model
    assert (m.netG, m.norm, m.gan_mode, m.pool_size, m.no_dropout) == ("unet_256", "batch", "vanilla", 0, False)
    assert config.data.dataset_mode == "aligned" and config.pix2pix.lambda_L1 == 100.0
    config = config_from_args(parser.parse_args([
        "train", "--dataroot", "d", "--model", "pix2pix", "--netG", "unet_128", "--norm", "instance",
        "--gan_mode", "lsgan", "--preprocess", "none", "--lambda_L1", "10", "--direction", "BtoA"]))
    m = config.model
    assert (m.netG, m.norm, m.gan_mode, config.data.preprocess, config.pix2pix.lambda_L1) == (
        "unet_128", "instance", "lsgan", "none", 10.0)
    assert config.data.direction == "BtoA" and config.data.dataset_mode == "aligned"
    cyclegan = config_from_args(parser.parse_args(["train", "--dataroot", "d"]))
    assert (cyclegan.model.norm, cyclegan.model.pool_size, cyclegan.data.dataset_mode) == ("instance", 50, "unaligned")


def test_pix2pix_step_conditional_d_and_losses():
    config = default_config("pix2pix")
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4)
    config.data = dataclasses.replace(config.data, input_nc=1, output_nc=3)
    model = create_model(config)
    assert model.nets["D"].model[0].in_channels == 4  # cat(A, B): input_nc + output_nc
    model.build_optimizers()
    generator = torch.Generator().manual_seed(0)
    batch = {"A": torch.rand(1, 1, 32, 32, generator=generator) * 2 - 1,
             "B": torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1}
    g_before = {k: v.clone() for k, v in model.nets["G"].state_dict().items()}
    result = model.training_step(batch, Precision("fp32", CPU))
    assert list(result.losses) == ["G_GAN", "G_L1", "D_real", "D_fake"] and not result.skipped
    expected_l1 = (model.current_visuals()["fake_B"] - batch["B"]).abs().mean() * 100
    assert result.losses["G_L1"].item() == pytest.approx(expected_l1.item(), rel=1e-5)
    assert list(model.current_visuals()) == ["real_A", "fake_B", "real_B"]
    assert any(not torch.equal(v, model.nets["G"].state_dict()[k]) for k, v in g_before.items())
    # A non-finite loss skips the update it would feed, and says so.
    batch["B"] = batch["B"] * float("nan")
    g_before = {k: v.clone() for k, v in model.nets["G"].named_parameters()}  # (batch-norm statistics move)
    result = model.training_step(batch, Precision("fp32", CPU))
    assert result.skipped
    assert all(torch.equal(v, dict(model.nets["G"].named_parameters())[k]) for k, v in g_before.items())


def test_pix2pix_refuses_an_image_pool():
    config = default_config("pix2pix")
    config.model.pool_size = 50
    with pytest.raises(ValueError, match="pool_size"):
        create_model(config)


def test_paired_synthetic_halves_are_the_unpaired_sets_test_images(tmp_path):
    paired = write_paired_synthetic_dataset(tmp_path / "p", n=2, size=16, n_test=2)
    unpaired = write_synthetic_dataset(tmp_path / "u", n=2, size=16, n_test=2)
    pair = np.asarray(Image.open(paired / "test" / "A_00001.png"))
    assert pair.shape == (16, 32, 3)
    assert np.array_equal(pair[:, :16], np.asarray(Image.open(unpaired / "testA" / "A_00001.png")))
    assert np.array_equal(pair[:, 16:], synthetic_map(pair[:, :16]))
    assert sorted(p.name for p in paired.iterdir()) == ["synthetic.json", "test", "train", "val"]


def test_aligned_test_writes_real_fake_real_and_scores_against_b(tmp_path):
    data = write_paired_synthetic_dataset(tmp_path / "data", n=2, size=32, n_test=2)
    config = tiny_recipe_config("pix2pix", data, tmp_path / "ck")
    config.optim.max_iters = 1
    Trainer(config).fit()
    summary = run_test(data, "run", checkpoints_dir=tmp_path / "ck", results_dir=tmp_path / "res", device="cpu")
    names = sorted(p.name for p in summary.images_dir.iterdir())
    assert names == sorted(f"A_0000{i}_{label}.png" for i in range(2) for label in ("real_A", "fake_B", "real_B"))
    pair = np.asarray(Image.open(data / "test" / "A_00000.png"))
    assert np.array_equal(np.asarray(Image.open(summary.images_dir / "A_00000_real_B.png")), pair[:, 32:])
    assert summary.scores["count"] == 2 and "fake_B" in summary.page.read_text()
    # BtoA: the right half is the input.
    summary = run_test(data, "run", checkpoints_dir=tmp_path / "ck", results_dir=tmp_path / "res_b", device="cpu",
                       direction="BtoA")
    assert np.array_equal(np.asarray(Image.open(summary.images_dir / "A_00000_real_A.png")), pair[:, 32:])


def test_reference_pix2pix_weights_load_with_model_pix2pix_and_model_test(tmp_path):
    """A published pix2pix latest_net_G.pth (unet_256, batch norm, dropout): the reference's keys load,
    and train mode is the default at test time (batch statistics), eval mode with --eval."""
    torch.manual_seed(1)
    reference = define_G(3, 3, 4, "unet_256", norm="batch", use_dropout=True)
    for module in reference.modules():  # non-trivial running statistics, so eval and train differ
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
    run = tmp_path / "ck" / "facades_label2photo_pretrained"
    run.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    (run / "latest_net_G.pth").write_bytes(buffer.getvalue())
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(images / "x.png")
    outputs = {}
    for model, extra in (("pix2pix", []), ("test", ["--no_dropout"]), ("pix2pix", ["--eval"])):
        results = tmp_path / f"res_{model}_{len(extra)}"
        args = ["test", "--dataroot", str(images), "--name", run.name, "--checkpoints_dir", str(run.parent),
                "--results_dir", str(results), "--model", model, "--dataset_mode", "single", "--ngf", "4",
                "--device", "cpu", *extra]
        if model == "test":
            args += ["--netG", "unet_256", "--norm", "batch"]
        assert main(args) == 0
        fake = next((results / run.name / "test_latest" / "images").glob("x_fake*.png"))
        outputs[(model, tuple(extra))] = np.asarray(Image.open(fake)).astype(int)
    # Dropout off (--no_dropout) vs on changes the output; --eval (running stats) changes it more.
    assert not np.array_equal(outputs[("pix2pix", ())], outputs[("pix2pix", ("--eval",))])
    assert outputs[("test", ("--no_dropout",))].shape == (64, 64, 3)


def test_combine_pairs_by_name_and_names_the_problems(tmp_path):
    for side, colour in (("A", 10), ("B", 200)):
        for split in ("train", "test"):
            folder = tmp_path / side / split
            folder.mkdir(parents=True)
            for name in ("1", "2"):
                Image.new("RGB", (8, 6), (colour, 0, 0)).save(folder / f"{name}.png")
    counts = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    assert counts == {"test": 2, "train": 2}
    pair = np.asarray(Image.open(tmp_path / "AB" / "train" / "1.png"))
    assert pair.shape == (6, 16, 3) and pair[0, 0, 0] == 10 and pair[0, 8, 0] == 200
    (tmp_path / "B" / "train" / "2.png").unlink()
    Image.new("RGB", (8, 6)).save(tmp_path / "B" / "train" / "3.png")
    Image.new("RGB", (9, 6)).save(tmp_path / "B" / "test" / "1.png")
    with pytest.raises(PairingError) as error:
        combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "AB2")
    message = str(error.value)
    assert "2.png" in message and "3.png" in message and "8×6" in message and "9×6" in message
    assert not (tmp_path / "AB2").exists()  # checked before anything is written
    assert main(["data", "combine", "--fold_A", str(tmp_path / "A"), "--fold_B", str(tmp_path / "B"),
                 "--out", str(tmp_path / "AB3")]) == 2


def test_config_from_before_the_recipe_sections_still_loads():
    saved = TrainConfig().to_dict()
    saved["model"].update(saved.pop("cycle_gan"))  # the old flat layout
    saved.pop("pix2pix")
    saved["model"]["lambda_identity"] = 0.25
    config = TrainConfig.from_dict(saved)
    assert config.cycle_gan.lambda_identity == 0.25 and config.pix2pix.lambda_L1 == 100.0


def test_data_dependent_init_gets_the_first_batch_before_the_optimizers(tmp_path, monkeypatch):
    """What CUT needs: networks built from the first batch exist before the optimizers and the
    restore, on a fresh run and on a resume."""
    from cyclegan.recipes import Pix2PixModel

    seen = []

    class Probe(Pix2PixModel):
        needs_first_batch = True

        def data_dependent_init(self, batch, precision, fresh=True):
            assert not self.optimizers  # before build_optimizers
            seen.append(tuple(batch["A"].shape))
            self.nets["F"] = torch.nn.Conv2d(batch["A"].shape[1], 2, 1)  # shaped by the data, as CUT's MLPs

        def build_optimizers(self):
            super().build_optimizers()
            self.optimizers["F"] = torch.optim.Adam(self.nets["F"].parameters())

    monkeypatch.setitem(MODELS._entries, "probe", Probe)
    data = write_paired_synthetic_dataset(tmp_path / "data", n=2, size=32, n_test=1, n_val=1)
    config = tiny_recipe_config("pix2pix", data, tmp_path / "ck")
    config.model.model, config.optim.max_iters = "probe", 1
    Trainer(config).fit()
    config.optim.max_iters = 2
    resumed = Trainer(config, resume="required")
    assert seen == [(1, 3, 32, 32), (1, 3, 32, 32)] and set(resumed.model.optimizers) == {"G", "D", "F"}
    assert "F" in load_checkpoint(tmp_path / "ck" / "run" / "latest.safetensors")["nets"]
