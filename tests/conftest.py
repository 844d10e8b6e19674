"""Shared test helpers: the reference fixtures' location and small deterministic settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("CYCLEGAN_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def reference_fixture_files(prefix: str = "") -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(FIXTURES.glob(f"{prefix}*.pt"))


requires_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"reference fixtures not found at {FIXTURES}")
