"""Lab colour space for colorization: the reference's scaling, and the codec every inference door uses.

The reference (``colorization_dataset.py`` / ``colorization_model.py``) converts with scikit-image's
``rgb2lab`` / ``lab2rgb`` (D65, 2° observer) and scales L ∈ [0, 100] to ``L / 50 − 1`` and a, b to
``ab / 110``, so both sit near [-1, 1] like any other network input and tanh output. The conversion
here is kornia's, a port of scikit-image's formulas to torch: it runs on the network's device, under
autocast and inside a traced graph, where a NumPy round trip could not (tests/test_colorization.py
holds it to scikit-image within 1e-3).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from kornia.color import lab_to_rgb, rgb_to_lab

from cyclegan.recipes.codec import ImageCodec

# The reference's scaling: L / 50 − 1 maps L ∈ [0, 100] onto [-1, 1]; ab / 110 keeps the a and b of
# every sRGB colour (|a|, |b| ≤ ~108) inside [-1, 1].
L_HALF_RANGE = 50.0
AB_SCALE = 110.0

__all__ = ["AB_SCALE", "L_HALF_RANGE", "LabCodec", "rgb_to_scaled_lab", "scaled_lab_to_rgb"]


def _as_rgb(image: torch.Tensor) -> torch.Tensor:
    """N×3×H×W; a grey N×1×H×W picture is replicated, as PIL's ``convert("RGB")`` does."""
    return image.expand(-1, 3, -1, -1) if image.shape[-3] == 1 else image


def _full_precision(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off for the colour maths (an enclosing bf16 autocast would round its matrix products to
    ~3 significant digits); nothing to enter outside autocast, e.g. while a graph is traced."""
    if torch.is_autocast_enabled(tensor.device.type):
        return torch.autocast(tensor.device.type, enabled=False)
    return contextlib.nullcontext()


def _working_dtype(tensor: torch.Tensor) -> torch.dtype:
    """fp32 for half precision, else the tensor's own (fp64 stays fp64: the tiler measures in it)."""
    return torch.promote_types(tensor.dtype, torch.float32)


def rgb_to_scaled_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N×3×H×W RGB in [0, 1] (or N×1×H×W grey) → (L / 50 − 1: N×1×H×W, ab / 110: N×2×H×W), in fp32
    (fp64 for fp64 input)."""
    with _full_precision(rgb):
        lab = rgb_to_lab(_as_rgb(rgb).to(_working_dtype(rgb)))
    return lab[:, :1] / L_HALF_RANGE - 1.0, lab[:, 1:] / AB_SCALE


def scaled_lab_to_rgb(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L / 50 − 1: N×1×H×W, ab / 110: N×2×H×W) → N×3×H×W RGB in [0, 1], in fp32 (fp64 for fp64 ab).

    Lab colours outside the sRGB gamut (a network's ab need not fit its L) are clipped to [0, 1], as
    scikit-image's ``lab2rgb`` clips them.
    """
    with _full_precision(ab):
        dtype = _working_dtype(ab)
        lab = torch.cat([(light.to(dtype) + 1.0) * L_HALF_RANGE, ab.to(dtype) * AB_SCALE], dim=1)
        return lab_to_rgb(lab, clip=True)


@dataclass(frozen=True)
class LabCodec(ImageCodec):
    """Colorization's network reads L (1 channel) and writes ab (2); the pictures on both sides are RGB.

    ``encode``: an RGB (or grey) picture → its L, scaled. ``decode``: the network's L input and ab
    output → the coloured picture. A grey photo therefore comes back in colour, and a colour photo
    comes back with its own lightness and the network's colours.
    """

    input_nc: int = 1
    output_nc: int = 2

    def __post_init__(self) -> None:
        if (self.input_nc, self.output_nc) != (1, 2):
            raise ValueError(f"colorization maps L (1 channel) to ab (2 channels), not {self.input_nc} to "
                             f"{self.output_nc}: drop --input_nc / --output_nc (the recipe sets 1 and 2)")

    @property
    def read_nc(self) -> int:
        return 3  # files are read as RGB; their L is taken here, not by the loader's grey conversion

    @property
    def image_nc(self) -> int:
        return 3

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """N×3×H×W (or N×1×H×W) in [0, 1] → L / 50 − 1, N×1×H×W."""
        return rgb_to_scaled_lab(image)[0]

    def decode(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """(L / 50 − 1, ab / 110) → N×3×H×W RGB in [0, 1]."""
        return scaled_lab_to_rgb(source, output)
