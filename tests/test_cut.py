"""CUT / FastCUT: parity with CUT's own code, its checkpoints, PatchNCE, and the pieces of a step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan.cli import bare_weights_config, build_parser, config_from_args
from cyclegan.core.checkpoint import CheckpointError
from cyclegan.networks import (
    DISCRIMINATORS,
    GENERATORS,
    ImageSizeError,
    NLayerDiscriminator,
    ResnetGenerator,
    define_D,
    define_G,
)
from cyclegan.networks.antialias import Downsample, Upsample
from cyclegan.networks.layers import get_norm_layer
from cyclegan.recipes.cut.model import cut_config
from cyclegan.recipes.cut.networks import (
    FEATURE_PROJECTORS,
    PatchSampleF,
    define_cut_D,
    define_cut_G,
    define_F,
    mlp_channels_in_state_dict,
)
from cyclegan.recipes.cut.objective import (
    CUTConfig,
    build_discriminator,
    build_feature_projector,
    build_generator,
    cut_discriminator_loss,
    cut_forward,
    cut_generator_losses,
    draw_flip,
    initialize_feature_projector,
    nce_loss,
)
from cyclegan.recipes.cut.patchnce import patch_nce_loss
from cyclegan.recipes.loading import load_generators

CUT_FIXTURES = sorted((Path(__file__).parent / "fixtures" / "cut").glob("*.pt"))


def multilayer_patch_nce(
    queries: Sequence[torch.Tensor],
    keys: Sequence[torch.Tensor],
    batch_size: int,
    temperature: float = 0.07,
    include_all_negatives_from_minibatch: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PatchNCE over the ``nce_layers`` as CUT's ``calculate_NCE_loss`` computes it with λ_NCE = 1, for the
    parity checks: (mean loss per layer, shape (L,); their mean over layers).

    CUT's ``calculate_NCE_loss`` with λ_NCE = 1: apply λ_NCE to the result.
    """
    if len(queries) != len(keys) or not queries:
        raise ValueError(f"need one key per query layer, got {len(queries)} queries and {len(keys)} keys")
    per_layer = torch.stack(
        [
            patch_nce_loss(q, k, batch_size, temperature, include_all_negatives_from_minibatch).mean()
            for q, k in zip(queries, keys, strict=True)
        ]
    )
    return per_layer, per_layer.mean()


def close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
    """Agreement to 1e-5 relative to the reference tensor's scale."""
    assert ours.shape == reference.shape
    tolerance = 1e-6 + 1e-5 * reference.abs().max().item()
    return (ours - reference).abs().max().item() <= tolerance


def networks_from_fixture(fixture: dict) -> tuple[CUTConfig, nn.Module, nn.Module, nn.Module]:
    flags = fixture["config"]
    config = CUTConfig(
        netG=flags["netG"], ngf=flags["ngf"], ndf=flags["ndf"], netD=flags["netD"], n_layers_D=flags["n_layers_D"],
        normG=flags["normG"], normD=flags["normD"], no_antialias=flags["no_antialias"],
        no_antialias_up=flags["no_antialias_up"], netF=flags["netF"], netF_nc=flags["netF_nc"],
        nce_layers=flags["nce_layers"], num_patches=flags["num_patches"], nce_T=flags["nce_T"],
        init_type=flags["init_type"], init_gain=flags["init_gain"], no_dropout=flags["no_dropout"],
    )
    generator, discriminator = build_generator(config), build_discriminator(config)
    projector = build_feature_projector(config)
    return config, generator, discriminator, projector


# --- parity with CUT's networks.py and patchnce.py --------------------------------------------


def test_fixtures_are_in_the_repository():
    assert len(CUT_FIXTURES) == 2, "tests/fixtures/cut/*.pt are needed by the parity tests"


