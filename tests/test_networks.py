"""The networks: reference parity, exact keys, parameter arithmetic, shapes, sizes, save/load."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cyclegan.networks import (
    DISCRIMINATORS,
    GENERATORS,
    ImageSizeError,
    ResnetGenerator,
    UnetGenerator,
    define_D,
    define_G,
    load_reference_state_dict,
)
from cyclegan.networks.generators import pad_to_multiple
from cyclegan.networks.layers import get_norm_layer

from .conftest import reference_fixture_files
from .fixtures.slim import tensor_sha256

# --- parity with the reference's own numbers ------------------------------------------------


@pytest.mark.parametrize("path", reference_fixture_files("G_") + reference_fixture_files("D_"), ids=lambda p: p.stem)
def test_reference_init_reproduces_weights_and_output(path):
    fixture = torch.load(path, weights_only=True)
    config = fixture["config"]
    build = define_G if config["kind"] == "G" else define_D
    torch.manual_seed(config["init_seed"])
    net = build(**config["define_kwargs"])
    # Same module names, shapes and dtypes, in the reference's order.
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
    assert ours == [[k, list(s), d] for k, s, d in fixture["state_dict_spec"]]
    # Same initialisation from the same seed (the modules are visited in the reference's order): every
    # tensor has the digest of the reference's, so the output below is the reference's network's.
    digests = {key: tensor_sha256(value) for key, value in net.state_dict().items()}
    assert digests == fixture["state_dict_sha256"]
    net.eval()
    with torch.no_grad():
        output = net(fixture["input"])
    reference = fixture["output"]
    assert output.shape == reference.shape
    tolerance = 1e-6 + 1e-5 * reference.abs().max().item()
    assert (output - reference).abs().max().item() <= tolerance


# --- exact key lists and parameter counts from the architecture -----------------------------


def conv_params(c_in: int, c_out: int, k: int, bias: bool) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def resnet_expected(ngf: int, n_blocks: int, norm: str, dropout: bool, in_nc=3, out_nc=3):
    """(keys, parameter count) of the reference's ResnetGenerator, from its layer list."""
    bias = norm in ("instance", "none")
    bn = norm == "batch"
    keys, params = [], 0

    def conv(prefix, cin, cout, k, has_bias):
        nonlocal params
        keys.append(f"{prefix}.weight")
        if has_bias:
            keys.append(f"{prefix}.bias")
        params += conv_params(cin, cout, k, has_bias)

    def norm_keys(prefix, c):
        nonlocal params
        if bn:
            keys.extend(f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))
            params += 2 * c

    # ReflectionPad(0) conv(1) norm(2) relu(3), down: conv(4) norm(5) relu(6) conv(7) norm(8) relu(9)
    conv("model.1", in_nc, ngf, 7, bias)
    norm_keys("model.2", ngf)
    conv("model.4", ngf, ngf * 2, 3, bias)
    norm_keys("model.5", ngf * 2)
    conv("model.7", ngf * 2, ngf * 4, 3, bias)
    norm_keys("model.8", ngf * 4)
    second = 6 if dropout else 5
    for b in range(n_blocks):
        conv(f"model.{10 + b}.conv_block.1", ngf * 4, ngf * 4, 3, bias)
        norm_keys(f"model.{10 + b}.conv_block.2", ngf * 4)
        conv(f"model.{10 + b}.conv_block.{second}", ngf * 4, ngf * 4, 3, bias)
        norm_keys(f"model.{10 + b}.conv_block.{second + 1}", ngf * 4)
    up = 10 + n_blocks
    conv(f"model.{up}", ngf * 4, ngf * 2, 3, bias)  # transposed conv: same weight count
    norm_keys(f"model.{up + 1}", ngf * 2)
    conv(f"model.{up + 3}", ngf * 2, ngf, 3, bias)
    norm_keys(f"model.{up + 4}", ngf)
    conv(f"model.{up + 7}", ngf, out_nc, 7, True)
    return keys, params


