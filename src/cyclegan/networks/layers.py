"""Layer factories shared by the generators and discriminators: norms, padding, initialisation.

Each choice is a plain dict (or registry) keyed by the reference's names, so an unknown name
raises an error that lists the known ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from cyclegan.core.registry import Registry

NormFactory = Callable[[int], nn.Module]


class InstanceNorm2d(nn.InstanceNorm2d):
    """The reference's ``nn.InstanceNorm2d`` (same arguments, keys and values up to float rounding),
    computed by torch's group-norm kernels with one group per channel.

    Each (sample, channel) is normalised over H×W either way; ``instance_norm`` gets there by reshaping
    into a batch norm over N·C channels, which on the CPU is several times slower, forward and
    backward, at the small maps of short CPU runs (``benchmarks/README.md``). Running statistics
    (``track_running_stats=True``) take the inherited path, and so does ``torch.compile``: inductor
    fuses either into its own kernels, and torch 2.14's CPU lowering of this group norm corrupted the
    heap within two training steps (tests/test_train.py runs two compiled steps).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.track_running_stats or x.dim() != 4 or x.shape[1] != self.num_features
                or torch.compiler.is_compiling()):
            return super().forward(x)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


NORM_LAYERS: Registry[NormFactory] = Registry("norm")
# Same choices as the reference's get_norm_layer. `syncbatch` builds plain BatchNorm2d (same
# state_dict keys); the trainer converts it with nn.SyncBatchNorm.convert_sync_batchnorm under DDP,
# so the networks stay free of any distributed knowledge.
NORM_LAYERS.add("batch", functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True))
NORM_LAYERS.add("syncbatch", functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True))
NORM_LAYERS.add("instance", functools.partial(InstanceNorm2d, affine=False, track_running_stats=False))
NORM_LAYERS.add("none", lambda num_features: nn.Identity())


def get_norm_layer(norm: str) -> NormFactory:
    return NORM_LAYERS.get(norm)


def conv_bias_for(norm: str) -> bool:
    """Whether convolutions followed by this norm need their own bias.

    BatchNorm has an affine shift, so a bias before it is redundant; instance norm without affine
    parameters and no norm at all need one. The reference decides with
    ``norm_layer.func == nn.InstanceNorm2d``, which is False for ``none`` (a lambda) and so drops
    every bias there: a defect we do not copy (see networks.compat for loading such checkpoints).
    """
    if norm not in NORM_LAYERS:
        NORM_LAYERS.get(norm)  # raises with the list of known norms
    return norm in ("instance", "none")


PADDING_LAYERS: dict[str, type[nn.Module] | None] = {
    "reflect": nn.ReflectionPad2d,
    "replicate": nn.ReplicationPad2d,
    "zero": None,  # folded into the convolution's own zero padding
}


def padding_layer(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """The explicit padding module(s) and the conv's own padding for a padding type."""
    if padding_type not in PADDING_LAYERS:
        raise ValueError(f"unknown padding type {padding_type!r}; known: {', '.join(PADDING_LAYERS)}")
    layer = PADDING_LAYERS[padding_type]
    if layer is None:
        return [], amount
    return [layer(amount)], 0


WEIGHT_INITS: dict[str, Callable[[torch.Tensor, float], object]] = {
    "normal": lambda weight, gain: init.normal_(weight, 0.0, gain),
    "xavier": lambda weight, gain: init.xavier_normal_(weight, gain=gain),
    # The reference ignores the gain here; so do we, for identical weights from the same seed.
    "kaiming": lambda weight, gain: init.kaiming_normal_(weight, a=0, mode="fan_in"),
    "orthogonal": lambda weight, gain: init.orthogonal_(weight, gain=gain),
}


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise like the reference's init_weights, visiting modules in the same order.

    Conv / Linear weights by ``init_type``, their biases to 0; BatchNorm weights ~ N(1, gain),
    biases 0. Visiting in ``net.apply`` order draws the random numbers in the reference's order,
    so the same seed gives the same weights as the reference.
    """
    if init_type not in WEIGHT_INITS:
        raise ValueError(f"unknown init type {init_type!r}; known: {', '.join(WEIGHT_INITS)}")
    init_weight = WEIGHT_INITS[init_type]

    @torch.no_grad()
    def init_module(module: nn.Module) -> None:
        classname = module.__class__.__name__
        if hasattr(module, "weight") and ("Conv" in classname or "Linear" in classname):
            init_weight(module.weight, init_gain)
            if getattr(module, "bias", None) is not None:
                init.constant_(module.bias, 0.0)
        elif "BatchNorm2d" in classname:
            init.normal_(module.weight, 1.0, init_gain)
            init.constant_(module.bias, 0.0)

    net.apply(init_module)
    return net
