"""Loading state dicts saved by the reference implementation.

The reference drops every conv bias when ``norm == "none"`` (its use_bias test is False for a
lambda norm); our networks keep those biases. A reference checkpoint made with ``--norm none``
therefore lacks exactly the bias keys of convs that are followed by a norm slot: we load it with
those biases set to zero, which computes the same function, and say so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

log = logging.getLogger(__name__)


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` (DataParallel / DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    cleaned = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    return cleaned


def load_reference_state_dict(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "") -> list[str]:
    """Strictly load a reference (or our own) state dict into ``net``; returns zero-filled keys.

    Only missing ``*.bias`` keys whose weight is present are tolerated (the norm=none defect, see
    the module docstring); any other mismatch raises with the list of differences.
    """
    state = strip_module_prefix(state_dict)
    # The reference's save_networks deletes InstanceNorm's num_batches_tracked-like leftovers from
    # old torch versions via __patch_instance_norm_state_dict; such keys never exist in ours.
    state = {k: v for k, v in state.items() if not (k.endswith("num_batches_tracked") and k not in net.state_dict())}
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    zero_filled = [k for k in missing if k.endswith(".bias") and k[: -len("bias")] + "weight" in state]
    other_missing = [k for k in missing if k not in zero_filled]
    wrong_shape = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if other_missing or unexpected or wrong_shape:
        where = f" from {source}" if source else ""
        lines = [f"the checkpoint{where} does not match the network ({type(net).__name__}):"]
        if other_missing:
            lines.append(f"  missing keys ({len(other_missing)}): {', '.join(other_missing[:8])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}")
        if wrong_shape:
            lines.append(f"  shape differences ({len(wrong_shape)}): {'; '.join(wrong_shape[:8])}")
        lines.append("  check --netG/--netD, --ngf/--ndf, --norm, --no_dropout and --input_nc/--output_nc")
        raise ValueError("\n".join(lines))
    for key in zero_filled:
        state[key] = torch.zeros_like(expected[key])
    if zero_filled:
        log.info(
            "%s: %d conv bias(es) absent from the checkpoint (the reference drops them with --norm none); "
            "set to zero, which gives the reference's output",
            source or type(net).__name__,
            len(zero_filled),
        )
    net.load_state_dict(state, strict=True)
    return zero_filled
