"""The quick preset and the identity warm start: what they set, that they keep resume exact, and
that the reference's defaults stay the reference's."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from cyclegan.cli import build_parser, train_config_from_args
from cyclegan.config import PRESETS, OptimConfig, TrainConfig, fit_epochs_to_iterations, preset_config
from cyclegan.core.precision import Precision
from cyclegan.networks import define_G
from cyclegan.recipes import CUTModel, CycleGANModel, preset_config_for
from cyclegan.recipes.cycle_gan.warm_start import identity_warm_start
from cyclegan.training.trainer import Trainer

from .helpers import tiny_config, tiny_dataset, whole_and_interrupted_runs


def test_identity_warm_start_makes_the_generator_copy_its_input():
    torch.manual_seed(0)
    generator = define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    # Smooth images (the generator downsamples 4x, so white noise cannot pass through it).
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 8, 8) * 2 - 1, size=32, mode="bilinear")
    images, held_out = smooth[:6], smooth[6:]
    before = (generator(held_out) - held_out).abs().mean().item()
    identity_warm_start(generator, images, steps=60, precision=Precision("fp32", torch.device("cpu")))
    after = (generator(held_out) - held_out).abs().mean().item()
    # ngf 8 copies only coarsely (its bottleneck is 4x downsampled); a random start is ~0.4 away.
    assert after < 0.75 * before, (before, after)


@pytest.mark.slow
def test_warm_start_runs_in_fresh_runs_only_and_resume_stays_exact(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=5)
    options = {"cycle_gan__identity_warmup_steps": 3}
    whole, resumed = whole_and_interrupted_runs(data, tmp_path / "ck", total=6, stop_at=2, **options)
    result = resumed.fit()
    assert result.last_losses == whole.last_losses
    cold = Trainer(tiny_config(data, tmp_path / "ck", name="cold", optim__max_iters=1))
    warm = Trainer(tiny_config(data, tmp_path / "ck", name="warm", optim__max_iters=1, **options))
    weight = "model.1.weight"
    assert not torch.equal(cold.model.nets["G_A"].state_dict()[weight], warm.model.nets["G_A"].state_dict()[weight])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cycle_gan", "cut"])
def test_colour_start_runs_in_fresh_runs_only_and_resume_stays_exact(tmp_path, model, monkeypatch, caplog):
    from cyclegan.recipes import colour_start

    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 256)
    data = tiny_dataset(tmp_path / "data", n=5)
    options = {"model__model": model, "model__norm": "none", "model__residual_output": True,
               "model__colour_branch": 8, "model__body_scale": 0.1, "model__colour_warmup_steps": 6,
               **({"cycle_gan__lambda_identity": 0.0, "cycle_gan__lambda_body": 1.0,
                   "cycle_gan__lambda_cycle_far": 2.0, "cycle_gan__lambda_body_near": 3.0}
                  if model == "cycle_gan" else {"model__pool_size": 0, "cut__nce_keys_after_colour": True})}
    whole, resumed = whole_and_interrupted_runs(data, tmp_path / "ck", total=6, stop_at=2, **options)
    result = resumed.fit()
    assert result.last_losses == whole.last_losses
    if model == "cycle_gan":
        assert result.last_losses["body_A"] > 0 and result.last_losses["body_B"] > 0
    with caplog.at_level("INFO", logger="cyclegan.train"):
        fitted = Trainer(tiny_config(data, tmp_path / "ck", name="fitted", optim__max_iters=1, **options))
    assert any("colour start: " in record.getMessage() for record in caplog.records)
    if model == "cycle_gan":  # the built-in set's map is far from the identity; a resume kept its weights
        assert fitted.model.cycle_weights == (2.0, 2.0) and resumed.model.cycle_weights == (2.0, 2.0)
        assert fitted.model.body_weight == 1.0 and resumed.model.body_weight == 1.0  # far: lambda_body
        assert any("a map far from the identity): cycle weights 2 / 2, body weight 1" in record.getMessage()
                   for record in caplog.records)
    unfitted = Trainer(tiny_config(data, tmp_path / "ck", name="unfitted", optim__max_iters=1,
                                   **{**options, "model__colour_warmup_steps": 0}))
    generator = "G_A" if model == "cycle_gan" else "G"
    last = "colour.4.weight"
    assert not unfitted.model.nets[generator].state_dict()[last].any()  # zeroed: the branch starts at nothing
    assert fitted.model.nets[generator].state_dict()[last].any()


def bright_and_tinted() -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth bright images, and the same under a slight tint: a map near the identity (their
    negative is one far from it)."""
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4) * 0.7 + 0.2, size=16, mode="bilinear")
    return smooth, (smooth + torch.tensor([0.08, 0.0, -0.06]).view(1, 3, 1, 1)).clamp(-1, 1)


