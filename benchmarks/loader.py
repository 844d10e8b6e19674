"""Images/s of the data loader alone (decode + preprocess + collate), to check it keeps up with training.

    .venv/bin/python benchmarks/loader.py [--dataroot DIR] [--size 256 --load_size 286 --crop_size 256]

Without --dataroot it writes the synthetic set (at --size) to a temporary folder first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cyclegan.config import DataConfig
from cyclegan.data import EpochSampler, create_dataloader, create_dataset, write_synthetic_dataset


def images_per_second(dataroot: Path, workers: int, load_size: int, crop_size: int, batches: int) -> float:
    cfg = DataConfig(dataroot=str(dataroot), load_size=load_size, crop_size=crop_size, num_threads=workers)
    dataset = create_dataset(cfg, seed=0)
    sampler = EpochSampler(len(dataset), seed=0)
    loader = create_dataloader(dataset, cfg, sampler=sampler)
    count, start = 0, None
    for epoch in range(10_000):
        sampler.set_epoch(epoch)
        for batch in loader:
            if start is None:  # the first batch pays for starting the workers
                start = time.perf_counter()
                continue
            count += batch["A"].shape[0] * 2  # an A and a B image per item
            if count >= batches * 2:
                return count / (time.perf_counter() - start)
    raise RuntimeError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataroot", type=Path, default=None)
    parser.add_argument("--size", type=int, default=256, help="synthetic image size when no --dataroot")
    parser.add_argument("--load_size", type=int, default=286)
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--workers", default="0,1,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataroot or write_synthetic_dataset(Path(tmp) / "data", n=64, size=args.size, n_test=1)
        print(f"| workers | images / s ({args.load_size} → {args.crop_size} crop) |\n| --- | --- |")
        for workers in (int(w) for w in args.workers.split(",")):
            rate = images_per_second(root, workers, args.load_size, args.crop_size, args.batches)
            print(f"| {workers} | {rate:.0f} |")


if __name__ == "__main__":
    main()
