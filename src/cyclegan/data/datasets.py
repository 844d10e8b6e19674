"""The reference's data set modes (unaligned, aligned, single), reproducible per (seed, epoch, index).

Each random choice of an item (B's index, crop position, flip) is drawn from generators seeded by
``item_seed(seed, epoch, index, stream)``, so a sample does not depend on worker count, on the order
items are fetched, or on anything drawn before: a run resumed mid-epoch sees the same samples.

Persistent DataLoader workers hold their own copy of the data set, so ``dataset.set_epoch`` in the
main process does not reach them. :class:`EpochSampler` therefore yields ``(epoch, index)`` pairs,
which every data set here accepts as an index; ``create_dataloader`` uses it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cyclegan.config import DataConfig
from cyclegan.core.registry import Registry
from cyclegan.data.images import list_images, load_image, scan_images, split_aligned
from cyclegan.data.transforms import get_params, get_transform

DATASETS: Registry[type[BaseDataset]] = Registry("dataset mode")
logger = logging.getLogger(__name__)


def item_seed(seed: int, epoch: int, index: int, stream: str = "") -> int:
    """A 63-bit seed that is a pure function of its arguments (stable across processes and runs).

    Python's ``hash`` of a str is salted per process, so a cryptographic digest is used instead.
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The order of indices for one epoch: a permutation fixed by (seed, epoch), or ``range(n)``."""
    if not shuffle:
        return list(range(n))
    generator = torch.Generator().manual_seed(item_seed(seed, epoch, -1, "order"))
    return torch.randperm(n, generator=generator).tolist()


def _domain_channels(cfg: DataConfig) -> tuple[int, int]:
    """Channels of the A and B folders: ``direction=BtoA`` swaps input_nc and output_nc, as in the reference."""
    if cfg.direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, got {cfg.direction!r}")
    if cfg.direction == "BtoA":
        return cfg.output_nc, cfg.input_nc
    return cfg.input_nc, cfg.output_nc


def _good_images(folder: Path, cfg: DataConfig) -> tuple[list[Path], int, int]:
    """List and check one folder; return (good paths, non-image files skipped, bad images skipped)."""
    paths, skipped = list_images(folder, cfg.max_dataset_size)
    good = scan_images(paths, cfg.max_bad_fraction, min_side=cfg.crop_size)
    return good, skipped, len(paths) - len(good)


class BaseDataset(Dataset):
    """Common epoch / seed handling. An index is an ``int`` (uses ``set_epoch``) or ``(epoch, index)``."""

    #: how ``cyclegan test`` and int8 calibration find this mode's images: ``unaligned`` (folders
    #: ``<phase>A`` / ``<phase>B``), ``aligned`` (``<phase>/`` of A|B files), ``single`` (``dataroot``
    #: itself) or ``pictures`` (``<phase>/`` of pictures, each the truth of its own encoded input:
    #: colorization)
    layout: ClassVar[str] = "pictures"

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        for name in ("input_nc", "output_nc"):
            if getattr(cfg, name) not in (1, 3):
                raise ValueError(f"{name}={getattr(cfg, name)} is not supported: images are loaded with 1 (gray) "
                                 f"or 3 (RGB) channels")
        self.cfg = cfg
        self.seed = int(seed)
        self.epoch = 0
        self.skipped_non_images = 0
        self.skipped_bad = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch used for plain integer indices."""
        self.epoch = int(epoch)

    def _seed_torch(self, epoch: int, index: int, stream: str) -> None:
        # The CPU generator alone: the transforms draw from it, and torch.manual_seed would also queue a
        # lazy CUDA seeding with a captured stack trace, far costlier, for every image (benchmarks/README.md).
        torch.random.default_generator.manual_seed(item_seed(self.seed, epoch, index, stream))

    def __getitem__(self, index: Any) -> dict[str, Any]:
        epoch, i = (int(v) for v in index) if isinstance(index, (tuple, list)) else (self.epoch, int(index))
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a data set of {len(self)} items")
        # fork_rng keeps the caller's RNG untouched; devices=[] avoids touching CUDA in workers.
        with torch.random.fork_rng(devices=[]):
            return self.get(epoch, i)

    def get(self, epoch: int, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


@DATASETS.register("unaligned")
class UnalignedDataset(BaseDataset):
    """Unpaired folders ``<dataroot>/<phase>A`` and ``<phase>B``; length max(|A|, |B|).

    Item i is A[i % |A|] with a B drawn at random (a pure function of seed, epoch and i), or
    B[i % |B|] when ``serial_batches``. Keys are always the folders' A and B; with ``direction=BtoA``
    only the channel counts swap here, and the model swaps the roles (reference behaviour).
    """

    layout = "unaligned"

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        root = Path(cfg.dataroot)
        self.dir_A = root / f"{cfg.phase}A"
        self.dir_B = root / f"{cfg.phase}B"
        self.A_paths, skip_a, bad_a = _good_images(self.dir_A, cfg)
        self.B_paths, skip_b, bad_b = _good_images(self.dir_B, cfg)
        self.skipped_non_images = skip_a + skip_b
        self.skipped_bad = bad_a + bad_b
        self.A_size, self.B_size = len(self.A_paths), len(self.B_paths)
        self.nc_A, self.nc_B = _domain_channels(cfg)
        self.transform_A = get_transform(cfg, grayscale=self.nc_A == 1)
        self.transform_B = get_transform(cfg, grayscale=self.nc_B == 1)

    def b_index(self, epoch: int, index: int) -> int:
        """The B index paired with item ``index`` in ``epoch``."""
        if self.cfg.serial_batches:
            return index % self.B_size
        return random.Random(item_seed(self.seed, epoch, index, "B_index")).randrange(self.B_size)

    def get(self, epoch: int, index: int) -> dict[str, Any]:
        a_path = self.A_paths[index % self.A_size]
        b_path = self.B_paths[self.b_index(epoch, index)]
        self._seed_torch(epoch, index, "A")
        a = self.transform_A(load_image(a_path, self.nc_A))
        self._seed_torch(epoch, index, "B")
        b = self.transform_B(load_image(b_path, self.nc_B))
        return {"A": a, "B": b, "A_paths": str(a_path), "B_paths": str(b_path)}

    def __len__(self) -> int:
        return max(self.A_size, self.B_size)


@DATASETS.register("aligned")
class AlignedDataset(BaseDataset):
    """Paired images ``<dataroot>/<phase>/*`` holding A (left half) and B (right half) side by side.

    Both halves get the same crop and flip.
    """

    layout = "aligned"

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.dir_AB = Path(cfg.dataroot) / cfg.phase
        self.AB_paths, self.skipped_non_images, self.skipped_bad = _good_images(self.dir_AB, cfg)
        self.nc_A, self.nc_B = _domain_channels(cfg)

    def get(self, epoch: int, index: int) -> dict[str, Any]:
        path = self.AB_paths[index]
        a, b = split_aligned(path)
        params = get_params(self.cfg, a.size, random.Random(item_seed(self.seed, epoch, index, "params")))
        self._seed_torch(epoch, index, "AB")  # nothing random is left, but keep transforms deterministic
        a_t = get_transform(self.cfg, grayscale=self.nc_A == 1, params=params)(a)
        b_t = get_transform(self.cfg, grayscale=self.nc_B == 1, params=params)(b)
        return {"A": a_t, "B": b_t, "A_paths": str(path), "B_paths": str(path)}

    def __len__(self) -> int:
        return len(self.AB_paths)


@DATASETS.register("single")
class SingleDataset(BaseDataset):
    """One folder of images, ``dataroot`` itself (for ``test --model test``); returns A only."""

    layout = "single"

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.A_paths, self.skipped_non_images, self.skipped_bad = _good_images(Path(cfg.dataroot), cfg)
        self.nc_A = _domain_channels(cfg)[0]
        self.transform = get_transform(cfg, grayscale=self.nc_A == 1)

    def get(self, epoch: int, index: int) -> dict[str, Any]:
        path = self.A_paths[index]
        self._seed_torch(epoch, index, "A")
        return {"A": self.transform(load_image(path, self.nc_A)), "A_paths": str(path)}

    def __len__(self) -> int:
        return len(self.A_paths)


def create_dataset(cfg: DataConfig, seed: int = 0) -> BaseDataset:
    """Build the data set named by ``cfg.dataset_mode`` (unknown names list the known ones)."""
    return DATASETS.get(cfg.dataset_mode)(cfg, seed)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` in :func:`epoch_order`, from position ``start`` (for mid-epoch resume).

    The sampler runs in the main process, so ``set_epoch`` reaches persistent workers through the
    indices themselves. In a distributed run each of ``world_size`` ranks takes every
    ``world_size``-th index of the remaining order (torch's DistributedSampler does the same, but
    cannot start mid-epoch); the tail is padded from the start of the order so that every rank
    runs the same number of steps, as DistributedSampler pads. ``start`` counts global samples, so
    a run resumes at the right place on any number of ranks.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, epoch: int = 0, start: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.set_epoch(epoch, start)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.n:
            raise ValueError(f"start={start} outside 0..{self.n}")
        self.epoch, self.start = int(epoch), int(start)

    def _indices(self) -> list[int]:
        order = epoch_order(self.n, self.seed, self.epoch, self.shuffle)
        remaining = order[self.start :]
        if remaining and len(remaining) % self.world_size:
            padding = self.world_size - len(remaining) % self.world_size
            remaining += (order * (padding // self.n + 1))[:padding]
        return remaining[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self._indices():
            yield (self.epoch, i)

    def __len__(self) -> int:
        return len(self._indices())


def create_dataloader(
    dataset: Dataset,
    cfg: DataConfig,
    shuffle: bool | None = None,
    seed: int = 0,
    sampler: Sampler | None = None,
    num_workers: int | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` with the config's batch size and workers.

    ``shuffle`` defaults to ``not cfg.serial_batches`` (the reference). Without ``sampler`` an
    :class:`EpochSampler` is used; call ``loader.sampler.set_epoch(epoch, start)`` before each epoch.
    Workers persist between epochs when there are any; memory is pinned when CUDA is available.
    """
    if shuffle is None:
        shuffle = not cfg.serial_batches
    workers = cfg.num_threads if num_workers is None else num_workers
    if sampler is None:
        sampler = EpochSampler(len(dataset), seed=seed, shuffle=shuffle)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size if batch_size is None else batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=False,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        # Its own generator: creating an iterator must not draw from the global torch RNG, or a run
        # resumed mid-epoch would draw at another point and its dropout masks would differ.
        generator=torch.Generator().manual_seed(seed),
    )
