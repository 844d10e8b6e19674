"""Shared test settings: the reference fixtures (copied into tests/fixtures), deterministic torch,
and one small trained run that the CLI, export and browser tests share."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cyclegan.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # small copies of ../shared/fixtures: see fixtures/slim.py


_OWN_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n N``) the workers share the cores: each takes its share of threads, and
    so do the subprocesses it starts, instead of N processes each spinning on every core. The per-machine
    caches (--tune's choices, inference paths, exports) go to a folder of the session's, not the user's."""
    if "CYCLEGAN_CACHE" not in os.environ:
        os.environ["CYCLEGAN_CACHE"] = tempfile.mkdtemp(prefix="cyclegan-test-cache-")
        config.stash[_OWN_CACHE] = os.environ["CYCLEGAN_CACHE"]  # removed at the end (pytest_unconfigure)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)



def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the cache folder this process made (each xdist worker and the controller make their own)."""
    folder = config.stash.get(_OWN_CACHE, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("CYCLEGAN_CACHE", None)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def reference_fixture_files(prefix: str = "") -> list[Path]:
    return sorted(FIXTURES.glob(f"{prefix}*.pt"))


@dataclass(frozen=True)
class TrainedRun:
    data: Path  # the tiny synthetic data set (3 train, 3 test images per side)
    checkpoints: Path  # holds the run "run"
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        return self.checkpoints / "run"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One tiny run (3 iterations: one epoch, validated), trained once per session and shared by the
    CLI, export and browser tests; they read it and write their outputs elsewhere."""
    from cyclegan.training.trainer import train

    from .helpers import tiny_config, tiny_dataset

    root = tmp_path_factory.mktemp("trained_run")
    data = tiny_dataset(root / "data", n=3, n_test=3)
    config = tiny_config(data, root / "ck", name="run", optim__max_iters=3)
    train(config)
    return TrainedRun(data, root / "ck", config)


class _TouchOnUnpickle:
    """Unpickling this object creates ``marker``: the payload of a pickle that carries code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def code_pickle(marker: Path, key: str = "model.1.weight", legacy: bool = False) -> bytes:
    """A ``torch.save`` file (``legacy``: a bare pickle, as old ``.pth`` files are) whose loading would
    run code (create ``marker``) if it were unpickled."""
    if legacy:
        return pickle.dumps({key: _TouchOnUnpickle(marker)}, protocol=2)  # torch.save's protocol
    buffer = io.BytesIO()
    torch.save({key: _TouchOnUnpickle(marker)}, buffer)
    return buffer.getvalue()
