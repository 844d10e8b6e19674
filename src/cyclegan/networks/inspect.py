"""``cyclegan inspect``: per-layer output sizes, receptive fields, parameters and MACs of a network.

Everything is measured on the real modules, not on a hand-written description: one forward pass
with a forward hook on every leaf module records the layers in execution order with their
observed input and output shapes; kernel, stride, padding and dilation are read from the module
objects. The textbook output-size formulas are then checked against the observed shapes (a
mismatch raises), so the table documents the arithmetic and cannot drift from the code:

* convolution (and pooling):  ``O = ⌊(I + 2p − d(k−1) − 1) / s⌋ + 1``
* transposed convolution:     ``O = (I − 1)·s − 2p + d(k−1) + output_padding + 1``
* padding layers:             ``O = I + pad_before + pad_after``
* norms, activations, dropout, tanh: ``O = I``

Receptive field (RF) along the execution chain of leaf modules, in input pixels, for one unit of
each layer's output, with ``j`` the cumulative stride ("jump": input pixels between neighbouring
units of that layer):

* convolution: ``r_out = r_in + (k − 1)·d·j_in`` and ``j_out = j_in·s``. This is the forward
  form of the usual backward recursion ``RF_in = (RF_out − 1)·s + k`` (for d = 1).
* transposed convolution: ``j_out = j_in / s`` and
  ``r_out = r_in + (⌈(d(k − 1) + 1) / s⌉ − 1)·j_in``: an output unit of a stride-``s`` transposed
  conv receives contributions from at most ``⌈(d(k−1)+1)/s⌉`` neighbouring input units, so its
  reach grows by that many input units minus one, measured in the input's jump.
* padding, norm, activation, dropout: ``k = 1`` (they change the offset, not the extent).

For the basic 70×70 PatchGAN (``--netD basic``) the table shows convolution strides 2, 2, 2, 1, 1
and the RF 70; the output at 256×256 is 1×1×30×30. The seed report's worked example got 94
because it treated the fourth convolution as stride 2 (backwards from the output: 4 → 10 → 22 →
46 → 94 instead of 4 → 7 → 16 → 34 → 70); the per-layer stride column makes that visible.

The chain value is the RF of the longest path through the network. It is exact for a plain stack
(the discriminators) and an upper bound through skip connections (a ResNet's shortcut adds
shorter paths, a U-Net's concatenations too) and it ignores the image border. Generators therefore
also get an *effective* receptive field, measured by backpropagation: the gradient of one output
pixel near the centre (summed over channels) with respect to a random input, in eval mode (no
dropout), and the side of the bounding box of its nonzero entries, clipped to the image by
construction. Normalisation statistics are held constant for that measurement: instance norm
divides by per-image statistics, so strictly every output depends on every input pixel and the
"receptive field" would always be the whole image; holding them fixed measures the spatial reach
of the convolutions, which is what "70×70 PatchGAN" means. For a network without skip connections
and an image large enough that the centre unit does not reach the border, the measured value
equals the chain value (basic D at 256: 70). Through transposed convolutions the reach of one unit
depends on its position modulo the upsampling (the number of kernel taps alternates), and the
chain value is the largest over positions: resnet_9blocks at 256 has chain 169 and measures 165 at
the centre pixel (128, 128) but 169 at (126, 126).

MACs (multiply-accumulates) per image are half the FLOPs that ``torch.utils.flop_counter`` counts
for each module (convolutions, transposed convolutions, matrix products), divided by the batch;
biases, norms, activations, padding and the residual additions / concatenations are not counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cyclegan.networks import define_D, define_G
from cyclegan.networks.generators import SizeCheckedGenerator

Pair = tuple[int, int]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL_TYPES = (nn.MaxPool2d, nn.AvgPool2d)
_PAD_TYPES = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)


class ShapeArithmeticError(AssertionError):
    """The output-size formula disagrees with the shape the module actually produced."""


@dataclass
class LayerInfo:
    """One call of a leaf module, in execution order."""

    name: str  # module path, e.g. ``model.10.conv_block.1``
    type: str
    kernel: Pair
    stride: Pair
    padding: tuple[int, ...]  # (ph, pw) for convs and pools; (left, right, top, bottom) for pad layers
    dilation: Pair
    output_padding: Pair | None  # transposed convolutions only
    input_shape: list[int]
    output_shape: list[int]
    receptive_field: int  # cumulative, input pixels seen by one unit of this output (larger axis)
    jump: float  # cumulative stride: input pixels between neighbouring output units (height axis)
    parameters: int  # this module's own parameters (0 on a repeated call of a shared module)
    macs: int  # for a batch of one
    receptive_field_hw: Pair = (1, 1)  # per axis, for non-square kernels


@dataclass
class NetworkReport:
    layers: list[LayerInfo]
    receptive_field: int  # chain value after the last layer
    output_shape: list[int]  # N C H W
    parameters: int
    macs: int
    effective_receptive_field: int | None = None  # generators: measured by backpropagation
    network: str = ""
    input_shape: list[int] = field(default_factory=list)


# --- reading the modules ----------------------------------------------------------------------


def _pair(value: Any) -> Pair:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    # 1-d layers: same value on both axes; 3-d: the last two (the spatial H, W of an image).
    return (values[0], values[0]) if len(values) == 1 else (values[-2], values[-1])


def _conv_padding(module: nn.Module, kernel: Pair, dilation: Pair) -> Pair:
    padding = module.padding
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        # PyTorch pads d(k−1) in total (extra on the right when odd); report the left/top share.
        return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    return _pair(padding)


def _spatial(shape: list[int]) -> Pair | None:
    return (shape[-2], shape[-1]) if len(shape) >= 3 else None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _expected_conv(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    numerator = size + 2 * p - d * (k - 1) - 1
    out = (-(-numerator // s) if ceil_mode else numerator // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # PyTorch drops a last window starting in the padding
        out -= 1
    return out


def _check(name: str, formula: str, expected: Pair, observed: Pair | None) -> None:
    # An explicit raise, not `assert`, so the check survives `python -O`.
    if observed is not None and expected != observed:
        raise ShapeArithmeticError(f"{name}: {formula} gives H×W {expected}, the module produced {observed}")


# --- the forward pass with hooks ----------------------------------------------------------------


@contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    # Eval mode: dropout off, BatchNorm on running statistics (train-mode BatchNorm cannot take a
    # 1×1 map with batch 1, which the U-Net's innermost level produces).
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


def _leaf_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in net.named_modules() if next(m.children(), None) is None]


def _model_device_dtype(net: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in list(net.parameters()) + list(net.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _trace(
    net: nn.Module, input_shape: tuple[int, int, int, int]
) -> tuple[list[tuple], torch.Tensor, dict[str, int]]:
    """Run one forward pass; return (name, module, input shape, output shape) per leaf call, the
    output, and the FLOPs ``torch.utils.flop_counter`` attributes to each module path."""
    calls: list[tuple[str, nn.Module, list[int], list[int]]] = []
    handles = []
    for name, module in _leaf_modules(net):

        def hook(mod: nn.Module, inputs: tuple, output: Any, _name: str = name) -> None:
            tensor_in, tensor_out = _first_tensor(inputs), _first_tensor(output)
            if tensor_in is None or tensor_out is None:
                return
            calls.append((_name, mod, list(tensor_in.shape), list(tensor_out.shape)))

        handles.append(module.register_forward_hook(hook))
    device, dtype = _model_device_dtype(net)
    counter = FlopCounterMode(display=False)
    try:
        with _eval_mode(net), torch.no_grad(), counter:
            # Zeros are enough: only shapes are read here.
            output = net(torch.zeros(input_shape, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    out = _first_tensor(output)
    if out is None:
        raise TypeError(f"{type(net).__name__} returned no tensor")
    # The counter names modules "<root class>.<path>"; a module called twice has one total.
    prefix = f"{type(net).__name__}."
    flops = {k.removeprefix(prefix): sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return calls, out, flops


def _advance_chain(
    name: str, module: nn.Module, shape_in: list[int], shape_out: list[int], rf: list[Fraction], jump: list[Fraction]
) -> tuple[Pair, Pair, tuple[int, ...], Pair, Pair | None]:
    """One leaf call's (kernel, stride, padding, dilation, output_padding), read from the module.

    Checks the output-size formula against the shapes the call produced and advances the chain's
    receptive field ``rf`` and ``jump`` (per axis, exact fractions) in place.
    """
    kernel, stride, dilation, padding, output_padding = (1, 1), (1, 1), (1, 1), (0, 0), None
    hw_in, hw_out = _spatial(shape_in), _spatial(shape_out)
    if isinstance(module, _TRANSPOSED_TYPES):
        kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        padding, output_padding = _pair(module.padding), _pair(module.output_padding)
        if hw_in is not None:
            expected = tuple((hw_in[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1)
                             + output_padding[a] + 1 for a in range(2))
            _check(name, "O = (I−1)s − 2p + d(k−1) + output_padding + 1", expected, hw_out)
        for a in range(2):
            taps = math.ceil((dilation[a] * (kernel[a] - 1) + 1) / stride[a])
            rf[a] += (taps - 1) * jump[a]
            jump[a] /= stride[a]
    elif isinstance(module, (*_CONV_TYPES, *_POOL_TYPES)):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        dilation = _pair(getattr(module, "dilation", 1))
        padding = _conv_padding(module, kernel, dilation) if isinstance(module, _CONV_TYPES) else _pair(module.padding)
        if hw_in is not None and not (isinstance(module, _CONV_TYPES) and module.padding == "same"):
            ceil_mode = bool(getattr(module, "ceil_mode", False))
            expected = tuple(_expected_conv(hw_in[a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                             for a in range(2))
            _check(name, "O = ⌊(I + 2p − d(k−1) − 1)/s⌋ + 1", expected, hw_out)
        for a in range(2):
            rf[a] += (kernel[a] - 1) * dilation[a] * jump[a]
            jump[a] *= stride[a]
    elif isinstance(module, _PAD_TYPES):
        left, right, top, bottom = module.padding
        padding = (left, right, top, bottom)
        if hw_in is not None:
            _check(name, "O = I + pads", (hw_in[0] + top + bottom, hw_in[1] + left + right), hw_out)
    elif hw_in is not None and hw_out is not None and hw_in != hw_out and len(shape_in) == len(shape_out):
        # A layer that resamples (Upsample, an unknown pool ...) would make the chain RF wrong.
        raise NotImplementedError(
            f"{name} ({type(module).__name__}) changes H×W {hw_in} → {hw_out}; inspect does not know "
            f"its receptive-field arithmetic"
        )
    return kernel, stride, padding, dilation, output_padding


def inspect_network(
    net: nn.Module,
    input_shape: tuple[int, int, int, int],
    *,
    effective: bool | None = None,
    network: str | None = None,
) -> NetworkReport:
    """Trace ``net`` on an N×C×H×W input and return its per-layer report.

    ``effective``: measure the effective receptive field by backpropagation; ``None`` (default)
    does so for the generators (image-to-image networks), where skip connections make the chain
    value an upper bound. Raises ``ImageSizeError`` when the network cannot take the size.
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {input_shape}")
    calls, output, flops = _trace(net, tuple(int(v) for v in input_shape))
    layers: list[LayerInfo] = []
    seen: set[int] = set()
    # Exact rational arithmetic: transposed convolutions make the jump fractional (1/2, 1/4 ...).
    rf = [Fraction(1), Fraction(1)]
    jump = [Fraction(1), Fraction(1)]
    for name, module, shape_in, shape_out in calls:
        geometry = _advance_chain(name, module, shape_in, shape_out, rf, jump)
        kernel, stride, padding, dilation, output_padding = geometry
        parameters = macs = 0
        if id(module) not in seen:  # a module called twice owns its parameters and MACs once
            seen.add(id(module))
            parameters = sum(p.numel() for p in module.parameters(recurse=False))
            macs = flops.get(name, 0) // 2 // shape_in[0]  # a FLOP per multiply and per add; per image
        rf_hw = (math.ceil(rf[0]), math.ceil(rf[1]))
        layers.append(LayerInfo(
            name=name, type=type(module).__name__, kernel=kernel, stride=stride, padding=tuple(padding),
            dilation=dilation, output_padding=output_padding, input_shape=shape_in, output_shape=shape_out,
            receptive_field=max(rf_hw), jump=float(jump[0]), parameters=parameters, macs=macs,
            receptive_field_hw=rf_hw,
        ))
    if effective is None:
        effective = isinstance(net, SizeCheckedGenerator)
    erf = effective_receptive_field(net, input_shape) if effective else None
    return NetworkReport(
        layers=layers,
        receptive_field=max(math.ceil(rf[0]), math.ceil(rf[1])),
        output_shape=list(output.shape),
        # From the network, not the layer rows, so parameters of non-leaf modules count too.
        parameters=sum(p.numel() for p in net.parameters()),
        macs=sum(layer.macs for layer in layers),
        effective_receptive_field=erf,
        network=network or type(net).__name__,
        input_shape=[int(v) for v in input_shape],
    )


