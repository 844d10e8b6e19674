"""The CUDA paths: mixed precision (bf16, fp16 with its GradScaler), channels-last, compile,
checkpoint and resume, translation. Skipped where no GPU is visible (CPU-only CI);
``bash benchmarks/gpu_check.sh`` runs them with the CUDA benchmarks in one go.

Tolerances, not bitwise equality: cuDNN picks its algorithms per shape and run.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.training.trainer import Trainer, train

from .conftest import REPO_ROOT
from .helpers import tiny_config, tiny_dataset

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from common import BenchConfig, build_our_step, our_step_fn, random_batch, train_config  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


@pytest.mark.parametrize(
    "precision, channels_last", [("bf16", False), ("bf16", True), ("fp16", False), ("fp32", True)]
)
def test_training_on_cuda_checkpoints_and_resumes(tmp_path, precision, channels_last):
    data = tiny_dataset(tmp_path / "data", n=4)
    options = {"runtime__device": "cuda", "runtime__precision": precision,
               "runtime__channels_last": channels_last, "runtime__deterministic": False}
    first = train(tiny_config(data, tmp_path / "ck", optim__max_iters=3, **options))
    assert first.progress.total_iters == 3
    assert all(math.isfinite(v) for v in first.last_losses.values()), first.last_losses
    state = load_checkpoint(first.run_dir / "latest.safetensors")
    assert all(torch.isfinite(t).all() for net in state["nets"].values() for t in net.values())
    if precision == "fp16":
        assert state["scaler"]["scale"] > 0  # the GradScaler's state travels with the run
    resumed = Trainer(tiny_config(data, tmp_path / "ck", optim__max_iters=5, **options), resume="required")
    assert resumed.progress.total_iters == 3
    assert resumed.fit().progress.total_iters == 5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_stays_close_to_fp32(precision):
    """One step from the same weights: the losses agree to mixed-precision accuracy."""
    bench = BenchConfig("tiny", size=64, ngf=16, ndf=16, netG="resnet_6blocks")
    losses = {}
    for name in ("fp32", precision):
        torch.manual_seed(0)
        model, amp = build_our_step(train_config(bench, seed=0), CUDA, name, channels_last=False, compile=False)
        losses[name] = our_step_fn(model, amp, channels_last=False)(*random_batch(bench, CUDA))
    for key, value in losses["fp32"].items():
        assert float(losses[precision][key]) == pytest.approx(float(value), rel=0.05, abs=0.02), key


def test_compiled_step_matches_eager():
    bench = BenchConfig("tiny", size=64, ngf=16, ndf=16, netG="resnet_6blocks")
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model, amp = build_our_step(train_config(bench, seed=0), CUDA, "fp32", channels_last=True, compile=compiled)
        step = our_step_fn(model, amp, channels_last=True)
        batch = random_batch(bench, CUDA)
        losses[compiled] = [step(*batch) for _ in range(2)]
    for eager, compiled in zip(losses[False], losses[True], strict=True):
        for key in eager:
            torch.testing.assert_close(compiled[key], eager[key], rtol=1e-3, atol=1e-4)


def test_translate_a_run_trained_on_cuda(tmp_path):
    from cyclegan.inference.test_run import run_test

    data = tiny_dataset(tmp_path / "data", n=4)
    run = train(tiny_config(data, tmp_path / "ck", optim__max_iters=2, runtime__device="cuda",
                            runtime__deterministic=False)).run_dir
    for precision in ("fp32", "bf16"):
        summary = run_test(dataroot=data, name=run.name, checkpoints_dir=tmp_path / "ck",
                           results_dir=tmp_path / f"results_{precision}", device="cuda", precision=precision)
        test_images = len(list((data / "testA").iterdir())) + len(list((data / "testB").iterdir()))
        assert summary.count == test_images and any(summary.images_dir.glob("*fake_B*.png")), summary
        assert summary.scores is not None and math.isfinite(summary.scores["psnr"]), summary.scores
