"""The reference's generators, layer for layer: ResNet (6 / 9 blocks) and U-Net (128 / 256).

Module names, nesting and order follow junyanz/pytorch-CycleGAN-and-pix2pix exactly (``model.1``,
``model.10.conv_block.5``, ``model.model.1.model.3...``) so its checkpoints load with
``strict=True`` and ours load into its ``test.py``; keep it so when editing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cyclegan.networks.antialias import Downsample, Upsample
from cyclegan.networks.layers import NormFactory, padding_layer


class ImageSizeError(ValueError):
    """An input whose height or width the network cannot take."""


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad H, W at the bottom / right up to ``multiple``; return the padded tensor and the old H, W.

    Reflection, which needs the pad smaller than the side: tiny images fall back to replication.
    Every path that runs a generator on any size (torch, ONNX Runtime, an exported program) pads so.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x, height, width
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), height, width


class SizeCheckedGenerator(nn.Module):
    """Checks (or pads) the input size before any convolution runs.

    A generator that downsamples ``k`` times by 2 and upsamples back needs H and W divisible by
    ``2**k``; otherwise torch fails deep inside with a shape mismatch. ``pad_to_multiple`` (off by
    default) reflect-pads to the multiple and crops the output back instead. It is a plain
    attribute, not a buffer, so the state_dict keys stay the reference's.
    """

    size_multiple: int = 1
    input_nc: int = 3

    def __init__(self) -> None:
        super().__init__()
        self.pad_to_multiple = False

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ImageSizeError(f"{type(self).__name__} expects a batch N×C×H×W, got shape {tuple(x.shape)}")
        if x.shape[1] != self.input_nc:
            raise ImageSizeError(
                f"{type(self).__name__} was built for {self.input_nc} input channel(s) but got {x.shape[1]}: "
                f"set --input_nc/--output_nc to match the images"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        if height % multiple == 0 and width % multiple == 0:
            return self.body(x)
        if not self.pad_to_multiple:
            raise ImageSizeError(
                f"{type(self).__name__} needs height and width divisible by {multiple}, got {height}×{width}; "
                f"crop or resize to a multiple of {multiple} (e.g. --crop_size), or enable pad_to_multiple "
                f"to reflect-pad and crop back"
            )
        padded, height, width = pad_to_multiple(x, multiple)
        return self.body(padded)[..., :height, :width]

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    """conv-norm-ReLU-(dropout)-conv-norm with a skip connection; keys ``conv_block.N``."""

    def __init__(self, dim: int, padding_type: str, norm_layer: NormFactory, use_dropout: bool, use_bias: bool):
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

    @staticmethod
    def build_conv_block(
        dim: int, padding_type: str, norm_layer: NormFactory, use_dropout: bool, use_bias: bool
    ) -> nn.Sequential:
        pad, conv_padding = padding_layer(padding_type, 1)
        block: list[nn.Module] = [
            *pad,
            nn.Conv2d(dim, dim, kernel_size=3, padding=conv_padding, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:  # shifts the second conv's index, as in the reference
            block.append(nn.Dropout(0.5))
        pad, conv_padding = padding_layer(padding_type, 1)
        block += [*pad, nn.Conv2d(dim, dim, kernel_size=3, padding=conv_padding, bias=use_bias), norm_layer(dim)]
        return nn.Sequential(*block)

    gradient_checkpointing = False  # set by enable_gradient_checkpointing; a plain attribute, no key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            # Keep only the block's input; recompute its inside during backward (less memory, ~1/3 more compute).
            return x + checkpoint(self.conv_block, x, use_reentrant=False)
        return x + self.conv_block(x)


class ResnetGenerator(SizeCheckedGenerator):
    """c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` ResNet blocks, two upsamplings, c7s1-out, tanh.

    ``antialias`` / ``antialias_up`` give CUT's variant (networks/cut.py): a full-resolution conv, then
    blur-and-subsample down; blur-upsample, then a full-resolution conv up (key ``model.N.filt``).

    ``residual_output`` (ours, off in the reference): G(x) = tanh(h(x) + atanh(x)), where h is the
    layer stack without its tanh. With h's last convolution zeroed (``start_as_identity``) the
    generator starts as the identity and learns a change of appearance; the same keys as without.

    ``colour_branch`` (ours, needs ``residual_output``): a width for :class:`PointwiseColourMap`, a
    per-pixel colour map c beside the layer stack: G(x) = tanh(h(x) + atanh(x) + c(x)) (keys
    ``colour.*``). It also starts at zero.

    ``body_scale`` (residual output only) multiplies h: a random body's last features are large (no
    norm, Kaiming init), so its zeroed last convolution moves the output fast from the first steps,
    and adversarial gradients then print texture over the structure; a smaller scale slows the body
    alone (Adam's step does not see the scale), not the colour branch.
    """

    n_downsampling = 2
    # atanh(±1) is infinite: inputs are clamped to this before the skip (tanh(atanh(0.99)) = 0.99).
    residual_clamp = 0.99

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
        n_blocks: int = 6,
        padding_type: str = "reflect",
        use_bias: bool = False,
        antialias: bool = False,
        antialias_up: bool = False,
        residual_output: bool = False,
        colour_branch: int = 0,
        body_scale: float = 1.0,
    ):
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if residual_output and input_nc != output_nc:
            raise ValueError(f"--residual_output adds the input to the output: it needs input_nc == output_nc "
                             f"(got {input_nc} and {output_nc})")
        if colour_branch and not residual_output:
            raise ValueError(f"--colour_branch {colour_branch} adds to the residual output: it needs --residual_output")
        if body_scale != 1.0 and not residual_output:
            raise ValueError(f"--body_scale {body_scale} scales the residual output: it needs --residual_output")
        super().__init__()
        self.input_nc = input_nc
        self.residual_output = residual_output  # a plain attribute: the state_dict keys stay the reference's
        self.body_scale = body_scale
        self.size_multiple = 2**self.n_downsampling
        model: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(self.n_downsampling):
            mult = 2**i
            stride = 1 if antialias else 2
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=stride, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
            if antialias:
                model.append(Downsample(ngf * mult * 2))
        mult = 2**self.n_downsampling
        for _ in range(n_blocks):
            model.append(ResnetBlock(ngf * mult, padding_type, norm_layer, use_dropout, use_bias))
        for i in range(self.n_downsampling):
            mult = 2 ** (self.n_downsampling - i)
            if antialias_up:
                up = [Upsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, padding=1, bias=use_bias)]
            else:
                up = [nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias
                )]
            model += [*up, norm_layer(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        if not residual_output:  # with it, the tanh comes after the skip (add_input); it has no key
            model.append(nn.Tanh())
        self.model = nn.Sequential(*model)
        self.colour = PointwiseColourMap(input_nc, output_nc, colour_branch) if colour_branch else None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        return self.add_input(output, x) if self.residual_output else output

    def add_input(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The residual output: tanh(h + atanh(x) [+ c(x)]), so that h = 0 (and c = 0) gives back x; with
        a colour branch the skip goes through its channel mix M first: tanh(h + M atanh(x) + c(x))."""
        skip = torch.atanh(x.clamp(-self.residual_clamp, self.residual_clamp))
        if self.colour is not None:
            skip = self.colour.mixed(skip) + self.colour(x)
        out = torch.tanh((h if self.body_scale == 1.0 else self.body_scale * h) + skip)
        return out if self.colour is None else self.colour.project(out)

    def colour_only(self, x: torch.Tensor) -> torch.Tensor:
        """The output without the body (h = 0): tanh(atanh(x) + c(x)), or x clamped without a colour branch.
        What the body adds is G(x) minus this (``--lambda_body`` penalises it)."""
        if not self.residual_output:
            raise ValueError("colour_only is the residual output without the body: it needs --residual_output")
        return self.add_input(torch.zeros_like(x[:, :1]), x)

    @torch.no_grad()
    def start_as_identity(self) -> None:
        """Zero the last convolution (and the colour map's), so that a residual-output generator starts
        as G(x) = x."""
        for last in (self.model[-1], *((self.colour[-1],) if self.colour is not None else ())):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        if self.colour is not None:
            self.colour.set_mix(torch.eye(*self.colour.mix.shape))


class PointwiseColourMap(nn.Sequential):
    """A small MLP on each pixel's colour alone (1x1 convolutions): a learned 3-D colour look-up.

    Tints, grades, channel swaps, hue rotations and inversions are functions of a pixel's colour;
    the convolutional body can learn them too, but only by agreeing across all its layers, slowly, and
    it damages the structure on the way. This branch learns them from every pixel at once and cannot
    blur or texture anything, which leaves the body the changes that need context (stripes, objects).

    A generator whose target domain is greyscale outputs grey (the buffer ``grey_output``, key
    ``colour.grey_output``, 1): its channels are averaged onto the grey axis, as the reference's
    ``--output_nc 1`` would make them, but decided from the data (``--grey_output_for_grey``) and kept
    with the weights, so that inference translates the same way. A 3-channel grey output keeps the
    image's shape for every door (pages, tiles, export).

    The generator's skip goes through the channel mix M (the buffer ``mix``, key ``colour.mix``, the
    identity unless the colour start set it): tanh(M atanh(x)) = M x for a signed channel permutation
    (atanh is odd), so a channel swap or a negative is exact from the start, which c alone can only
    approximate (-2 atanh(x) for a negative is steep at the ends), and training refines c around it.
    """

    def __init__(self, input_nc: int, output_nc: int, width: int):
        super().__init__(nn.Conv2d(input_nc, width, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, width, 1),
                         nn.LeakyReLU(0.2), nn.Conv2d(width, output_nc, 1))
        self.register_buffer("grey_output", torch.zeros(()))
        self.register_buffer("mix", torch.eye(output_nc, input_nc))
        # The buffers' values as Python bools, so that a step reads them without a device sync and the
        # graph stays exactly what it was without these options.
        self.outputs_grey = False
        self.mixes = False

    def set_mix(self, matrix: torch.Tensor) -> None:
        """The skip's channel mix M (output_nc x input_nc): the identity, or what the colour start chose."""
        self.mix.copy_(matrix)
        self._read_mix()

    def _read_mix(self) -> None:
        self.mixes = not torch.equal(self.mix.cpu(), torch.eye(*self.mix.shape))

    def mixed(self, skip: torch.Tensor) -> torch.Tensor:
        """M applied to each pixel of ``skip`` (N x C x H x W): unchanged for the identity."""
        return F.conv2d(skip, self.mix.to(skip.dtype)[:, :, None, None]) if self.mixes else skip

    def set_grey_output(self, grey: bool) -> None:
        self.grey_output.fill_(float(grey))
        self.outputs_grey = bool(grey)

    def project(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` onto the grey axis (each pixel's channel mean) for a grey output, else unchanged."""
        return out.mean(1, keepdim=True).expand_as(out) if self.outputs_grey else out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Checkpoints from before grey_output and mix hold no such keys: they output colour, unmixed.
        state_dict.setdefault(prefix + "grey_output", torch.zeros(()))
        state_dict.setdefault(prefix + "mix", torch.eye(*self.mix.shape))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self.outputs_grey = bool(self.grey_output)
        self._read_mix()


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down, the inner submodule, up, and the skip concatenation."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
        use_bias: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.cat([x, checkpoint(self.model, x, use_reentrant=False)], 1)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(SizeCheckedGenerator):
    """U-Net with ``num_downs`` stride-2 levels (7 for 128×128, 8 for 256×256) and skip connections."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        num_downs: int,
        ngf: int = 64,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
        use_bias: bool = False,
    ):
        if num_downs < 5:
            raise ValueError(f"a U-Net needs num_downs >= 5, got {num_downs}")
        super().__init__()
        self.input_nc = input_nc
        self.size_multiple = 2**num_downs
        common = {"norm_layer": norm_layer, "use_bias": use_bias}
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **common)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **common)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **common)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **common)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **common)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **common)


def enable_gradient_checkpointing(net: nn.Module) -> int:
    """Recompute activations in backward instead of storing them (``--gradient_checkpointing``).

    ResNet generators checkpoint every residual block. U-Nets checkpoint the block just inside the
    outermost one (one segment: nesting checkpoints would recompute the inner levels once per
    level). Returns how many segments were set; the state_dict is unchanged.
    """
    segments = 0
    for module in net.modules():
        if isinstance(module, ResnetBlock):
            module.gradient_checkpointing = True
            segments += 1
    if isinstance(net, UnetGenerator):
        inner = net.model.model[1]
        inner.gradient_checkpointing = True
        segments += 1
    return segments