@pytest.mark.parametrize("path", CUT_FIXTURES, ids=lambda p: p.stem)
def test_state_dicts_load_strictly_with_cut_keys(path):
    fixture = torch.load(path, weights_only=True)
    config, generator, discriminator, projector = networks_from_fixture(fixture)
    # Same keys in the same order, same shapes.
    for net, name in ((generator, "G"), (discriminator, "D")):
        ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
        assert ours == [(k, tuple(v.shape)) for k, v in fixture[name].items()], name
        net.load_state_dict(fixture[name], strict=True)
    # F's MLPs are built from the generator's features on a first batch, as in CUT.
    assert projector.needs_first_batch
    assert initialize_feature_projector(generator, projector, fixture["x"], config.nce_layers)
    assert not projector.needs_first_batch
    ours = [(k, tuple(v.shape)) for k, v in projector.state_dict().items()]
    assert ours == [(k, tuple(v.shape)) for k, v in fixture["F"].items()]
    projector.load_state_dict(fixture["F"], strict=True)


@pytest.mark.parametrize("path", CUT_FIXTURES, ids=lambda p: p.stem)
def test_every_tensor_matches_cut(path):
    fixture = torch.load(path, weights_only=True)
    config, generator, discriminator, projector = networks_from_fixture(fixture)
    generator.load_state_dict(fixture["G"], strict=True)
    discriminator.load_state_dict(fixture["D"], strict=True)
    projector.create_mlp_for_channels(mlp_channels_in_state_dict(fixture["F"]))
    projector.load_state_dict(fixture["F"], strict=True)
    with torch.no_grad():
        assert close(generator(fixture["x"]), fixture["G_x"])
        features = generator(fixture["x"], layers=config.nce_layers, encode_only=True)
        assert len(features) == len(fixture["feats_x"])
        for ours, reference in zip(features, fixture["feats_x"], strict=True):
            assert close(ours, reference)
        samples_x, ids = projector(features, config.num_patches, fixture["patch_ids"])
        assert all(torch.equal(a, b) for a, b in zip(ids, fixture["patch_ids"], strict=True))
        query_features = generator(fixture["G_x"], layers=config.nce_layers, encode_only=True)
        samples_g, _ = projector(query_features, config.num_patches, fixture["patch_ids"])
        for ours, reference in zip(samples_x, fixture["F_x"], strict=True):
            assert close(ours, reference)
        for ours, reference in zip(samples_g, fixture["F_G_x"], strict=True):
            assert close(ours, reference)
        assert close(discriminator(fixture["G_x"]), fixture["D_G_x"])
        per_layer, total = multilayer_patch_nce(fixture["F_G_x"], fixture["F_x"], batch_size=1, temperature=config.nce_T)
        assert close(per_layer, fixture["nce_per_layer"])
        assert close(total, fixture["nce_total"])
        # And end to end from the image pair: the generator's NCE with CUT's patch ids and λ_NCE 1.
        per_layer_ours, _ = multilayer_patch_nce(samples_g, samples_x, batch_size=1, temperature=config.nce_T)
        assert close(per_layer_ours, fixture["nce_per_layer"])


def cut_flags(*argv: str):
    """The architecture CUT's own test flags describe, as `cyclegan translate / test --model cut` read them."""
    return bare_weights_config(build_parser().parse_args(["translate", "x", "--out", "o", "--name", "n", *argv]))


def load_cut_file(checkpoint: Path, flags) -> nn.Module:
    """A bare `latest_net_G.pth` of CUT's, through the same loader every door uses."""
    return load_generators(checkpoint.parent, "latest", names=("G",), flags=flags).nets["G"]


@pytest.mark.parametrize("path", CUT_FIXTURES, ids=lambda p: p.stem)
def test_cut_checkpoint_file_translates_like_cut(path, tmp_path):
    """CUT's `latest_net_G.pth` (plain, and with the `module.` prefix of a CPU run), from CUT's test flags."""
    fixture = torch.load(path, weights_only=True)
    flags = fixture["config"]
    argv = ["--model", "cut", "--netG", flags["netG"], "--ngf", str(flags["ngf"])]
    if flags["no_antialias"]:
        argv += ["--no_antialias", "--no_antialias_up"]
    config = cut_flags(*argv)
    for name, state in (("plain", fixture["G"]), ("cpu_run", {f"module.{k}": v for k, v in fixture["G"].items()})):
        checkpoint = tmp_path / name / "latest_net_G.pth"
        checkpoint.parent.mkdir()
        torch.save(state, checkpoint)
        generator = load_cut_file(checkpoint, config)
        assert not generator.training
        with torch.no_grad():
            assert close(generator(fixture["x"]), fixture["G_x"])