# --- effective receptive field -----------------------------------------------------------------


def _fixed_statistics_norm(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """Recompute an instance norm with its mean and variance detached (constants for autograd)."""
    x = inputs[0]
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True).detach()
    var = x.var(dims, unbiased=False, keepdim=True).detach()
    y = (x - mean) / torch.sqrt(var + module.eps)
    if module.affine:
        shape = (1, -1) + (1,) * len(dims)
        y = y * module.weight.view(shape) + module.bias.view(shape)
    return y


def effective_receptive_field(net: nn.Module, input_shape: tuple[int, int, int, int], seed: int = 0) -> int:
    """Side of the bounding box of input pixels that reach the centre output unit (by gradient).

    Eval mode (dropout off, BatchNorm on running statistics) and instance-norm statistics held
    constant, see the module docstring. The centre unit keeps the box off the border when the
    image is large enough; otherwise the box is clipped to the image.
    """
    _, channels, height, width = (int(v) for v in input_shape)
    device, dtype = _model_device_dtype(net)
    handles = [
        m.register_forward_hook(_fixed_statistics_norm)
        for m in net.modules()
        if isinstance(m, nn.modules.instancenorm._InstanceNorm) and not m.track_running_stats
    ]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((1, channels, height, width), generator=generator, dtype=dtype).to(device).requires_grad_(True)
    try:
        with _eval_mode(net), torch.enable_grad():
            output = _first_tensor(net(x))
            if output is None or output.dim() != 4:
                raise TypeError(
                    f"{type(net).__name__} must return an N×C×H×W tensor to measure its receptive field"
                )
            cy, cx = output.shape[-2] // 2, output.shape[-1] // 2
            # autograd.grad, not backward(): the parameters' .grad stay untouched.
            (grad,) = torch.autograd.grad(output[0, :, cy, cx].sum(), x)
    finally:
        for handle in handles:
            handle.remove()
    reach = grad[0].abs().sum(0).nonzero()
    if reach.numel() == 0:
        return 0
    extent = reach.max(0).values - reach.min(0).values + 1
    return int(extent.max())