def patchgan_expected(ndf: int, n_layers: int, norm: str, in_nc=3):
    bias = norm in ("instance", "none")
    keys, params = ["model.0.weight", "model.0.bias"], conv_params(in_nc, ndf, 4, True)
    index, mult = 2, 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        keys += [f"model.{index}.weight"] + ([f"model.{index}.bias"] if bias else [])
        params += conv_params(ndf * prev, ndf * mult, 4, bias)
        if norm == "batch":
            keys += [f"model.{index + 1}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
            params += 2 * ndf * mult
        index += 3
    keys += [f"model.{index}.weight", f"model.{index}.bias"]
    params += conv_params(ndf * mult, 1, 4, True)
    return keys, params


def unet_expected_params(ngf: int, num_downs: int, in_nc=3, out_nc=3) -> int:
    """Batch-norm U-Net: down convs k4 no bias, up transposed convs k4 no bias, BN affine params."""
    levels = [(out_nc, ngf, in_nc), (ngf, ngf * 2, None), (ngf * 2, ngf * 4, None), (ngf * 4, ngf * 8, None)]
    levels += [(ngf * 8, ngf * 8, None)] * (num_downs - 4)
    total = 0
    for depth, (outer, inner, input_nc) in enumerate(levels):
        outermost, innermost = depth == 0, depth == len(levels) - 1
        total += conv_params(input_nc or outer, inner, 4, False)
        if outermost:
            total += conv_params(inner * 2, outer, 4, True)
        elif innermost:
            total += conv_params(inner, outer, 4, False) + 2 * outer
        else:
            total += conv_params(inner * 2, outer, 4, False) + 2 * inner + 2 * outer
    return total


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("n_blocks,name", [(9, "resnet_9blocks"), (6, "resnet_6blocks")])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("dropout", [False, True])
def test_resnet_keys_and_parameters_follow_the_layer_arithmetic(n_blocks, name, norm, dropout):
    net = define_G(3, 3, 8, name, norm=norm, use_dropout=dropout)
    keys, params = resnet_expected(8, n_blocks, norm, dropout)
    assert list(net.state_dict()) == keys
    assert count(net) == params


def test_full_width_parameter_counts():
    # The figures users quote for 3→3 channels, 64 filters, instance norm (unet_256: batch norm),
    # each also derived from the layer arithmetic above.
    for name, blocks, expected in [("resnet_9blocks", 9, 11_378_179), ("resnet_6blocks", 6, 7_837_699)]:
        derived = resnet_expected(64, blocks, "instance", False)[1]
        assert count(define_G(3, 3, 64, name, norm="instance")) == derived == expected
    assert count(define_D(3, 64, "basic", norm="instance")) == patchgan_expected(64, 3, "instance")[1] == 2_764_737
    pixel = define_D(3, 64, "pixel", norm="instance")
    assert count(pixel) == conv_params(3, 64, 1, True) + conv_params(64, 128, 1, True) + conv_params(128, 1, 1, True)
    assert count(pixel) == 8_705
    unet = define_G(3, 3, 64, "unet_256", norm="batch")
    assert count(unet) == unet_expected_params(64, 8) == 54_413_955


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_patchgan_keys_and_parameters(n_layers, norm):
    net = define_D(3, 8, "n_layers", n_layers_D=n_layers, norm=norm)
    keys, params = patchgan_expected(8, n_layers, norm)
    assert list(net.state_dict()) == keys
    assert count(net) == params


def test_unet_nested_keys_and_dropout_position():
    net = define_G(3, 3, 4, "unet_128", norm="batch", use_dropout=True)
    keys = list(net.state_dict())
    assert keys[0] == "model.model.0.weight"
    assert "model.model.1.model.1.weight" in keys  # second level's down conv
    assert "model.model.1.model.2.running_var" in keys  # its BatchNorm buffers
    assert count(net) == unet_expected_params(4, 7)
    # Dropout sits after the up-norm of the ngf*8 levels that wrap the innermost block.
    dropouts = [name for name, m in net.named_modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 7 - 5


# --- shapes and the size rule --------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_shapes_at_several_sizes(name):
    net = define_G(3, 3, 4, name, norm="instance").eval()
    # The multiple is the generator's own: 2 ** (its downsamplings, strided convolutions or CUT's
    # blur-and-subsample layers); at least 32 px per side.
    multiple = net.size_multiple
    downsamplings = sum((isinstance(m, nn.Conv2d) and m.stride == (2, 2)) or type(m).__name__ == "Downsample"
                        for m in net.modules())
    assert multiple == 2 ** downsamplings
    unit = multiple * max(1, 32 // multiple)
    for height, width in [(unit, unit), (unit * 2, unit), (unit, unit * 3)]:
        with torch.no_grad():
            out = net(torch.zeros(2, 3, height, width))
        assert out.shape == (2, 3, height, width)
        assert out.abs().max() <= 1.0  # tanh


@pytest.mark.parametrize("netD", DISCRIMINATORS.names())
def test_every_discriminator_scores_a_patch_map(netD):
    net = define_D(3, 8, netD, norm="instance").eval()
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        scores = net(x)
    # One logit per patch, a map of the input's aspect; the batch items are scored apart.
    assert scores.dim() == 4 and scores.shape[:2] == (2, 1) and torch.isfinite(scores).all()
    assert scores.shape[2] > scores.shape[3] or scores.shape[2:] == (1, 1)
    with torch.no_grad():
        assert torch.allclose(net(x[1:]), scores[1:], atol=1e-6)


@pytest.mark.parametrize("netD,size,expected", [("basic", 256, 30), ("basic", 64, 6), ("pixel", 32, 32), ("basic", 72, 7)])
def test_discriminator_output_maps(netD, size, expected):
    net = define_D(3, 8, netD, norm="instance").eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, size, size)).shape == (1, 1, expected, expected)


def test_one_channel_networks():
    g = define_G(1, 3, 4, "resnet_6blocks", norm="instance")
    assert g(torch.zeros(1, 1, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ImageSizeError, match="1 input channel"):
        g(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_wrong_size_is_a_clear_error_before_any_convolution(name):
    net = define_G(3, 3, 4, name, norm="instance")
    multiple = net.size_multiple
    bad = multiple * 4 + multiple // 2
    calls = []
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_pre_hook(lambda *_: calls.append(1))
    with pytest.raises(ImageSizeError, match=f"divisible by {multiple}"):
        net(torch.zeros(1, 3, bad, bad))
    assert calls == []


def test_pad_to_multiple_restores_the_input_size():
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance").eval()
    net.pad_to_multiple = True
    image = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        out = net(image)
    assert out.shape == image.shape
    # Padding only adds on the bottom / right: an image already a multiple passes unchanged.
    with torch.no_grad():
        assert torch.equal(net(image[..., :36, :48]), net.model(image[..., :36, :48]))


def test_discriminator_too_small_input_is_clear():
    with pytest.raises(ImageSizeError, match="at least 24"):
        define_D(3, 8, "basic", norm="instance")(torch.zeros(1, 3, 16, 16))


# --- norm none, init, unknown names ---------------------------------------------------------


def test_norm_none_keeps_conv_biases_and_loads_reference_checkpoints(caplog):
    ours = define_G(3, 3, 4, "resnet_6blocks", norm="none")
    assert all(m.bias is not None for m in ours.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d))
    # The reference's norm=none network: the same modules with use_bias False.
    torch.manual_seed(5)
    reference = ResnetGenerator(3, 3, 4, norm_layer=get_norm_layer("none"), n_blocks=6, use_bias=False).eval()
    for p in reference.parameters():
        p.data.normal_(0, 0.05)
    state = reference.state_dict()
    assert len(state) < len(ours.state_dict())
    with caplog.at_level(logging.INFO):
        zero_filled = load_reference_state_dict(ours, state, source="ref.pth")
    assert zero_filled and all(k.endswith(".bias") for k in zero_filled)
    assert "absent from the checkpoint" in caplog.text
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), reference(x), atol=1e-6)


