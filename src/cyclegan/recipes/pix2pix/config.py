"""``--model pix2pix``'s own options: the TrainConfig section ``pix2pix``, registered here (colorization
shares it, as the reference's colorization model shares pix2pix's options)."""

from __future__ import annotations

from dataclasses import dataclass

from cyclegan.config import register_section


@register_section("pix2pix")
@dataclass
class Pix2PixConfig:
    """``--model pix2pix``: the weight of the L1 term against the true B."""

    lambda_L1: float = 100.0