def test_cut_checkpoint_with_wrong_antialias_flags_names_the_flag(tmp_path):
    config = cut_flags("--model", "cut", "--netG", "resnet_6blocks", "--ngf", "4")
    wrong = cut_flags("--model", "cut", "--netG", "resnet_6blocks", "--ngf", "4", "--no_antialias", "--no_antialias_up")
    checkpoint = tmp_path / "latest_net_G.pth"
    torch.save(build_generator(cut_config(config)).state_dict(), checkpoint)
    with pytest.raises(ValueError, match=r"latest_net_G.pth(.|\n)*drop --no_antialias"):
        load_cut_file(checkpoint, wrong)
    torch.save(build_generator(cut_config(wrong)).state_dict(), checkpoint)
    with pytest.raises(ValueError, match="add --no_antialias --no_antialias_up"):
        load_cut_file(checkpoint, config)


def test_cut_checkpoint_carrying_code_is_refused(tmp_path):
    checkpoint = tmp_path / "latest_net_G.pth"
    torch.save({"state": build_generator(CUTConfig(netG="resnet_6blocks", ngf=4)).state_dict(), "fn": math.sqrt},
               checkpoint)
    with pytest.raises(CheckpointError, match="refused"):
        load_cut_file(checkpoint, cut_flags("--model", "cut", "--netG", "resnet_6blocks", "--ngf", "4"))


# --- the layers and networks ------------------------------------------------------------------


def test_antialiased_resampling_shapes_and_constant_images():
    image = torch.full((1, 5, 12, 10), 0.3)
    down, up = Downsample(5), Upsample(5)
    assert down(image).shape == (1, 5, 6, 5)
    assert down(torch.zeros(1, 5, 7, 9)).shape == (1, 5, 4, 5)  # ceil(H / 2)
    assert up(image).shape == (1, 5, 24, 20)
    # The blur filters sum to one (down) and to stride² (up): a flat image stays flat.
    assert torch.allclose(down(image), image[..., ::2, ::2], atol=1e-6)
    assert torch.allclose(up(image), torch.full((1, 5, 24, 20), 0.3), atol=1e-6)
    assert torch.allclose(down.filt[0, 0], torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)


@pytest.mark.parametrize("filt_size", [2, 3, 4, 5, 6])
def test_upsample_equals_cuts_transpose_then_trim(filt_size):
    # CUT's Upsample.forward, verbatim in effect: pad, transposed depthwise conv, then slice off one
    # row / column at the top-left (and one at the bottom-right for even filters).
    up = Upsample(5, filt_size=filt_size).double()
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    cuts = nn.functional.conv_transpose2d(up.pad(x), up.filt, stride=2, padding=1 + up.pad_size, groups=5)[:, :, 1:, 1:]
    if filt_size % 2 == 0:
        cuts = cuts[:, :, :-1, :-1]
    ours = up(x)
    assert torch.equal(ours, cuts)
    # Even filters (CUT's default, 4) trim symmetrically inside the convolution: no strided view to copy.
    assert ours.is_contiguous() == (filt_size % 2 == 0)