def test_mismatched_checkpoint_lists_differences():
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    other = define_G(3, 3, 8, "resnet_9blocks", norm="instance").state_dict()
    with pytest.raises(ValueError) as info:
        load_reference_state_dict(net, other, source="other.pth")
    message = str(info.value)
    assert "other.pth" in message and "missing keys (4): model.16.weight" in message
    assert "unexpected keys (16)" in message and "shape differences (32): model.1.weight" in message
    assert "--ngf/--ndf" in message


def test_module_prefixes_from_ddp_and_compile_are_stripped():
    net = define_D(3, 8, "pixel", norm="instance")
    state = {f"module._orig_mod.{k}": v for k, v in net.state_dict().items()}
    torch.manual_seed(1)  # other weights, which the load must replace
    fresh = define_D(3, 8, "pixel", norm="instance")
    load_reference_state_dict(fresh, state)
    assert fresh.state_dict().keys() == net.state_dict().keys()
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(init_type):
    torch.manual_seed(0)
    net = define_G(3, 3, 4, "unet_128", norm="batch", init_type=init_type, init_gain=0.02)
    conv = net.model.model[0]
    assert conv.weight.std() > 0
    norm = net.model.model[1].model[2]
    assert torch.all(norm.bias == 0) and abs(norm.weight.mean().item() - 1.0) < 0.05
    if init_type == "normal":
        assert abs(conv.weight.std().item() - 0.02) < 0.01


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="resnet_9blocks"):
        define_G(3, 3, 4, "resnet_12blocks")
    with pytest.raises(ValueError, match="pixel"):
        define_D(3, 4, "huge")
    with pytest.raises(ValueError, match="instance"):
        define_G(3, 3, 4, "resnet_6blocks", norm="layer")
    with pytest.raises(ValueError, match="kaiming"):
        define_G(3, 3, 4, "resnet_6blocks", init_type="uniform")
    assert set(DISCRIMINATORS.names()) == {"basic", "n_layers", "pixel", "cut_basic", "cut_n_layers"}


