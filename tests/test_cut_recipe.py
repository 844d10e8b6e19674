"""``--model cut``: CUT's flags and per-mode defaults, one training step, exact resume of FastCUT (its
flip coin included), and ``cyclegan test --model cut`` on CUT's own ``latest_net_G.pth``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import build_parser, config_from_args, main
from cyclegan.config import PRESETS
from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.core.precision import Precision
from cyclegan.data import write_synthetic_dataset
from cyclegan.recipes import MODELS, CUTModel, create_model, default_config
from cyclegan.recipes.cut.config import CUTOptions
from cyclegan.recipes.cut.objective import CUTConfig, initialize_feature_projector, nce_loss
from cyclegan.recipes.loading import load_generators
from cyclegan.recipes.resolve import preset_config_for
from cyclegan.training.trainer import Trainer
from tests.test_cut import CUT_FIXTURES, networks_from_fixture
from tests.test_recipes import tiny_recipe_config

CPU = torch.device("cpu")


def parse(*flags: str):
    return config_from_args(build_parser().parse_args(["train", "--dataroot", "d", "--model", "cut", *flags]))


def test_cut_and_fastcut_take_cuts_defaults_unless_given():
    cut = parse()
    assert (cut.cut.lambda_NCE, cut.cut.nce_idt, cut.cut.flip_equivariance) == (1.0, True, False)
    assert (cut.optim.n_epochs, cut.optim.n_epochs_decay) == (200, 200)
    assert (cut.model.init_type, cut.model.pool_size, cut.model.gan_mode, cut.model.no_dropout) == (
        "xavier", 0, "lsgan", True)
    assert (cut.cut.nce_layers, cut.cut.netF, cut.cut.netF_nc, cut.cut.nce_T, cut.cut.num_patches) == (
        "0,4,8,12,16", "mlp_sample", 256, 0.07, 256)
    fast = parse("--CUT_mode", "FastCUT")
    assert (fast.cut.lambda_NCE, fast.cut.nce_idt, fast.cut.flip_equivariance) == (10.0, False, True)
    assert (fast.optim.n_epochs, fast.optim.n_epochs_decay) == (150, 50)
    # CUT's str2bool flags: bare (true) or with a value; explicit flags beat the mode's defaults.
    given = parse("--CUT_mode", "FastCUT", "--nce_idt", "--flip_equivariance", "False", "--lambda_NCE", "2",
                  "--n_epochs", "3", "--no_antialias", "--normG", "batch")
    assert (given.cut.nce_idt, given.cut.flip_equivariance, given.cut.lambda_NCE) == (True, False, 2.0)
    assert (given.optim.n_epochs, given.optim.n_epochs_decay, given.cut.no_antialias, given.cut.normG) == (
        3, 50, True, "batch")
    cyclegan = config_from_args(build_parser().parse_args(["train", "--dataroot", "d"]))
    assert (cyclegan.model.init_type, cyclegan.optim.n_epochs) == ("normal", 100)
    with pytest.raises(ValueError, match="CUT_mode"):
        default_config("cut", cut=dataclasses.replace(default_config("cut").cut, CUT_mode="SlowCUT"))


def tiny_cut_model(mode: str = "CUT", **cut_options) -> CUTModel:
    config = default_config("cut")
    config.cut = dataclasses.replace(config.cut, CUT_mode=mode, lambda_NCE=None, nce_idt=None,
                                     flip_equivariance=None, num_patches=16, **cut_options)
    config = default_config("cut", cut=config.cut)
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4)
    return create_model(config)


def batch_of(seed: int = 0, size: int = 32) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {d: torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for d in ("A", "B")}


@pytest.mark.parametrize("mode", ["CUT", "FastCUT"])
def test_one_step_updates_g_d_and_f_with_cuts_terms(mode):
    torch.manual_seed(0)
    model = tiny_cut_model(mode)
    precision = Precision("fp32", CPU)
    assert model.needs_first_batch and not list(model.nets["F"].parameters())
    batch = batch_of()
    model.data_dependent_init(batch, precision)
    assert not model.needs_first_batch
    # One MLP per nce layer, C→256→256, C from G's features at that layer.
    channels = [model.nets["F"].get_submodule(f"mlp_{i}")[0].in_features for i in range(5)]
    assert channels == [3, 8, 16, 16, 16]  # the input, ngf·2 after one down-sampling, ngf·4 after two (ngf 4)
    model.build_optimizers()
    assert set(model.optimizers) == {"G", "D", "F"}
    before = {name: {k: v.clone() for k, v in model.nets[name].state_dict().items()} for name in ("G", "D", "F")}
    result = model.training_step(batch, precision)
    assert not result.skipped
    expected = ["G_GAN", "D_real", "D_fake", "G", "NCE"] + (["NCE_Y"] if mode == "CUT" else [])
    assert list(result.losses) == expected
    nce = (result.losses["NCE"] + result.losses["NCE_Y"]) / 2 if mode == "CUT" else result.losses["NCE"]
    assert result.losses["G"].item() == pytest.approx((result.losses["G_GAN"] + nce).item(), rel=1e-6)
    if mode == "FastCUT":  # λ_NCE 10: the NCE term of random features is about 10 · log(patches)
        assert result.losses["NCE"].item() > 10
    for name in ("G", "D", "F"):
        after = model.nets[name].state_dict()
        assert any(not torch.equal(v, after[k]) for k, v in before[name].items()), f"{name} did not move"
    visuals = list(model.current_visuals())
    assert visuals == (["real_A", "fake_B", "real_B", "idt_B"] if mode == "CUT" else ["real_A", "fake_B", "real_B"])
    # Translation (validation, test): G alone, A→B.
    out = model.translate({"A": batch["A"]})
    assert set(out) == {"real_A", "fake_B"} and out["fake_B"].shape == batch["A"].shape


def test_nce_keys_after_colour_count_a_global_colour_map_as_no_change_of_content():
    """--nce_keys_after_colour (the quick preset's): PatchNCE's keys are G's features of its colour branch
    alone on the input. A G that is exactly a negative (body zero, mix -I) then scores as if its input
    had been the negative already, where keys of the input itself score it far worse; the option needs
    a colour branch; a training step runs with it."""
    config = default_config("cut")
    config.cut = dataclasses.replace(config.cut, num_patches=16, nce_keys_after_colour=True)
    config = default_config("cut", cut=config.cut)
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4, residual_output=True,
                                       colour_branch=8)
    torch.manual_seed(0)
    model = create_model(config)
    G, F, after_colour = model.nets["G"], model.nets["F"], model.options
    keys_of_input = dataclasses.replace(after_colour, nce_keys_after_colour=False)
    batch = batch_of(size=32)
    initialize_feature_projector(G, F, batch["A"], after_colour.nce_layers)
    G.start_as_identity()
    G.colour.set_mix(-torch.eye(3))
    real = batch["A"].clamp(-0.9, 0.9)
    with torch.no_grad():
        fake = G(real)
        assert torch.allclose(fake, -real, atol=1e-5)

        def nce(source, options):
            torch.manual_seed(1)  # the same patch positions for every call
            return nce_loss(G, F, source, fake, options).item()

        assert nce(real, after_colour) == pytest.approx(nce(fake, keys_of_input), rel=1e-5)
        assert nce(real, keys_of_input) > nce(real, after_colour) + 0.5
    with pytest.raises(ValueError, match="nce_keys_after_colour.*colour_branch"):
        CUTConfig(nce_keys_after_colour=True)
    model.build_optimizers()
    result = model.training_step(batch, Precision("fp32", CPU))
    assert not result.skipped and all(torch.isfinite(value) for value in result.losses.values())
    assert preset_config_for("quick", "cut").cut.nce_keys_after_colour  # CUT's quick preset, not FastCUT's
    assert not preset_config_for("quick", "cut", cut=CUTOptions(CUT_mode="FastCUT")).cut.nce_keys_after_colour


def test_a_non_finite_loss_skips_the_update_it_would_feed():
    torch.manual_seed(0)
    model = tiny_cut_model()
    precision = Precision("fp32", CPU)
    batch = batch_of()
    model.data_dependent_init(batch, precision)
    model.build_optimizers()
    batch["B"] = batch["B"] * float("nan")
    before = {name: {k: v.clone() for k, v in model.nets[name].named_parameters()} for name in ("G", "D", "F")}
    result = model.training_step(batch, precision)
    assert result.skipped
    for name in ("G", "D", "F"):
        params = dict(model.nets[name].named_parameters())
        assert all(torch.equal(v, params[k]) for k, v in before[name].items()), name


def test_sample_f_has_no_weights_and_no_optimizer():
    model = tiny_cut_model(netF="sample")
    assert not model.needs_first_batch
    model.build_optimizers()
    assert set(model.optimizers) == {"G", "D"}
    assert not model.training_step(batch_of(), Precision("fp32", CPU)).skipped


def test_cut_refuses_an_image_pool():
    config = default_config("cut")
    config.model.pool_size = 50
    with pytest.raises(ValueError, match="pool_size"):
        create_model(config)


@pytest.mark.slow
def test_fastcut_resume_equals_a_straight_run(tmp_path):
    """FastCUT: F's lazily built MLPs, its optimizer and the flip coin all resume exactly."""
    data = write_synthetic_dataset(tmp_path / "data", n=4, size=32, n_test=1)

    def config(folder, iters):
        c = tiny_recipe_config("cut", data, tmp_path / folder)
        # FastCUT's values, as --CUT_mode FastCUT resolves them (test_cut_and_fastcut_take_cuts_defaults...)
        c.cut = dataclasses.replace(c.cut, CUT_mode="FastCUT", lambda_NCE=10.0, nce_idt=False,
                                    flip_equivariance=True, num_patches=16)
        # Seed 1: the coin says no flip, no flip, flip, flip: a resume that redrew it would not flip.
        c.runtime.seed, c.optim.max_iters = 1, iters
        return c

    straight = Trainer(config("a", 4)).fit()
    Trainer(config("b", 2)).fit()
    resumed = Trainer(config("b", 4), resume="required")
    assert resumed.resumed_from is not None and set(resumed.model.optimizers) == {"G", "D", "F"}
    resumed.fit()
    state_a = load_checkpoint(straight.checkpoint)
    state_b = load_checkpoint(tmp_path / "b" / "run" / "latest.safetensors")
    assert state_a["config"]["cut"]["flip_equivariance"] is True
    assert set(state_a["nets"]) == {"G", "D", "F"}
    for name in state_a["nets"]:
        for key, value in state_a["nets"][name].items():
            assert torch.equal(value, state_b["nets"][name][key]), f"{name}.{key} differs after resume"


@pytest.mark.parametrize("path", CUT_FIXTURES, ids=lambda p: p.stem)
def test_cyclegan_test_runs_cuts_latest_net_g_with_cuts_test_flags(path, tmp_path):
    """CUT's checkpoint (plain, and with the ``module.`` prefix of a CPU run) through ``cyclegan test
    --model cut`` with CUT's test flags: each output within one 8-bit level of CUT's generator
    (the fixture's weights, checked against CUT's own outputs in test_cut.py) on the same image,
    written as CUT's ``tensor2im`` writes it."""
    fixture = torch.load(path, weights_only=True)
    flags = fixture["config"]
    _, reference, _, _ = networks_from_fixture(fixture)
    reference.load_state_dict(fixture["G"], strict=True)
    height, width = fixture["x"].shape[-2:]
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "x.png")
    with torch.no_grad():
        x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).mul(2).sub(1).unsqueeze(0)
        expected = ((reference(x)[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8).astype(int)
    for name, state in (("plain", fixture["G"]), ("cpu_run", {f"module.{k}": v for k, v in fixture["G"].items()})):
        run = tmp_path / "checkpoints" / name
        run.mkdir(parents=True)
        torch.save(state, run / "latest_net_G.pth")
        argv = ["test", "--dataroot", str(images), "--name", name, "--checkpoints_dir", str(run.parent),
                "--results_dir", str(tmp_path / "results"), "--model", "cut", "--CUT_mode", "CUT",
                "--netG", flags["netG"], "--ngf", str(flags["ngf"]), "--normG", flags["normG"],
                "--preprocess", "none", "--dataset_mode", "single", "--device", "cpu"]
        if flags["no_antialias"]:
            argv += ["--no_antialias", "--no_antialias_up"]
        assert main(argv) == 0
        fake = tmp_path / "results" / name / "test_latest" / "images" / "x_fake_B.png"
        ours = np.asarray(Image.open(fake)).astype(int)
        assert ours.shape == (height, width, 3)
        assert np.abs(ours - expected).max() <= 1, name


def test_cyclegan_test_with_wrong_antialias_flags_names_the_file(tmp_path, capsys):
    fixture = torch.load(CUT_FIXTURES[0], weights_only=True)
    assert not fixture["config"]["no_antialias"]
    run = tmp_path / "checkpoints" / "aa"
    run.mkdir(parents=True)
    torch.save(fixture["G"], run / "latest_net_G.pth")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "images" / "x.png")
    argv = ["test", "--dataroot", str(tmp_path / "images"), "--name", "aa", "--checkpoints_dir", str(run.parent),
            "--results_dir", str(tmp_path / "results"), "--model", "cut", "--netG", "resnet_6blocks", "--ngf", "8",
            "--no_antialias", "--no_antialias_up", "--dataset_mode", "single", "--device", "cpu"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert "latest_net_G.pth" in message and "does not match" in message
    assert "drop --no_antialias" in message  # the flag that explains it


def test_cut_is_registered():
    assert "cut" in MODELS.names() and MODELS.get("cut") is CUTModel


@pytest.mark.slow
def test_demo_trains_cut_and_scores_it_against_the_baselines(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--iters", "2", "--model", "cut", "--device", "cpu",
                 "--precision", "fp32"]) == 0
    output = capsys.readouterr().out
    assert "trained 2 iterations" in output and "constant" in output  # a baseline's row
    assert any(line.startswith("G(testA) ") for line in output.splitlines()) and "G_A" not in output  # CUT's G
    run = tmp_path / "demo" / "checkpoints" / "synthetic_cut"
    state = load_checkpoint(run / "latest.safetensors")
    assert state["config"]["model"]["model"] == "cut" and set(state["nets"]) == {"G", "D", "F"}
    quick = PRESETS["quick"]["model"]  # the preset's sizes and what it sets for CUT
    assert state["config"]["model"]["netG"] == quick["netG"] and state["config"]["model"]["ngf"] == quick["ngf"]
    assert state["config"]["model"]["init_type"] == "kaiming" and state["config"]["cut"]["normG"] == "none"
    assert state["config"]["model"]["pool_size"] == 0 and state["config"]["cut"]["nce_idt"] is True  # CUT's own
    assert state["config"]["model"]["colour_branch"] == 32 and state["config"]["model"]["colour_warmup_steps"] == 200
    assert set(state["ema"]["nets"]) == {"G"}  # translated with the average of G's weights, as a residual-output G
    generator = load_generators(run).nets["G"]
    assert generator.residual_output and generator.colour is not None and all(
        torch.equal(value, state["ema"]["nets"]["G"][key]) for key, value in generator.state_dict().items())
    fakes = list((tmp_path / "demo" / "results" / "synthetic_cut" / "test_latest" / "images").glob("*_fake_B.png"))
    assert len(fakes) == 20


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["CUT", "FastCUT"])
def test_two_ranks_build_f_identically_and_stay_identical(mode, tmp_path):
    """torchrun on 2 CPU ranks: F's MLPs built from the first batch on every rank before wrapping, and
    G, D and F identical on both ranks after the steps (the trainer checks every network)."""
    from tests.test_distributed import finish, torchrun

    data = write_synthetic_dataset(tmp_path / "data", n=4, size=32, n_test=1)
    output = finish(torchrun(
        2, "--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"), "--name", "ddp", "--model", "cut",
        "--CUT_mode", mode, "--max_iters", "2", "--load_size", "36", "--crop_size", "32", "--ngf", "4", "--ndf", "4",
        "--netG", "resnet_6blocks", "--num_threads", "0", "--seed", "0", "--no_progress_bar", "--no_tensorboard",
        "--device", "cpu", "--print_freq", "1", "--precision", "fp32", "--num_patches", "16"))
    assert "weights identical on all 2 ranks" in output
    assert set(load_checkpoint(tmp_path / "ck" / "ddp" / "latest.safetensors")["nets"]) == {"G", "D", "F"}