def test_encode_only_returns_features_without_running_the_decoder():
    generator = define_cut_G(3, 3, 4, "resnet_6blocks").eval()
    ran = []
    for index, layer in enumerate(generator.model):
        layer.register_forward_hook(lambda *_, index=index: ran.append(index))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = generator(x, layers=[0, 4, 8, 12, 16], encode_only=True)
        assert max(ran) == 16
        assert [tuple(f.shape) for f in features] == [(2, 3, 38, 38), (2, 8, 32, 32), (2, 16, 16, 16),
                                                      (2, 16, 8, 8), (2, 16, 8, 8)]
        output, same_features = generator(x, layers=[0, 4, 8, 12, 16])
        assert torch.equal(output, generator(x))
        assert all(torch.equal(a, b) for a, b in zip(features, same_features, strict=True))
    with pytest.raises(ValueError, match="out of range"):
        generator(x, layers=[0, 99], encode_only=True)
    with pytest.raises(ImageSizeError, match="divisible by 4"):
        generator(torch.rand(1, 3, 30, 32), layers=[0], encode_only=True)


def test_residual_output_starts_as_the_identity_with_cuts_keys():
    plain = define_cut_G(3, 3, 4, "resnet_6blocks")
    generator = define_cut_G(3, 3, 4, "resnet_6blocks", residual_output=True)
    assert generator.state_dict().keys() == plain.state_dict().keys()  # loads CUT's checkpoints as before
    x = torch.rand(2, 3, 32, 32) * 1.8 - 0.9
    with torch.no_grad():
        assert torch.allclose(generator(x), x, atol=1e-6)
        nn.init.normal_(generator.model[-1].weight, std=0.1)
        output, features = generator(x, layers=[0, 4, 16])
        assert torch.equal(output, generator(x)) and not torch.allclose(output, x, atol=1e-2)
        assert torch.equal(features[0], nn.functional.pad(x, (3, 3, 3, 3), mode="reflect"))


def test_without_antialiasing_the_networks_are_the_references():
    cut_g = define_cut_G(3, 3, 4, "resnet_6blocks", no_antialias=True, no_antialias_up=True).eval()
    reference_g = ResnetGenerator(3, 3, 4, norm_layer=get_norm_layer("instance"), n_blocks=6, use_bias=True).eval()
    reference_g.load_state_dict(cut_g.state_dict(), strict=True)
    cut_d = define_cut_D(3, 4, "basic", no_antialias=True)
    reference_d = NLayerDiscriminator(3, 4, n_layers=3, norm_layer=get_norm_layer("instance"), use_bias=True)
    reference_d.load_state_dict(cut_d.state_dict(), strict=True)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(cut_g(x), reference_g(x))
        assert torch.equal(cut_d(x), reference_d(x))


@pytest.mark.parametrize("no_antialias", [False, True])
def test_discriminator_output_map_and_smallest_input(no_antialias):
    net = define_cut_D(3, 4, "basic", no_antialias=no_antialias).eval()
    for size in (net.min_size, 64, 70):
        with torch.no_grad():
            side = net(torch.zeros(1, 3, size, size)).shape[-1]
        assert side == net.output_size(size) >= 1
    with pytest.raises(ImageSizeError, match=f"at least {net.min_size}"):
        net(torch.zeros(1, 3, net.min_size - 1, net.min_size - 1))


def test_registered_under_names_that_do_not_clash():
    assert {"cut_resnet_9blocks", "cut_resnet_6blocks", "cut_resnet_4blocks"} <= set(GENERATORS.names())
    assert {"cut_basic", "cut_n_layers"} <= set(DISCRIMINATORS.names())
    assert set(FEATURE_PROJECTORS.names()) == {"mlp_sample", "sample", "reshape"}
    # Through the generic builders too, with the same keys as CUT's builders.
    assert list(define_G(3, 3, 4, "cut_resnet_6blocks", norm="instance").state_dict()) == list(
        define_cut_G(3, 3, 4, "resnet_6blocks").state_dict())
    assert list(define_D(3, 4, "cut_n_layers", n_layers_D=2, norm="instance").state_dict()) == list(
        define_cut_D(3, 4, "n_layers", n_layers_D=2).state_dict())
    with pytest.raises(ValueError, match="resnet_9blocks"):
        define_cut_G(3, 3, 4, "unet_256")


