"""Small configs and data sets for end-to-end tests (tiny sizes: seconds on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

from cyclegan.config import TrainConfig
from cyclegan.data import write_synthetic_dataset


def tiny_dataset(root: Path, n: int = 6, size: int = 32, n_test: int = 3, seed: int = 0) -> Path:
    if not (root / "trainA").is_dir():
        write_synthetic_dataset(root, n=n, size=size, seed=seed, n_test=n_test)
    return root


def tiny_config(dataroot: Path, checkpoints_dir: Path, name: str = "tiny", **overrides) -> TrainConfig:
    """ngf/ndf 4, resnet_6blocks at 32×32 (basic D needs ≥ 24 px), no workers, deterministic."""
    sections = {
        "data": {"dataroot": str(dataroot), "load_size": 36, "crop_size": 32, "num_threads": 0},
        "model": {"netG": "resnet_6blocks", "ngf": 4, "ndf": 4, "pool_size": 3},
        "optim": {"n_epochs": 1, "n_epochs_decay": 1},
        "runtime": {"name": name, "checkpoints_dir": str(checkpoints_dir), "device": "cpu", "seed": 0,
                    "deterministic": True, "print_freq": 2, "display_freq": 4, "save_latest_freq": 1000,
                    "save_epoch_freq": 1, "progress_bar": False, "precision": "fp32"},
    }
    for key, value in overrides.items():
        section, field = key.split("__")
        sections.setdefault(section, {})[field] = value
    return TrainConfig(**{name: klass(**sections.get(name, {})) for name, klass in TrainConfig.sections().items()})


def whole_and_interrupted_runs(data: Path, checkpoints_dir: Path, total: int, stop_at: int, **overrides):
    """The same tiny run twice: once for ``total`` iterations in one go, once stopped after ``stop_at``.
    Returns the whole run's TrainResult and a Trainer that resumes the stopped run up to ``total``
    (not yet fitted), for resume-equality tests."""
    from cyclegan.training.trainer import Trainer, train

    whole = train(tiny_config(data, checkpoints_dir, name="whole", optim__max_iters=total, **overrides))
    train(tiny_config(data, checkpoints_dir, name="split", optim__max_iters=stop_at, **overrides))
    resumed = Trainer(tiny_config(data, checkpoints_dir, name="split", optim__max_iters=total, **overrides),
                      resume="required")
    return whole, resumed