def test_cycle_weights_follow_how_far_apart_the_domains_colours_lie(tmp_path):
    from cyclegan.recipes.colour_start import FAR_MAP_DISTANCE, colour_distance

    smooth, tinted = bright_and_tinted()
    assert colour_distance(smooth, smooth) == 0.0
    assert colour_distance(smooth, tinted) < FAR_MAP_DISTANCE < colour_distance(smooth, -smooth)  # the negative
    data = tiny_dataset(tmp_path / "data", n=2)
    for far_weight, target, expected in ((2.0, -smooth, (2.0, 2.0)), (2.0, tinted, (10.0, 10.0)),
                                         (0.0, -smooth, (10.0, 10.0))):
        model = CycleGANModel(tiny_config(data, tmp_path / "ck", cycle_gan__lambda_cycle_far=far_weight))
        assert model.needs_first_batch == (far_weight > 0)
        model.choose_loss_weights({"A": smooth, "B": target})
        assert model.cycle_weights == expected
        assert model.extra_state()["cycle_weights"] == list(expected)
    model.load_extra_state({**model.extra_state(), "cycle_weights": [2.0, 2.0]})
    assert model.cycle_weights == (2.0, 2.0)
    del_weights = {k: v for k, v in model.extra_state().items() if k != "cycle_weights"}
    model.load_extra_state(del_weights)  # a checkpoint from before the option: lambda_A / lambda_B
    assert model.cycle_weights == (10.0, 10.0)


def test_reference_defaults_are_untouched_and_the_preset_only_overrides():
    assert preset_config(None) == TrainConfig()
    quick = preset_config("quick")
    for section, values in PRESETS["quick"].items():
        for field, value in values.items():
            assert getattr(getattr(quick, section), field) == value
    untouched = {f.name for f in dataclasses.fields(quick.model)} - set(PRESETS["quick"]["model"])
    for field in untouched:
        assert getattr(quick.model, field) == getattr(TrainConfig().model, field)
    with pytest.raises(ValueError, match="unknown preset 'fast'; known: quick"):
        preset_config("fast")