# --- output ----------------------------------------------------------------------------------


def _dims(values: tuple[int, ...] | list[int] | None) -> str:
    if values is None:
        return ""
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else "×".join(str(v) for v in values)


def _shape(shape: list[int]) -> str:
    return "×".join(str(v) for v in shape)


def _padding_cell(layer: LayerInfo) -> str:
    if len(layer.padding) == 4:  # pad layer: (left, right, top, bottom)
        text = _dims(layer.padding) if len(set(layer.padding)) == 1 else ",".join(map(str, layer.padding))
        return f"{text} (pad)"
    text = _dims(layer.padding)
    if layer.output_padding is not None and any(layer.output_padding):
        text += f" +{_dims(layer.output_padding)} out"
    return text


def format_table(report: NetworkReport) -> str:
    """Plain-text table, one row per leaf-module call, a totals row, then the receptive fields."""
    header = ["layer", "type", "kernel", "stride", "padding", "dilation", "output shape", "receptive field",
              "parameters", "MACs"]
    rows = [
        [
            layer.name,
            layer.type,
            _dims(layer.kernel),
            _dims(layer.stride),
            _padding_cell(layer),
            _dims(layer.dilation),
            _shape(layer.output_shape),
            _dims(layer.receptive_field_hw),
            f"{layer.parameters:,}",
            f"{layer.macs:,}",
        ]
        for layer in report.layers
    ]
    total = ["total", "", "", "", "", "", _shape(report.output_shape), str(report.receptive_field),
             f"{report.parameters:,}", f"{report.macs:,}"]
    right = {2, 3, 4, 5, 7, 8, 9}  # numbers right-aligned
    widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)

    rule = "  ".join("-" * w for w in widths)
    out = [
        f"{report.network}: input {_shape(report.input_shape)}",
        line(header),
        rule,
        *(line(r) for r in rows),
        rule,
        line(total),
        "",
        f"receptive field (chain of layers): {report.receptive_field}×{report.receptive_field} input pixels",
        f"output shape: {_shape(report.output_shape)}",
        f"parameters: {report.parameters:,}",
        f"MACs per image: {report.macs:,} ({report.macs / 1e9:.2f} G)",
    ]
    if report.effective_receptive_field is not None:
        erf = report.effective_receptive_field
        out.append(
            f"effective receptive field (gradient of the centre output pixel, norm statistics fixed, "
            f"clipped to the image): {erf}×{erf}"
        )
    return "\n".join(out).rstrip() + "\n"


