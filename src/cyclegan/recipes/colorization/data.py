"""``--dataset_mode colorization``: one folder of RGB images, each split into its L (A) and ab (B).

The reference's ``colorization_dataset.py``: ``<dataroot>/<phase>/*`` holds ordinary photos; each is
read as RGB (a grey file too: it then has ab = 0, and is kept, as the reference keeps it), resized,
cropped and flipped like any other data set mode, and converted to Lab. A = L / 50 − 1 (1 channel),
B = ab / 110 (2 channels). Registered into :data:`cyclegan.data.datasets.DATASETS` on import (the
recipe's model module imports this one).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torchvision.transforms.v2 import functional as TF

from cyclegan.config import DataConfig
from cyclegan.data.datasets import DATASETS, BaseDataset
from cyclegan.data.images import list_images, load_image, scan_images
from cyclegan.data.transforms import get_transform
from cyclegan.recipes.colorization.colour import rgb_to_scaled_lab

__all__ = ["ColorizationDataset", "check_lab_channels"]


def check_lab_channels(cfg: DataConfig) -> None:
    """The reference's assertion: input_nc 1 (L), output_nc 2 (ab), direction AtoB; said as advice."""
    if (cfg.input_nc, cfg.output_nc) != (1, 2):
        raise ValueError(f"colorization maps L (1 channel) to ab (2 channels), got --input_nc {cfg.input_nc} "
                         f"--output_nc {cfg.output_nc}: drop those flags (the recipe sets 1 and 2)")
    if cfg.direction != "AtoB":
        raise ValueError(f"colorization translates L to ab (AtoB) only, got --direction {cfg.direction}")


@DATASETS.register("colorization")
class ColorizationDataset(BaseDataset):
    """RGB photos ``<dataroot>/<phase>/*`` → ``{"A": L 1×H×W, "B": ab 2×H×W, "A_paths", "B_paths"}``."""

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        check_lab_channels(cfg)
        # BaseDataset checks input_nc / output_nc as the channels a file is read with (1 or 3); these
        # files are read as RGB (3), and the Lab channels were checked above.
        super().__init__(dataclasses.replace(cfg, input_nc=3, output_nc=3), seed)
        self.cfg = cfg
        self.dir = Path(cfg.dataroot) / cfg.phase
        paths, self.skipped_non_images = list_images(self.dir, cfg.max_dataset_size)
        self.paths = scan_images(paths, cfg.max_bad_fraction, min_side=cfg.crop_size)
        self.skipped_bad = len(paths) - len(self.paths)
        # Resize / crop / flip on the RGB picture (convert=False: a PIL image), then Lab from [0, 1].
        self.transform = get_transform(cfg, grayscale=False, convert=False)

    def get(self, epoch: int, index: int) -> dict[str, Any]:
        path = self.paths[index]
        self._seed_torch(epoch, index, "A")  # the random crop and flip draw from torch's RNG
        picture = TF.to_dtype(TF.to_image(self.transform(load_image(path, 3))), scale=True)  # 3×H×W in [0, 1]
        light, ab = rgb_to_scaled_lab(picture.unsqueeze(0))
        return {"A": light[0], "B": ab[0], "A_paths": str(path), "B_paths": str(path)}

    def __len__(self) -> int:
        return len(self.paths)