def test_patch_sampler_reuses_ids_and_normalises():
    projector = define_F("mlp_sample", init_gain=1.0, netF_nc=16)  # outputs well above the 1e-7 eps
    features = [torch.rand(2, 3, 5, 5), torch.rand(2, 6, 3, 3)]
    samples, ids = projector(features, num_patches=7)
    assert [tuple(s.shape) for s in samples] == [(14, 16), (14, 16)]  # 2 images × 7 patches
    assert len(ids[1]) == 7 and len(set(ids[1].tolist())) == 7 and int(ids[1].max()) < 9
    assert torch.allclose(samples[0].norm(dim=1), torch.ones(14), atol=1e-5)
    again, same_ids = projector(features, num_patches=7, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(samples, again, strict=True))
    # Asking for more patches than positions takes them all.
    _, all_ids = projector(features, num_patches=100)
    assert len(all_ids[1]) == 9
    assert mlp_channels_in_state_dict(projector.state_dict()) == [3, 6]
    with pytest.raises(RuntimeError, match="already built"):
        projector.create_mlp(features)
    plain = define_F("sample")
    assert not plain.needs_first_batch and not list(plain.parameters())
    reshape_samples, _ = define_F("reshape")(features)
    assert [tuple(s.shape) for s in reshape_samples] == [(32, 3), (32, 6)]  # 2 images × 4×4


def test_mlps_from_the_same_seed_are_the_same_as_from_a_first_batch():
    torch.manual_seed(7)
    lazily = PatchSampleF(use_mlp=True, init_type="xavier", nc=8)
    lazily(([torch.rand(1, 3, 4, 4), torch.rand(1, 5, 2, 2)]), num_patches=2)
    torch.manual_seed(7)
    eagerly = PatchSampleF(use_mlp=True, init_type="xavier", nc=8)
    eagerly.create_mlp_for_channels([3, 5])
    # The features were drawn after the seed in the lazy case; compare the xavier draws' layout only.
    assert [tuple(v.shape) for v in lazily.state_dict().values()] == [tuple(v.shape) for v in eagerly.state_dict().values()]
    torch.manual_seed(7)
    again = PatchSampleF(use_mlp=True, init_type="xavier", nc=8)
    again.create_mlp_for_channels([3, 5])
    assert all(torch.equal(a, b) for a, b in zip(eagerly.state_dict().values(), again.state_dict().values(), strict=True))


# --- PatchNCE ---------------------------------------------------------------------------------


def patch_nce_by_hand(query: torch.Tensor, key: torch.Tensor, batch: int, temperature: float) -> torch.Tensor:
    """The definition, one query at a time: −log softmax of the positive among the same image's keys."""
    per_image = query.shape[0] // batch
    losses = []
    for i in range(query.shape[0]):
        image = i // per_image
        logits = [float(query[i] @ key[i])]
        for j in range(image * per_image, (image + 1) * per_image):
            logits.append(-10.0 if j == i else float(query[i] @ key[j]))
        logits_t = torch.tensor(logits, dtype=torch.float64) / temperature
        losses.append(-(logits_t[0] - torch.logsumexp(logits_t, 0)))
    return torch.stack(losses)


def test_patch_nce_matches_its_definition_and_only_the_query_gets_gradients():
    torch.manual_seed(1)
    query = nn.functional.normalize(torch.randn(6, 4), dim=1).requires_grad_(True)
    key = nn.functional.normalize(torch.randn(6, 4), dim=1).requires_grad_(True)
    loss = patch_nce_loss(query, key, batch_size=2, temperature=0.07)
    expected = patch_nce_by_hand(query.detach(), key.detach(), 2, 0.07)
    assert torch.allclose(loss.double(), expected, atol=1e-5)
    loss.mean().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert key.grad is None
    # Pooling negatives across the minibatch changes the loss (more negatives per query).
    pooled = patch_nce_loss(query.detach(), key.detach(), batch_size=2, temperature=0.07,
                            include_all_negatives_from_minibatch=True)
    assert torch.allclose(pooled.double(), patch_nce_by_hand(query.detach(), key.detach(), 1, 0.07), atol=1e-5)
    # A query equal to its own key and orthogonal to the rest is nearly loss-free.
    eye = torch.eye(4)
    assert patch_nce_loss(eye, eye, batch_size=1).max() < 1e-5
    with pytest.raises(ValueError, match="batch_size 4"):
        patch_nce_loss(query, key, batch_size=4)


