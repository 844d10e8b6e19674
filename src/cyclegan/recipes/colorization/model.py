"""Colorization (pix2pix paper, Fig. 9): pix2pix from the L channel to the ab channels of Lab colour.

The reference's ``colorization_model``: ``--model colorization`` is pix2pix (the same conditional D,
losses, step and ``--lambda_L1``, read from pix2pix's config section) with ``input_nc 1``, ``output_nc
2`` and ``--dataset_mode colorization`` (:mod:`.data`: a folder of photos, each split into L and ab).
G sees a photo's lightness and predicts its colours; the pictures shown are RGB again: the real L
with the true ab (``real_B_rgb``) or with G's ab (``fake_B_rgb``).

Every inference door meets G through :meth:`ColorizationModel.image_codec` (:class:`LabCodec`): an
RGB or grey photo in, a coloured photo out.
"""

from __future__ import annotations

from typing import Any

import torch

from cyclegan.config import TrainConfig
from cyclegan.recipes.base import MODELS, Direction
from cyclegan.recipes.colorization.colour import LabCodec, scaled_lab_to_rgb
from cyclegan.recipes.colorization.data import check_lab_channels  # also registers the data set mode
from cyclegan.recipes.pix2pix.model import Pix2PixModel

__all__ = ["ColorizationModel", "rgb_visuals"]


def rgb_visuals(visuals: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``real_B_rgb`` / ``fake_B_rgb`` (RGB in [-1, 1], as every visual) from ``real_A`` (L) and the
    ab of ``real_B`` / ``fake_B``, for those present."""
    light = visuals["real_A"]
    return {f"{name}_rgb": scaled_lab_to_rgb(light, visuals[name].detach()) * 2 - 1
            for name in ("real_B", "fake_B") if name in visuals}


@MODELS.register("colorization")
class ColorizationModel(Pix2PixModel):
    title = "colorization"
    visual_names = ("real_A", "real_B_rgb", "fake_B_rgb")  # the reference's
    # pix2pix's defaults, plus the reference's colorization data set (which sets input_nc 1, output_nc 2).
    defaults = {
        **Pix2PixModel.defaults,
        "data.dataset_mode": "colorization",
        "data.input_nc": 1,
        "data.output_nc": 2,
    }

    def __init__(self, config: TrainConfig, is_train: bool = True) -> None:
        check_lab_channels(config.data)
        super().__init__(config, is_train=is_train)

    @classmethod
    def image_codec(cls, config: TrainConfig, direction: Direction) -> LabCodec:
        """G reads L and writes ab: an RGB picture in, an RGB picture out (see :class:`LabCodec`)."""
        return LabCodec(*cls.channels(config, direction))

    def current_visuals(self) -> dict[str, torch.Tensor]:
        # Lab → RGB only when the page asks for the images (every --display_freq), not every step: the
        # reference's compute_visuals.
        with torch.no_grad():
            self._visuals.update(rgb_visuals(self._visuals))
        return super().current_visuals()

    @torch.no_grad()
    def translate(self, batch: dict[str, Any], first_only: bool = False) -> dict[str, torch.Tensor]:
        """pix2pix's visuals (``fake_B`` / ``real_B``: the scaled ab) and their RGB pictures."""
        out = super().translate(batch, first_only)
        out.update(rgb_visuals(out))
        return out
