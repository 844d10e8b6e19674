"""benchmarks/cut_vs_cyclegan.py: it times the recipes' own training steps, and the script runs end to end."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from .conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import BenchConfig  # noqa: E402
from cut_vs_cyclegan import build_variant, saved_activation_bytes, state_bytes  # noqa: E402

TINY = BenchConfig("tiny", size=32, ngf=4, ndf=4, netG="resnet_6blocks")


def test_cut_iterations_update_every_network_and_fastcut_saves_less():
    cpu = torch.device("cpu")
    real_A, real_B = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    built = {name: build_variant(name, TINY, cpu, "fp32") for name in ("cut", "fastcut")}
    for name, variant in built.items():
        before = [[p.detach().clone() for p in net.parameters()] for net in variant.networks]
        losses = variant.step(real_A, real_B)
        expected = {"D_fake", "D_real", "G_GAN", "NCE", "G"} | ({"NCE_Y"} if name == "cut" else set())
        assert set(losses) == expected
        assert all(math.isfinite(float(v)) for v in losses.values())
        for net, weights in zip(variant.networks, before, strict=True):  # G, D and F all stepped
            assert any(not torch.equal(a, b) for a, b in zip(weights, net.parameters(), strict=True)), name
    # FastCUT translates A only (no identity batch): fewer activations, the same weights.
    assert saved_activation_bytes(built["fastcut"], real_A, real_B) < saved_activation_bytes(built["cut"], real_A, real_B)
    assert state_bytes(built["fastcut"]) == state_bytes(built["cut"])


@pytest.mark.slow
def test_script_runs_and_reports_the_three_recipes():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cut_vs_cyclegan.py"), "--quick", "--size", "32", "--ngf", "4", "--ndf", "4"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in ("| cyclegan | ", "| cut | ", "| fastcut | ", "time vs CycleGAN"):
        assert name in result.stdout
