"""``cyclegan inspect``: receptive fields, output sizes, parameters and MACs measured on real modules.

Expected numbers are derived here independently (layer arithmetic written out in the test), not
copied from the tool's output.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from cyclegan.cli.inspect_command import add_inspect_arguments, run_inspect
from cyclegan.networks.inspect import (
    ShapeArithmeticError,
    build_for_inspection,
    effective_receptive_field,
    format_table,
    inspect_network,
    report_to_json,
)

# --- independent parameter arithmetic ---------------------------------------------------------


def conv_params(c_in: int, c_out: int, k: int, bias: bool) -> int:
    # Conv2d and ConvTranspose2d alike: k·k·c_in·c_out weights plus one bias per output channel.
    return k * k * c_in * c_out + (c_out if bias else 0)


def norm_params(c: int, norm: str) -> int:
    # BatchNorm has an affine weight and bias; the instance norm here has affine=False.
    return 2 * c if norm == "batch" else 0


def resnet_params(ngf: int, n_blocks: int, norm: str = "instance", in_nc: int = 3, out_nc: int = 3) -> int:
    bias = norm in ("instance", "none")
    total = conv_params(in_nc, ngf, 7, bias) + norm_params(ngf, norm)
    for mult in (1, 2):  # two stride-2 downsamplings
        total += conv_params(ngf * mult, ngf * mult * 2, 3, bias) + norm_params(ngf * mult * 2, norm)
    dim = ngf * 4
    total += n_blocks * 2 * (conv_params(dim, dim, 3, bias) + norm_params(dim, norm))
    for mult in (4, 2):  # two transposed upsamplings
        total += conv_params(ngf * mult, ngf * mult // 2, 3, bias) + norm_params(ngf * mult // 2, norm)
    return total + conv_params(ngf, out_nc, 7, True)  # the last conv always has a bias


def unet_params(ngf: int, num_downs: int, norm: str, in_nc: int = 3, out_nc: int = 3) -> int:
    bias = norm in ("instance", "none")
    # (outer_nc, inner_nc) from the innermost level outwards.
    levels = [(8, 8)] * (num_downs - 4) + [(4, 8), (2, 4), (1, 2)]
    total = 0
    for index, (outer, inner) in enumerate(levels):
        outer, inner = outer * ngf, inner * ngf
        innermost = index == 0
        total += conv_params(outer, inner, 4, bias)  # downconv
        total += 0 if innermost else norm_params(inner, norm)  # downnorm
        total += conv_params(inner if innermost else inner * 2, outer, 4, bias)  # upconv
        total += norm_params(outer, norm)  # upnorm
    # Outermost: downconv in_nc → ngf, upconv 2·ngf → out_nc with its own bias, no norms.
    return total + conv_params(in_nc, ngf, 4, bias) + conv_params(ngf * 2, out_nc, 4, True)


def nlayer_d_params(ndf: int, n_layers: int, norm: str = "instance", in_nc: int = 3) -> int:
    bias = norm in ("instance", "none")
    total = conv_params(in_nc, ndf, 4, True)
    mult = 1
    for n in range(1, n_layers + 1):  # n_layers − 1 stride-2 convs, then the stride-1 one
        prev, mult = mult, min(2**n, 8)
        total += conv_params(ndf * prev, ndf * mult, 4, bias) + norm_params(ndf * mult, norm)
    return total + conv_params(ndf * mult, 1, 4, True)


def pixel_d_params(ndf: int, norm: str = "instance", in_nc: int = 3) -> int:
    bias = norm in ("instance", "none")
    return (
        conv_params(in_nc, ndf, 1, True)
        + conv_params(ndf, ndf * 2, 1, bias)
        + norm_params(ndf * 2, norm)
        + conv_params(ndf * 2, 1, 1, bias)
    )


def chain_rf(kernels_strides: list[tuple[int, int]]) -> int:
    """The backward recursion RF_in = (RF_out − 1)·s + k, from one output unit to the input."""
    rf = 1
    for k, s in reversed(kernels_strides):
        rf = (rf - 1) * s + k
    return rf


# --- receptive fields and output sizes ----------------------------------------------------------


def test_basic_patchgan_is_70_with_30x30_output_and_strides_2_2_2_1_1():
    report = inspect_network(build_for_inspection(netD="basic", ndf=8), (1, 3, 256, 256))
    assert report.receptive_field == 70
    assert report.output_shape == [1, 1, 30, 30]
    convs = [layer for layer in report.layers if layer.type == "Conv2d"]
    assert [layer.stride for layer in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert [layer.kernel for layer in convs] == [(4, 4)] * 5
    assert [layer.receptive_field for layer in convs] == [4, 10, 22, 46, 70]
    assert [layer.jump for layer in convs] == [2, 4, 8, 8, 8]
    assert chain_rf([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]) == 70
    # The seed report's 94 came from a stride-2 fourth conv; the table shows stride 1 there.
    assert chain_rf([(4, 2), (4, 2), (4, 2), (4, 2), (4, 1)]) == 94
    assert report.effective_receptive_field is None  # not measured for discriminators by default


@pytest.mark.parametrize(("n_layers", "expected"), [(1, 16), (2, 34), (3, 70), (4, 142), (5, 286)])
def test_n_layers_receptive_fields(n_layers, expected):
    report = inspect_network(
        build_for_inspection(netD="n_layers", n_layers_D=n_layers, ndf=4), (1, 3, 256, 256)
    )
    assert report.receptive_field == expected
    assert chain_rf([(4, 2)] * n_layers + [(4, 1), (4, 1)]) == expected
    # ⌊(I + 2 − 3 − 1)/2⌋ + 1 per stride-2 conv, then −1 for each stride-1 4×4 conv with padding 1.
    size = 256
    for _ in range(n_layers):
        size = (size + 2 - 3 - 1) // 2 + 1
    assert report.output_shape == [1, 1, size - 2, size - 2]


def test_pixel_discriminator_sees_one_pixel():
    report = inspect_network(build_for_inspection(netD="pixel", ndf=8), (1, 3, 32, 32), effective=True)
    assert report.receptive_field == 1
    assert report.effective_receptive_field == 1
    assert report.output_shape == [1, 1, 32, 32]


def test_measured_receptive_field_of_basic_d_matches_the_chain():
    net = build_for_inspection(netD="basic", ndf=8)
    net.train()
    assert effective_receptive_field(net, (1, 3, 256, 256)) == 70
    # The measurement leaves the network as it found it: training mode, no parameter gradients.
    assert net.training and all(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_generator_effective_receptive_field():
    net = build_for_inspection(netG="resnet_6blocks", ngf=4, no_dropout=False)
    small = inspect_network(net, (1, 3, 64, 64))
    first_conv = next(layer for layer in small.layers if layer.type == "Conv2d")
    assert first_conv.kernel == (7, 7) and first_conv.receptive_field == 7
    assert 7 < small.effective_receptive_field <= 64  # clipped to the image
    # Chain: 7, then +2·1 and +2·2 for the downsamplings, +2·4 per block conv, +1·4 and +1·2 for
    # the transposed convs (⌈3/2⌉ − 1 = 1 tap each), +6 for the last 7×7: 121.
    large = inspect_network(net, (1, 3, 256, 256))
    assert large.receptive_field == 7 + 2 + 4 + 12 * 8 + 4 + 2 + 6 == 121
    # The skip connections only add shorter paths: never more than the chain value.
    assert 7 < large.effective_receptive_field <= large.receptive_field
    assert large.output_shape == [1, 3, 256, 256]


def test_transposed_conv_output_size_formula_and_receptive_field():
    layer = nn.ConvTranspose2d(2, 2, kernel_size=4, stride=3, padding=2, output_padding=1, dilation=2)
    report = inspect_network(nn.Sequential(layer), (1, 2, 7, 9))
    (info,) = report.layers
    # O = (I − 1)·s − 2p + d(k − 1) + output_padding + 1
    expected = [(size - 1) * 3 - 2 * 2 + 2 * 3 + 1 + 1 for size in (7, 9)]
    assert expected == [22, 28]
    assert info.output_shape == [1, 2, *expected]
    assert info.output_padding == (1, 1) and info.dilation == (2, 2)
    # Each output unit receives at most ⌈(d(k−1)+1)/s⌉ = ⌈7/3⌉ = 3 input units: RF 3, jump 1/3.
    assert info.receptive_field == 3 and info.jump == pytest.approx(1 / 3)


def test_conv_down_then_transposed_up_chain():
    net = nn.Sequential(
        nn.Conv2d(1, 1, 3, stride=2, padding=1),
        nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1),
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),
    )
    report = inspect_network(net, (1, 1, 16, 16))
    # 3; then + (⌈3/2⌉ − 1)·2 = 5 at jump 1; then the dilated conv + (3 − 1)·2·1 = 9.
    assert [layer.receptive_field for layer in report.layers] == [3, 5, 9]
    assert [layer.jump for layer in report.layers] == [2, 1, 1]
    assert report.output_shape == [1, 1, 16, 16]


def test_a_module_that_disagrees_with_the_formula_is_caught():
    class CroppingConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x)[..., 1:, :]

    with pytest.raises(ShapeArithmeticError, match="O = "):
        inspect_network(nn.Sequential(CroppingConv(1, 1, 3)), (1, 1, 8, 8))


# --- parameters and MACs ------------------------------------------------------------------------


def test_parameter_totals_match_architecture_arithmetic():
    cases = [
        ("resnet_9blocks", {"netG": "resnet_9blocks"}, (1, 3, 32, 32), resnet_params(64, 9), 11_378_179),
        ("resnet_6blocks", {"netG": "resnet_6blocks"}, (1, 3, 32, 32), resnet_params(64, 6), 7_837_699),
        ("basic", {"netD": "basic"}, (1, 3, 64, 64), nlayer_d_params(64, 3), 2_764_737),
        ("pixel", {"netD": "pixel"}, (1, 3, 8, 8), pixel_d_params(64), 8_705),
        # One forward at 256 (the U-Net's multiple) takes well under a second here.
        (
            "unet_256",
            {"netG": "unet_256", "norm": "batch"},
            (1, 3, 256, 256),
            unet_params(64, 8, "batch"),
            54_413_955,
        ),
    ]
    for label, kwargs, shape, from_arithmetic, known in cases:
        net = build_for_inspection(**kwargs)
        report = inspect_network(net, shape, effective=False)
        assert from_arithmetic == known, label
        assert report.parameters == from_arithmetic == sum(p.numel() for p in net.parameters()), label
        assert sum(layer.parameters for layer in report.layers) == report.parameters, label


def test_conv_macs_by_hand_and_per_image():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    report = inspect_network(nn.Sequential(conv), (2, 3, 32, 32))
    # 8 × 16 × 16 output elements, each 3 × 3 × 3 multiply-accumulates; the batch of 2 is not counted.
    assert report.output_shape == [2, 8, 16, 16]
    assert report.macs == 8 * 16 * 16 * 3 * 3 * 3 == 55_296
    assert report.parameters == 8 * 3 * 9 + 8

    grouped = nn.Conv2d(8, 16, kernel_size=3, padding=1, groups=4)
    assert inspect_network(nn.Sequential(grouped), (1, 8, 10, 10)).macs == 16 * 10 * 10 * 2 * 9

    transposed = nn.ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1, output_padding=1)
    report = inspect_network(nn.Sequential(transposed, nn.ReLU()), (1, 8, 5, 5))
    # Each of the 8 × 5 × 5 input elements scatters into 4 channels × 3 × 3 taps; ReLU counts 0.
    assert report.macs == 8 * 5 * 5 * 4 * 9 == 7_200
    assert [layer.macs for layer in report.layers] == [7_200, 0]


# --- output formats and the CLI -------------------------------------------------------------------


def test_json_has_the_documented_keys():
    report = inspect_network(build_for_inspection(netG="resnet_6blocks", ngf=2), (1, 3, 32, 32))
    data = json.loads(json.dumps(report_to_json(report)))
    assert {
        "layers",
        "receptive_field",
        "output_shape",
        "parameters",
        "macs",
        "effective_receptive_field",
        "network",
    } <= set(data)
    assert data["output_shape"] == [1, 3, 32, 32]
    assert isinstance(data["effective_receptive_field"], int)
    first = data["layers"][0]
    assert first["name"] == "model.0" and first["type"] == "ReflectionPad2d"
    assert {
        "kernel",
        "stride",
        "padding",
        "dilation",
        "output_padding",
        "input_shape",
        "output_shape",
        "receptive_field",
        "jump",
        "parameters",
        "macs",
    } <= set(first)
    assert [layer["name"] for layer in data["layers"]][:6] == [f"model.{i}" for i in range(6)]
    assert "model.10.conv_block.1" in {layer["name"] for layer in data["layers"]}


def test_table_lists_layers_and_totals():
    report = inspect_network(build_for_inspection(netG="resnet_6blocks", ngf=2), (1, 3, 32, 32))
    table = format_table(report)
    assert "model.10.conv_block.1" in table and "ConvTranspose2d" in table
    total_row = next(line for line in table.splitlines() if line.startswith("total"))
    assert f"{report.parameters:,}" in total_row and f"{report.macs:,}" in total_row
    assert "1×3×32×32" in total_row and str(report.receptive_field) in total_row
    assert "effective receptive field" in table


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cyclegan inspect")
    add_inspect_arguments(parser)
    return parser.parse_args(argv)


def test_run_inspect_basic_d_table(capsys):
    assert run_inspect(parse(["--netD", "basic", "--size", "256", "--ndf", "8"])) == 0
    out = capsys.readouterr().out
    assert "70" in out and "30×30" in out
    total_row = next(line for line in out.splitlines() if line.startswith("total"))
    assert "1×1×30×30" in total_row and " 70 " in total_row


def test_run_inspect_json_and_dropout_flag(capsys):
    argv = ["--netG", "resnet_6blocks", "--ngf", "2", "--size", "32", "--format", "json", "--dropout"]
    assert run_inspect(parse(argv)) == 0
    data = json.loads(capsys.readouterr().out)
    types = {layer["name"]: layer["type"] for layer in data["layers"]}
    # With dropout the block's second pad moves from index 4 to 5, as in the reference.
    assert types["model.10.conv_block.4"] == "Dropout"
    assert data["network"] == "netG=resnet_6blocks"
    assert parse(["--netD", "basic"]).no_dropout is True


def test_run_inspect_height_width_and_batch(capsys):
    argv = [
        "--netD",
        "basic",
        "--ndf",
        "4",
        "--height",
        "128",
        "--width",
        "96",
        "--batch_size",
        "2",
        "--format",
        "json",
    ]
    assert run_inspect(parse(argv)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_shape"] == [2, 1, 14, 10]


def test_generator_size_not_a_multiple_returns_2(capsys):
    assert run_inspect(parse(["--netG", "resnet_9blocks", "--ngf", "2", "--size", "66"])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "multiple of 4" in captured.err and "66×66" in captured.err


def test_exactly_one_network():
    with pytest.raises(ValueError, match="exactly one"):
        build_for_inspection()
    with pytest.raises(ValueError, match="exactly one"):
        build_for_inspection(netG="resnet_6blocks", netD="basic")
    with pytest.raises(SystemExit):
        parse(["--netG", "resnet_6blocks", "--netD", "basic"])