def test_explicit_flags_override_the_preset_and_epochs_fit_max_iters(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=5)
    args = build_parser().parse_args(["train", "--dataroot", str(data), "--preset", "quick", "--ngf", "16",
                                      "--max_iters", "40", "--checkpoints_dir", str(tmp_path / "ck")])
    config = train_config_from_args(args)
    assert config.model.ngf == 16 and config.model.netG == "resnet_6blocks" and config.optim.max_iters == 40
    assert config.optim.schedule_over_max_iters
    batch = PRESETS["quick"]["data"].get("batch_size", 1)
    epochs = -(-40 * batch // (2 * 5))  # half of 40 iterations over 5 images at the preset's batch, rounded up
    fitted = Trainer(config).config.optim  # the trainer fits the epochs to its data set's size
    assert (fitted.n_epochs, fitted.n_epochs_decay) == (epochs, epochs)
    args = build_parser().parse_args(["train", "--dataroot", str(data), "--preset", "quick", "--n_epochs", "3"])
    explicit = train_config_from_args(args).optim
    assert explicit.n_epochs == 3 and not explicit.schedule_over_max_iters
    plain = train_config_from_args(build_parser().parse_args(["train", "--dataroot", str(data)]))
    assert plain.model == TrainConfig().model and plain.optim.max_iters is None


def test_fit_epochs_to_iterations():
    assert fit_epochs_to_iterations(OptimConfig(max_iters=2000), 200) == OptimConfig(max_iters=2000, n_epochs=5,
                                                                                     n_epochs_decay=5)
    with pytest.raises(ValueError, match="max_iters"):
        fit_epochs_to_iterations(OptimConfig(), 10)


def test_the_quick_preset_adds_cyclegans_own_settings_which_flags_override(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=5)

    def parsed(*flags: str) -> TrainConfig:
        return train_config_from_args(build_parser().parse_args(["train", "--dataroot", str(data), *flags]))

    own = CycleGANModel.preset_defaults["quick"]
    quick = preset_config_for("quick")
    assert quick.data == preset_config("quick").data and quick.model.ngf == PRESETS["quick"]["model"]["ngf"]
    for config in (quick, parsed("--preset", "quick")):
        assert (config.model.norm, config.model.residual_output, config.model.gan_mode) == ("none", True, "vanilla")
        assert config.optim.ema_decay == own["optim.ema_decay"] and config.optim.max_iters == own["optim.max_iters"]
        assert config.cycle_gan.lambda_identity == 0.0
        assert config.cycle_gan.lambda_cycle_far == 2.0 and config.cycle_gan.lambda_A == 10.0
        assert (config.cycle_gan.lambda_body, config.cycle_gan.lambda_body_near) == (5.0, 20.0)
    flagged = parsed("--preset", "quick", "--norm", "instance", "--max_iters", "40", "--ema_decay", "0")
    assert (flagged.model.norm, flagged.optim.max_iters, flagged.optim.ema_decay) == ("instance", 40, 0.0)
    assert flagged.model.residual_output and flagged.model.ngf == PRESETS["quick"]["model"]["ngf"]
    # CUT takes its own settings (CUT mode only), FastCUT and pix2pix their defaults at the preset's sizes.
    cut = parsed("--preset", "quick", "--model", "cut")
    expected = preset_config_for("quick", "cut")
    assert (cut.model, cut.cut) == (expected.model, expected.cut)  # the CLI also fits epochs to the data
    assert cut.model.ngf == quick.model.ngf
    assert {key: getattr(getattr(cut, key.split(".")[0]), key.split(".")[1])
            for key in CUTModel.preset_defaults["quick"]} == CUTModel.preset_defaults["quick"]
    assert (cut.cut.lambda_NCE, cut.cut.nce_idt, cut.model.pool_size, cut.model.gan_mode) == (1.0, True, 0, "lsgan")
    fastcut = parsed("--preset", "quick", "--model", "cut", "--CUT_mode", "FastCUT")
    assert (fastcut.cut.normG, fastcut.model.residual_output, fastcut.optim.ema_decay) == ("instance", False, 0.0)
    assert fastcut.optim.max_iters == PRESETS["quick"]["optim"]["max_iters"] and fastcut.cut.lambda_NCE == 10.0
    pix2pix = parsed("--preset", "quick", "--model", "pix2pix", "--n_epochs", "1", "--n_epochs_decay", "1")
    assert pix2pix.model.norm == "batch" and not pix2pix.model.residual_output
    assert parsed().model == TrainConfig().model  # without --preset: the reference's defaults


def test_the_body_pays_more_where_the_map_is_near_the_identity(tmp_path, caplog):
    smooth, tinted = bright_and_tinted()
    data = tiny_dataset(tmp_path / "data", n=2)
    options = {"cycle_gan__lambda_body": 5.0, "cycle_gan__lambda_cycle_far": 2.0}
    for body_weight, target, expected in ((20.0, tinted, (20.0, (10.0, 10.0))),   # a tint: near
                                          (20.0, -smooth, (5.0, (2.0, 2.0))),     # the negative: far
                                          (0.0, tinted, (5.0, (10.0, 10.0)))):    # off
        model = CycleGANModel(tiny_config(data, tmp_path / "ck", cycle_gan__lambda_body_near=body_weight, **options))
        with caplog.at_level("INFO", logger="cyclegan.train"):
            model.choose_loss_weights({"A": smooth, "B": target})
        assert (model.body_weight, model.cycle_weights) == expected
        assert model.extra_state()["body_weight"] == expected[0]
    assert any("near the identity): cycle weights 10 / 10, body weight 20" in r.getMessage() for r in caplog.records)
    model.load_extra_state({**model.extra_state(), "body_weight": 20.0})  # a resume keeps the choice
    assert model.body_weight == 20.0
    model.load_extra_state({k: v for k, v in model.extra_state().items() if k != "body_weight"})
    assert model.body_weight == 5.0  # a checkpoint from before the option: lambda_body
    # The step pays the chosen weight: the same step's body terms at 20 are 4 times those at 5.
    residual = {"model__norm": "none", "model__residual_output": True, "model__colour_branch": 8,
                "model__body_scale": 0.1, "cycle_gan__lambda_identity": 0.0, "cycle_gan__lambda_body": 5.0}
    bigger = torch.nn.functional.interpolate(smooth[:1], size=32, mode="bilinear")
    batch = {"A": bigger, "B": (bigger + 0.05).clamp(-1, 1)}
    body_terms = []
    for weight in (5.0, 20.0):
        torch.manual_seed(0)
        model = CycleGANModel(tiny_config(data, tmp_path / "ck", **residual))
        for name in ("G_A", "G_B"):  # the body starts at nothing (its last convolution zeroed): wake it
            torch.nn.init.normal_(model.nets[name].model[-1].weight, std=0.05)
        model.build_optimizers()
        model.body_weight = weight
        losses = model.training_step(batch, Precision("fp32", torch.device("cpu"))).losses
        body_terms.append((losses["body_A"].item(), losses["body_B"].item()))
    assert body_terms[0][0] > 0
    assert body_terms[1] == pytest.approx((4 * body_terms[0][0], 4 * body_terms[0][1]), rel=1e-5)
    assert CycleGANModel(tiny_config(data, tmp_path / "ck", cycle_gan__lambda_body_near=20.0)).needs_first_batch
    assert not CycleGANModel(tiny_config(data, tmp_path / "ck", cycle_gan__lambda_body=5.0)).needs_first_batch


@pytest.mark.parametrize("model", ["cycle_gan", "cut"])
def test_a_generator_whose_target_domain_is_grey_outputs_grey_in_training_and_inference(tmp_path, monkeypatch,
                                                                                          caplog, model):
    from cyclegan.data.synthetic_tasks import write_task_dataset
    from cyclegan.recipes import colour_start
    from cyclegan.recipes.loading import load_generators
    from cyclegan.training.trainer import train

    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 256)
    data = write_task_dataset("grey", tmp_path / "grey", n=4, size=32, n_test=2)  # A colour, B grey
    options = {"model__model": model, "model__norm": "none", "model__residual_output": True,
               "model__colour_branch": 8, "model__body_scale": 0.1, "model__colour_warmup_steps": 6,
               "model__grey_output_for_grey": True,
               **({"cycle_gan__lambda_identity": 0.0, "cycle_gan__lambda_body": 5.0} if model == "cycle_gan"
                  else {"model__pool_size": 0, "cut__normG": "none", "cut__normD": "none"})}
    with caplog.at_level("INFO", logger="cyclegan.train"):
        train(tiny_config(data, tmp_path / "ck", name="grey", optim__max_iters=2, **options))
    forward = "G_A" if model == "cycle_gan" else "G"
    assert any(f"{forward} outputs grey: domain B's pixels lie on the grey axis" in r.getMessage()
               for r in caplog.records)
    assert not any("G_B outputs grey" in r.getMessage() for r in caplog.records)
    loaded = load_generators(tmp_path / "ck" / "grey").nets  # what translate, test and export build
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        fake_B = loaded[forward](x)
    assert torch.equal(fake_B[:, 0], fake_B[:, 1]) and torch.equal(fake_B[:, 1], fake_B[:, 2])
    if model == "cycle_gan":
        with torch.no_grad():
            fake_A = loaded["G_B"](x)
        assert not torch.equal(fake_A[:, 0], fake_A[:, 1])  # A is in colour: G_B keeps its channels
    recipe = CycleGANModel if model == "cycle_gan" else CUTModel
    assert recipe.preset_defaults["quick"]["model.grey_output_for_grey"] is True
    plain = recipe(tiny_config(data, tmp_path / "ck", model__grey_output_for_grey=True,
                               **({} if model == "cycle_gan" else {"model__model": "cut", "model__pool_size": 0})))
    assert plain.needs_first_batch
    with pytest.raises(ValueError, match="--grey_output_for_grey .* --colour_branch"):
        plain.data_dependent_init({"A": x, "B": x.mean(1, keepdim=True).expand_as(x)},
                                  Precision("fp32", torch.device("cpu")))


