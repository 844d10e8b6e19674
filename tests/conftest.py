"""Shared test settings: the reference fixtures (copied into tests/fixtures), deterministic torch,
and one small trained run that the CLI, export and browser tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # small copies of ../shared/fixtures: see fixtures/slim.py


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def reference_fixture_files(prefix: str = "") -> list[Path]:
    return sorted(FIXTURES.glob(f"{prefix}*.pt"))