def report_to_json(report: NetworkReport) -> dict[str, Any]:
    """JSON-ready dict: the layers as dicts plus the totals."""
    return dataclasses.asdict(report)


# --- building --------------------------------------------------------------------------------


def build_for_inspection(
    netG: str | None = None,
    netD: str | None = None,
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    ndf: int = 64,
    n_layers_D: int = 3,
    norm: str = "instance",
    no_dropout: bool = True,
    padding_type: str = "reflect",
) -> nn.Module:
    """The network the training flags build: exactly one of ``netG`` / ``netD``.

    A discriminator is built on ``input_nc`` channels (in CycleGAN D_A sees domain B images, so
    pass ``input_nc=output_nc`` to inspect D_A of an asymmetric model).
    """
    if (netG is None) == (netD is None):
        raise ValueError("inspect needs exactly one of --netG or --netD")
    if netG is not None:
        return define_G(
            input_nc, output_nc, ngf, netG, norm=norm, use_dropout=not no_dropout, padding_type=padding_type
        )
    return define_D(input_nc, ndf, netD, n_layers_D=n_layers_D, norm=norm)


__all__ = [
    "LayerInfo",
    "NetworkReport",
    "ShapeArithmeticError",
    "build_for_inspection",
    "effective_receptive_field",
    "format_table",
    "inspect_network",
    "report_to_json",
]