def test_syncbatch_builds_batchnorm_with_the_same_keys():
    a = define_G(3, 3, 4, "unet_128", norm="syncbatch")
    b = define_G(3, 3, 4, "unet_128", norm="batch")
    assert list(a.state_dict()) == list(b.state_dict())


@pytest.mark.slow
def test_save_and_load_in_a_fresh_process_gives_identical_output(tmp_path):
    torch.manual_seed(3)
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
    torch.save({"state": net.state_dict(), "x": x}, tmp_path / "net.pth")
    script = textwrap.dedent(
        f"""
        import torch
        from cyclegan.networks import define_G
        saved = torch.load({str(tmp_path / 'net.pth')!r}, weights_only=True)
        net = define_G(3, 3, 4, "resnet_6blocks", norm="instance").eval()
        net.load_state_dict(saved["state"], strict=True)
        with torch.no_grad():
            torch.save(net(saved["x"]), {str(tmp_path / 'out.pth')!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert torch.equal(torch.load(tmp_path / "out.pth", weights_only=True), expected)


def test_unet_generator_rejects_too_few_levels():
    with pytest.raises(ValueError, match="num_downs"):
        UnetGenerator(3, 3, 4)


def test_pad_to_multiple_reflects_and_falls_back_to_replication():
    x = torch.arange(13 * 6, dtype=torch.float32).view(1, 1, 13, 6)
    padded, height, width = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (16, 8) and (height, width) == (13, 6)
    assert torch.equal(padded[..., :13, :6], x)
    assert torch.equal(padded[..., 13, :6], x[..., 11, :]) and torch.equal(padded[..., :13, 6], x[..., :, 4])
    tiny = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    replicated, _, _ = pad_to_multiple(tiny, 4)  # pad ≥ side: reflection is impossible
    assert replicated[0, 0].tolist() == [[1, 2, 2, 2], [3, 4, 4, 4], [3, 4, 4, 4], [3, 4, 4, 4]]
    same = torch.zeros(1, 3, 8, 8)
    assert pad_to_multiple(same, 4)[0] is same


def test_the_reference_fixtures_ship_with_the_tests():
    # A missing copy would turn the parity test above into an empty (skipped) parametrisation.
    stems = {p.stem.split("_")[0] + "_" + p.stem.split("_")[1] for p in reference_fixture_files()}
    assert {"G_resnet", "G_unet", "D_basic", "D_pixel"} <= stems
    assert {"gan_losses", "gradient_penalty"} <= {p.stem for p in reference_fixture_files()}


# --- the residual output (ours; off in the reference) ---------------------------------------


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_residual_output_starts_as_the_identity_with_the_reference_keys(norm):
    torch.manual_seed(0)
    residual = define_G(3, 3, 4, "resnet_6blocks", norm=norm, init_type="kaiming", residual_output=True)
    torch.manual_seed(0)
    plain = define_G(3, 3, 4, "resnet_6blocks", norm=norm, init_type="kaiming")
    assert list(residual.state_dict()) == list(plain.state_dict())
    # the same random draws: only the last convolution differs (zeroed)
    last = f"model.{len(residual.model) - 1}."
    for key, value in residual.state_dict().items():
        if key.startswith(last):
            assert not value.any()
        else:
            assert torch.equal(value, plain.state_dict()[key]), key
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1)) * 1.96 - 0.98
    assert (residual(x) - x).abs().max() < 1e-6  # G(x) = x at the start, the plain G is far from it
    assert (plain(x) - x).abs().max() > 0.1
    with torch.no_grad():
        residual.model[-1].bias.fill_(0.3)  # h = 0.3 everywhere: tanh(atanh(x) + 0.3), still in (-1, 1)
    out = residual(x)
    assert torch.allclose(out, torch.tanh(torch.atanh(x) + 0.3), atol=1e-6) and out.abs().max() < 1


def test_residual_output_is_for_resnet_generators_with_equal_channels():
    with pytest.raises(ValueError, match="ResNet generators.*unet_128"):
        define_G(3, 3, 4, "unet_128", residual_output=True)
    with pytest.raises(ValueError, match="input_nc == output_nc.*got 1 and 3"):
        define_G(1, 3, 4, "resnet_6blocks", residual_output=True)


def test_colour_branch_and_body_scale_start_as_the_identity_and_shape_the_output():
    torch.manual_seed(0)
    net = define_G(3, 3, 4, "resnet_6blocks", norm="none", init_type="kaiming", residual_output=True,
                   colour_branch=8, body_scale=0.25)
    assert {key.split(".")[0] for key in net.state_dict()} == {"model", "colour"}
    assert not net.colour[-1].weight.any() and not net.colour[-1].bias.any()
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1)) * 1.96 - 0.98
    assert (net(x) - x).abs().max() < 1e-6
    with torch.no_grad():
        net.colour[-1].bias.copy_(torch.tensor([0.5, 0.0, -0.5]))  # a colour shift, the same on every pixel
        net.model[-1].bias.fill_(0.4)  # the body's h = 0.4, scaled to 0.1
        expected = torch.tanh(torch.atanh(x) + 0.1 + torch.tensor([0.5, 0.0, -0.5]).view(1, 3, 1, 1))
        assert torch.allclose(net(x), expected, atol=1e-6)
        # the colour branch sees one pixel at a time: shuffling the pixels shuffles its output
        net.model[-1].bias.zero_()
        net.colour[-1].weight.normal_(0, 0.5)
        order = torch.randperm(24 * 20, generator=torch.Generator().manual_seed(2))
        flat = x.flatten(2)[..., order].view_as(x)
        assert torch.allclose(net(flat), net(x).flatten(2)[..., order].view_as(x), atol=1e-6)


def test_colour_only_is_the_output_without_the_body():
    from cyclegan.recipes.cycle_gan.model import body_change

    torch.manual_seed(0)
    net = define_G(3, 3, 4, "resnet_6blocks", norm="none", init_type="kaiming", residual_output=True, colour_branch=8)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 1.8 - 0.9
    with torch.no_grad():
        net.colour[-1].bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
        assert torch.allclose(net.colour_only(x), net(x)) and body_change(net, x, net(x)) < 1e-7  # the body adds 0
        net.model[-1].bias.fill_(0.5)  # now it adds a constant in atanh space
        assert torch.allclose(net(x), torch.tanh(torch.atanh(net.colour_only(x)) + 0.5), atol=1e-5)
        assert body_change(net, x, net(x)) > 0.05
    plain = define_G(3, 3, 4, "resnet_6blocks", norm="none")
    with pytest.raises(ValueError, match="needs --residual_output"):
        plain.colour_only(x)


def test_colour_branch_and_body_scale_need_the_residual_output_of_a_resnet():
    with pytest.raises(ValueError, match="--colour_branch 8 .* needs --residual_output"):
        define_G(3, 3, 4, "resnet_6blocks", colour_branch=8)
    with pytest.raises(ValueError, match="--body_scale 0.5 .* needs --residual_output"):
        define_G(3, 3, 4, "resnet_6blocks", body_scale=0.5)
    with pytest.raises(ValueError, match="ResNet generators.*unet_128"):
        define_G(3, 3, 4, "unet_128", colour_branch=8)


# --- instance norm through the group-norm kernel -------------------------------------------------


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_equals_torchs_in_values_gradients_and_keys(affine):
    from cyclegan.networks.layers import InstanceNorm2d

    ours, theirs = InstanceNorm2d(6, affine=affine), nn.InstanceNorm2d(6, affine=affine)
    if affine:
        with torch.no_grad():
            for layer in (ours, theirs):
                layer.weight.copy_(torch.linspace(0.5, 2, 6))
                layer.bias.copy_(torch.linspace(-1, 1, 6))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = (torch.randn(3, 6, 9, 7, generator=torch.Generator().manual_seed(0)) * 3 + 1).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = ours(x), theirs(x_ref)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    (out_ref * weights).sum().backward()
    assert (out - out_ref).abs().max() < 1e-5 and (x.grad - x_ref.grad).abs().max() < 1e-4
    if affine:
        assert (ours.weight.grad - theirs.weight.grad).abs().max() < 1e-4
    # channels-last in, channels-last out (what --channels_last feeds it)
    assert ours(x.detach().contiguous(memory_format=torch.channels_last)).is_contiguous(memory_format=torch.channels_last)


def test_instance_norm_networks_use_ours():
    from cyclegan.networks.layers import InstanceNorm2d

    norms = [m for m in define_G(3, 3, 4, "resnet_6blocks", norm="instance").modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(type(m) is InstanceNorm2d for m in norms)