def test_a_config_saved_when_grey_output_for_grey_was_cycle_gans_loads_into_the_model_section():
    saved = TrainConfig().to_dict()
    saved["model"].pop("grey_output_for_grey")
    saved["cycle_gan"]["grey_output_for_grey"] = True
    assert TrainConfig.from_dict(saved).model.grey_output_for_grey is True
    assert TrainConfig.from_dict({"data": {}}).model == TrainConfig().model  # a section left out: defaults


def test_no_cycle_gradient_reaches_a_generator_whose_output_is_grey():
    from cyclegan.recipes.cycle_gan.model import cycle_input

    torch.manual_seed(0)
    net = define_G(3, 3, 4, "resnet_6blocks", norm="none", residual_output=True, colour_branch=8)
    fake = torch.rand(1, 3, 8, 8, requires_grad=True)
    assert cycle_input(fake, net) is fake  # a colour output: the cycle's gradient reaches its generator
    net.colour.set_grey_output(True)
    passed = cycle_input(fake, net)
    assert torch.equal(passed, fake) and not passed.requires_grad  # the same image, no gradient back
    plain = define_G(3, 3, 4, "resnet_6blocks", norm="none")
    assert cycle_input(fake, plain) is fake  # the reference's generators: untouched


@pytest.mark.parametrize("kept", [("(b, -g, -r)", "(g, b, r)"), ("(b, r, g)", "(g, b, r)")])
def test_colour_starts_that_do_not_close_the_cycle_are_refitted_from_the_surer_ones_inverse(tmp_path, monkeypatch,
                                                                                             caplog, kept):
    """Both generators kept channel permutations: where G_B's is not the inverse of G_A's, the one whose
    fit ended the larger share of its identity's distance (here G_A: 0.55 against G_B's 0.09, as on
    hue150 seed 1) is fitted again from the inverse of the other's, from its initial branch; where
    they close the cycle, nothing more is fitted."""
    from cyclegan.recipes.colour_start import ColourStart, signed_permutations
    from cyclegan.recipes.cycle_gan import model as cycle_gan_model

    permutations = dict(signed_permutations())
    real_fit, calls = cycle_gan_model.fit_colour_start, []

    def fit(generator, source, target, steps, seed=0, mix=None, given="given"):
        calls.append(mix)
        if mix is not None:
            return real_fit(generator, source, target, steps, seed=seed, mix=mix, given=given)
        name = kept[0] if len(calls) == 1 else kept[1]
        generator.colour.set_mix(permutations[name])
        return ColourStart(name, *((0.0040, 0.0073) if len(calls) == 1 else (0.0013, 0.0149)))

    monkeypatch.setattr(cycle_gan_model, "fit_colour_start", fit)
    data = tiny_dataset(tmp_path / "data", n=4)
    model = CycleGANModel(tiny_config(data, tmp_path / "ck", model__norm="none", model__residual_output=True,
                                      model__colour_branch=8, model__colour_warmup_steps=4,
                                      cycle_gan__lambda_identity=0.0))
    untouched = copy.deepcopy(model.nets["G_A"])
    generator = torch.Generator().manual_seed(0)
    batch = {d: torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1 for d in ("A", "B")}
    with caplog.at_level("INFO", logger="cyclegan.train"):
        model.data_dependent_init(batch, Precision("fp32", torch.device("cpu")))
    assert torch.equal(model.nets["G_B"].colour.mix, permutations["(g, b, r)"])
    assert torch.equal(model.nets["G_A"].colour.mix, permutations["(b, r, g)"])  # (g, b, r)'s inverse
    if kept[0] == "(b, r, g)":
        assert len(calls) == 2
        return
    assert len(calls) == 3 and torch.equal(calls[2], permutations["(b, r, g)"])
    real_fit(untouched, batch["A"], batch["B"], 4, seed=model.seed, mix=permutations["(b, r, g)"])
    assert all(torch.equal(value, model.nets["G_A"].colour.state_dict()[key])
               for key, value in untouched.colour.state_dict().items())  # from G_A's initial branch
    assert any("G_A colour start: (b, r, g), the inverse of G_B's, so that the cycle closes" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("inverse_share, kept", [(1.5, False), (0.5, True)])
def test_a_permutation_that_the_other_generator_does_not_share_is_weighed_against_the_identity(
        tmp_path, monkeypatch, caplog, inverse_share, kept):
    """G_A kept the identity and G_B a permutation P (its fit 0.65 of its identity's distance, as on zebra
    seed 1). G_A is fitted from P's inverse too: where that fit is 1.5 of G_A's identity's distance
    (0.65 + 1.5 is not below 1 + 1), P goes and G_B starts from the identity, fitted as its own identity
    fit was, while G_A keeps its own start; where it is 0.5, both keep the permutation pair."""
    from cyclegan.recipes.colour_start import ColourStart, signed_permutations
    from cyclegan.recipes.cycle_gan import model as cycle_gan_model

    permutations = dict(signed_permutations())
    real_fit, calls = cycle_gan_model.fit_colour_start, []

    def fit(generator, source, target, steps, seed=0, mix=None, given="given"):
        calls.append(mix)
        if mix is not None:
            start = real_fit(generator, source, target, steps, seed=seed, mix=mix, given=given)
            share = inverse_share if len(calls) == 3 else 1.0
            return dataclasses.replace(start, distance=0.0030 * share)
        if len(calls) == 1:  # G_A: the identity, fitted (its branch changed), kept
            real_fit(generator, source, target, steps, seed=seed, mix=permutations["identity"])
            return ColourStart("identity", 0.0030, 0.0030, weighed_permutations=True)
        generator.colour.set_mix(permutations["(-b, g, -r)"])
        return ColourStart("(-b, g, -r)", 0.00317, 0.00485, weighed_permutations=True)

    monkeypatch.setattr(cycle_gan_model, "fit_colour_start", fit)
    data = tiny_dataset(tmp_path / "data", n=4)
    model = CycleGANModel(tiny_config(data, tmp_path / "ck", model__norm="none", model__residual_output=True,
                                      model__colour_branch=8, model__colour_warmup_steps=4,
                                      cycle_gan__lambda_identity=0.0))
    untouched = copy.deepcopy(model.nets)
    generator = torch.Generator().manual_seed(0)
    batch = {d: torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1 for d in ("A", "B")}
    with caplog.at_level("INFO", logger="cyclegan.train"):
        model.data_dependent_init(batch, Precision("fp32", torch.device("cpu")))
    inverse = permutations["(-b, g, -r)"].T
    assert torch.equal(calls[2], inverse)
    if kept:
        assert len(calls) == 3
        assert torch.equal(model.nets["G_A"].colour.mix, inverse) and model.nets["G_B"].colour.mixes
        return
    assert len(calls) == 4 and torch.equal(calls[3], permutations["identity"])
    assert not model.nets["G_A"].colour.mixes and not model.nets["G_B"].colour.mixes
    expected = {}
    for name, (source, target, offset) in {"G_A": ("A", "B", 0), "G_B": ("B", "A", 1)}.items():
        real_fit(untouched[name], batch[source], batch[target], 4, seed=model.seed + offset,
                 mix=permutations["identity"])
        expected[name] = untouched[name].colour.state_dict()
    for name in ("G_A", "G_B"):  # each as its own identity fit left it
        assert all(torch.equal(value, model.nets[name].colour.state_dict()[key])
                   for key, value in expected[name].items())
    assert any("the identity instead" in r.getMessage() for r in caplog.records)
    assert any("G_B colour start: identity, as G_A keeps no permutation" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("task, texture", [("zebra", True), ("tint", False)])
def test_a_texture_map_starts_from_the_identity_and_pays_the_body_its_far_weight(tmp_path, monkeypatch, caplog,
                                                                                  task, texture):
    """Stripes added to shapes: both colour branches start unfitted (as ``--colour_warmup_steps 0`` leaves
    them) and the body is paid lambda_body, not lambda_body_near, though the colours lie close; a tint
    keeps its fitted starts and the near weight. The whole first-batch step, with the trainer's own data
    loading, on the generated task's training pictures; the checkpoint's state carries the weight."""
    from cyclegan.data.synthetic_tasks import write_task_dataset
    from cyclegan.recipes import colour_start

    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 512)
    data = write_task_dataset(task, tmp_path / task, n=16, size=64, n_test=2, seed=0)
    options = {"model__norm": "none", "model__residual_output": True, "model__colour_branch": 8,
               "model__body_scale": 0.1, "data__load_size": 64, "data__crop_size": 64, "data__batch_size": 16,
               "cycle_gan__lambda_identity": 0.0, "cycle_gan__lambda_body": 5.0, "cycle_gan__lambda_body_near": 20.0}
    with caplog.at_level("INFO", logger="cyclegan"):
        fitted = Trainer(tiny_config(data, tmp_path / "ck", name="fitted", optim__max_iters=1,
                                     model__colour_warmup_steps=30, **options))
    unfitted = Trainer(tiny_config(data, tmp_path / "ck", name="unfitted", optim__max_iters=1,
                                   model__colour_warmup_steps=0, **options))
    lines = [r.getMessage() for r in caplog.records if "fine detail" in r.getMessage()]
    assert len(lines) == 1 and ("a texture map" in lines[0]) == texture, lines
    for name in ("G_A", "G_B"):
        same = [torch.equal(a, b) for a, b in zip(fitted.model.nets[name].colour.state_dict().values(),
                                                  unfitted.model.nets[name].colour.state_dict().values(), strict=True)]
        assert all(same) == texture, (name, same)
    assert fitted.model.body_weight == (5.0 if texture else 20.0)
    assert unfitted.model.body_weight == 20.0  # no colour start, no verdict: the colours lie close
    assert fitted.model.extra_state()["body_weight"] == fitted.model.body_weight