# --- options ----------------------------------------------------------------------------------


def test_cut_and_fastcut_defaults_and_explicit_flags_win():
    cut = CUTConfig()
    assert (cut.lambda_NCE, cut.nce_idt, cut.flip_equivariance, cut.n_epochs, cut.n_epochs_decay) == (1.0, True, False, 200, 200)
    assert (cut.netF, cut.netF_nc, cut.nce_T, cut.num_patches, cut.nce_layers) == ("mlp_sample", 256, 0.07, 256, [0, 4, 8, 12, 16])
    assert (cut.normG, cut.normD, cut.init_type, cut.pool_size, cut.gan_mode, cut.lambda_GAN) == (
        "instance", "instance", "xavier", 0, "lsgan", 1.0)
    parser = build_parser()

    def from_train_flags(*argv: str) -> CUTConfig:
        return cut_config(config_from_args(parser.parse_args(["train", "--dataroot", "d", "--model", "cut", *argv])))

    fast = from_train_flags("--CUT_mode", "FastCUT")
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance, fast.n_epochs, fast.n_epochs_decay) == (10.0, False, True, 150, 50)
    mixed = from_train_flags("--CUT_mode", "fastcut", "--nce_idt", "--lambda_NCE", "2", "--flip_equivariance", "false",
                             "--nce_layers", "16,0,4", "--no_antialias")
    assert (mixed.nce_idt, mixed.lambda_NCE, mixed.flip_equivariance, mixed.nce_layers, mixed.no_antialias) == (
        True, 2.0, False, [0, 4, 16], True)
    with pytest.raises(ValueError, match="CUT or FastCUT"):
        CUTConfig(CUT_mode="SlowCUT")
    with pytest.raises(ValueError, match="comma-separated"):
        CUTConfig(nce_layers="0,four")


# --- one step's losses --------------------------------------------------------------------------


def small_setup(mode: str = "CUT", **overrides):
    torch.manual_seed(0)
    config = CUTConfig(CUT_mode=mode, netG="resnet_6blocks", ngf=4, ndf=4, netF_nc=8, **overrides)
    generator, discriminator = build_generator(config), build_discriminator(config)
    projector = build_feature_projector(config)
    real_A, real_B = torch.rand(2, 3, 24, 24) * 2 - 1, torch.rand(2, 3, 24, 24) * 2 - 1
    initialize_feature_projector(generator, projector, real_A, config.nce_layers)
    return config, generator, discriminator, projector, real_A, real_B


def grads(net: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in net.parameters()]


def test_batched_nce_calls_equal_cuts_separate_calls():
    # Every position is sampled (num_patches > H·W), so which ids are drawn does not matter.
    config, generator, discriminator, projector, real_A, real_B = small_setup(num_patches=10_000)
    results = []
    for batched, reuse_features in ((False, False), (True, True)):
        generator.zero_grad(), projector.zero_grad()
        forward = cut_forward(generator, real_A, real_B, config.nce_idt, nce_layers=config.nce_layers if reuse_features else None)
        losses = cut_generator_losses(generator, projector, discriminator, forward, config, batch_nce_calls=batched)
        losses["G"].backward()
        results.append((losses, grads(generator), grads(projector)))
    (separate, g_sep, f_sep), (batched, g_bat, f_bat) = results
    assert set(separate) == set(batched) == {"G_GAN", "NCE", "NCE_Y", "G"}
    for name in separate:
        assert torch.allclose(separate[name], batched[name], rtol=1e-5, atol=1e-6), name
    assert torch.allclose(separate["G"], separate["G_GAN"] + (separate["NCE"] + separate["NCE_Y"]) / 2)
    # Float rounding only, relative to each network's gradient scale (the conv biases before an
    # instance norm have a true gradient of zero and show just rounding noise).
    for separate_grads, batched_grads in ((g_sep, g_bat), (f_sep, f_bat)):
        a, b = torch.cat([g.flatten() for g in separate_grads]), torch.cat([g.flatten() for g in batched_grads])
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_fastcut_flip_compares_flipped_back_queries_with_unflipped_keys():
    config, generator, discriminator, projector, real_A, real_B = small_setup("FastCUT")
    assert config.flip_equivariance and not config.nce_idt
    forward = cut_forward(generator, real_A, real_B, config.nce_idt, flipped=True, nce_layers=config.nce_layers)
    assert forward.idt_B is None and forward.input_features is None
    with torch.no_grad():
        assert torch.allclose(forward.fake_B, generator(real_A.flip(3)))
    torch.manual_seed(3)
    loss = nce_loss(generator, projector, real_A, forward.fake_B, config, flipped=True)
    torch.manual_seed(3)  # the same patch ids, drawn on the keys
    with torch.no_grad():
        keys, ids = projector(generator(real_A, layers=config.nce_layers, encode_only=True), config.num_patches)
    queries = [f.flip(3) for f in generator(forward.fake_B, layers=config.nce_layers, encode_only=True)]
    query_samples, _ = projector(queries, config.num_patches, ids)
    _, expected = multilayer_patch_nce(query_samples, keys, batch_size=2, temperature=config.nce_T)
    assert torch.allclose(loss, expected * config.lambda_NCE, rtol=1e-5)
    losses = cut_generator_losses(generator, projector, discriminator, forward, config)
    assert set(losses) == {"G_GAN", "NCE", "G"}
    assert torch.allclose(losses["G"], losses["G_GAN"] + losses["NCE"])
    flips = [draw_flip(torch.Generator().manual_seed(s)) for s in range(40)]
    assert 5 < sum(flips) < 35


def test_discriminator_loss_batched_equals_separate_and_detaches_the_fake():
    config, generator, discriminator, projector, real_A, real_B = small_setup()
    forward = cut_forward(generator, real_A, real_B, config.nce_idt)
    separate = cut_discriminator_loss(discriminator, forward.fake_B, real_B)
    batched = cut_discriminator_loss(discriminator, forward.fake_B, real_B, batch_calls=True)
    for name in ("D_fake", "D_real", "D"):
        assert torch.allclose(separate[name], batched[name], rtol=1e-5), name
    assert torch.allclose(separate["D"], (separate["D_fake"] + separate["D_real"]) / 2)
    separate["D"].backward()
    assert all(p.grad is None for p in generator.parameters())
    assert all(p.grad is not None for p in discriminator.parameters())


def test_loss_weights_and_switches():
    config, generator, discriminator, projector, real_A, real_B = small_setup(lambda_GAN=0.0, lambda_NCE=0.0)
    forward = cut_forward(generator, real_A, real_B, config.nce_idt)
    losses = cut_generator_losses(generator, projector, discriminator, forward, config)
    assert losses["G_GAN"] == 0 and losses["NCE"] == 0 and "NCE_Y" not in losses and losses["G"] == 0


def test_a_few_steps_lower_the_nce_loss():
    config, generator, discriminator, projector, real_A, real_B = small_setup(num_patches=32)
    optimizer = torch.optim.Adam([*generator.parameters(), *projector.parameters()], lr=2e-3, betas=(0.5, 0.999))
    history = []
    for _ in range(8):
        optimizer.zero_grad()
        forward = cut_forward(generator, real_A, real_B, config.nce_idt, nce_layers=config.nce_layers)
        losses = cut_generator_losses(generator, projector, discriminator, forward, config)
        (losses["NCE"] + losses["NCE_Y"]).backward()
        optimizer.step()
        history.append(float((losses["NCE"] + losses["NCE_Y"]).detach()))
    assert math.isfinite(history[-1])
    assert history[-1] < 0.8 * history[0] and history[-1] < history[1]
