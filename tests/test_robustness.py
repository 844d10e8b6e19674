"""Runs that cannot lose work: checkpoint integrity, signals, kill -9 + resume, non-finite steps."""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclegan.core import checkpoint as ckpt
from cyclegan.core import fileio
from cyclegan.core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_latest_good,
    load_reference_weights,
)
from cyclegan.training.trainer import Trainer, TrainingDiverged, train

from .conftest import code_pickle
from .helpers import tiny_config, tiny_dataset

# --- checkpoint files -------------------------------------------------------------------------


def test_checkpoint_round_trip_keeps_every_kind_of_state(tmp_path):
    state = {"nets": {"G": {"w": torch.randn(3, 2)}}, "bf16": torch.ones(2, dtype=torch.bfloat16),
             "optim": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
             "tuple": (1, 2.5, "x", None, True), "inf": float("inf")}
    ckpt.save_checkpoint(tmp_path / "a.safetensors", state)
    loaded = load_checkpoint(tmp_path / "a.safetensors")
    assert torch.equal(loaded["nets"]["G"]["w"], state["nets"]["G"]["w"]) and loaded["bf16"].dtype == torch.bfloat16
    assert 0 in loaded["optim"]["state"] and loaded["tuple"] == (1, 2.5, "x", None, True)
    assert loaded["inf"] == float("inf")


def test_truncated_and_corrupted_checkpoints_are_detected(tmp_path):
    path = tmp_path / "c.safetensors"
    ckpt.save_checkpoint(path, {"w": torch.arange(1000, dtype=torch.float32)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="c.safetensors: unreadable or truncated"):
        load_checkpoint(path)
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF  # one byte of tensor data
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_a_corrupted_latest_falls_back_to_the_next_good_one_with_a_warning(tmp_path, caplog):
    ckpt.save_checkpoint(tmp_path / "3.safetensors", {"which": "epoch 3"})
    time.sleep(0.01)
    ckpt.save_checkpoint(tmp_path / "latest.safetensors", {"which": "latest"})
    (tmp_path / "latest.safetensors").write_bytes(b"\x00" * 20)
    with caplog.at_level(logging.WARNING):
        path, state = load_latest_good(tmp_path)
    assert path.name == "3.safetensors" and state["which"] == "epoch 3"
    assert "latest.safetensors" in caplog.text and "resuming from" in caplog.text and "3.safetensors" in caplog.text


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    ckpt.save_checkpoint(path, {"v": torch.zeros(4)})

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(path, {"v": torch.ones(4)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["v"], torch.zeros(4))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.safetensors"]  # no temporary file left


@pytest.mark.slow
def test_trainer_reports_a_full_disk_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    data = tiny_dataset(tmp_path / "data", n=4)
    config = tiny_config(data, tmp_path / "ck", optim__max_iters=1)
    first = train(config)
    before = load_checkpoint(first.checkpoint)["progress"]
    trainer = Trainer(tiny_config(data, tmp_path / "ck", optim__max_iters=2))
    real_replace = os.replace

    def replace_fails_for_checkpoints(src, dst):
        if str(dst).endswith(".safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace_fails_for_checkpoints)
    with pytest.raises(CheckpointError, match="latest.safetensors \\(No space left on device\\); the files already in .* are intact"):
        trainer.fit()
    monkeypatch.undo()
    assert load_checkpoint(first.checkpoint)["progress"] == before


def test_a_pickle_carrying_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    for legacy in (True, False):
        path = tmp_path / "latest_net_G.pth"
        path.write_bytes(code_pickle(marker, legacy=legacy))
        with pytest.raises(CheckpointError, match="refused to load"):
            load_reference_weights(path)
    assert not marker.exists()


@pytest.mark.slow
def test_keep_last_prunes_old_epoch_checkpoints(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=2)
    result = train(tiny_config(data, tmp_path / "ck", optim__n_epochs=3, optim__n_epochs_decay=2,
                               runtime__keep_last=2))
    names = sorted(p.name for p in result.run_dir.glob("*.safetensors"))
    assert names == ["4.safetensors", "5.safetensors", "best.safetensors", "latest.safetensors"]


# --- non-finite losses ------------------------------------------------------------------------


def poison(trainer: Trainer, bad_steps: set[int]) -> None:
    """Make G_A's output NaN on the given (1-based) steps."""
    net = trainer.model.nets["G_A"]
    original = net.forward

    def forward(x):
        out = original(x)
        return out * float("nan") if trainer.progress.total_iters + 1 in bad_steps else out

    net.forward = forward


@pytest.mark.slow
def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=4)
    trainer = Trainer(tiny_config(data, tmp_path / "ck", optim__max_iters=6))
    poison(trainer, {2, 3})
    result = trainer.fit()
    assert result.progress.nonfinite_skipped == 2 and result.progress.total_iters == 6
    weights = load_checkpoint(result.checkpoint)["nets"]
    assert all(torch.isfinite(t).all() for net in weights.values() for t in net.values())
    assert all(torch.isfinite(img).all() for img in trainer.model.fake_B_pool.images)  # no NaN reached the pool
    assert "non-finite loss" in (result.run_dir / "train.log").read_text()


@pytest.mark.slow
def test_too_many_non_finite_steps_in_a_row_stop_with_a_checkpoint(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=4)
    trainer = Trainer(tiny_config(data, tmp_path / "ck", optim__max_iters=50, runtime__max_nonfinite_steps=3))
    poison(trainer, set(range(3, 100)))
    with pytest.raises(TrainingDiverged, match="3 non-finite steps in a row"):
        trainer.fit()
    state = load_checkpoint(trainer.run_dir / "latest.safetensors")
    assert all(torch.isfinite(t).all() for net in state["nets"].values() for t in net.values())
    assert state["progress"]["total_iters"] == 4  # two good steps, two skipped; the third stopped it


# --- signals and kill -9 (real processes) -------------------------------------------------------

TINY_FLAGS = ["--load_size", "36", "--crop_size", "32", "--ngf", "4", "--ndf", "4", "--netG", "resnet_6blocks",
              "--pool_size", "3", "--num_threads", "0", "--seed", "0", "--deterministic", "--no_progress_bar",
              "--print_freq", "1", "--n_epochs", "50", "--n_epochs_decay", "50", "--save_epoch_freq", "1000",
              "--device", "cpu", "--no_tensorboard"]


def start_training(data: Path, checkpoints: Path, name: str, *extra: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "cyclegan", "train", "--dataroot", str(data), "--name", name,
               "--checkpoints_dir", str(checkpoints), *TINY_FLAGS, *extra]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.STDOUT)
    return subprocess.Popen(command, env=env, text=True, **popen)


def logged_steps(run_dir: Path) -> int:
    log = run_dir / "loss_log.txt"
    return sum(line.startswith("(epoch") for line in log.read_text().splitlines()) if log.exists() else 0


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_finish_the_step_save_and_exit_zero(tmp_path, sig):
    data = tiny_dataset(tmp_path / "data", n=4)
    process = start_training(data, tmp_path / "ck", "run", "--max_iters", "100000")
    run_dir = tmp_path / "ck" / "run"
    wait_for(lambda: logged_steps(run_dir) >= 3)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"stopped by {sig.name}" in output and "--continue_train" in output
    saved = load_checkpoint(run_dir / "latest.safetensors")["progress"]["total_iters"]
    assert saved >= 3 and saved == logged_steps(run_dir)  # every logged step is in the checkpoint


@pytest.mark.slow
def test_sighup_keeps_training_without_the_terminal(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=4)
    process = start_training(data, tmp_path / "ck", "run", "--max_iters", "100000")
    run_dir = tmp_path / "ck" / "run"
    wait_for(lambda: logged_steps(run_dir) >= 2)
    process.send_signal(signal.SIGHUP)
    process.stdout.close()  # the terminal is gone: writing to it would now fail
    at_hangup = logged_steps(run_dir)
    wait_for(lambda: logged_steps(run_dir) >= at_hangup + 5)  # still training, still logging to the file
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    log = (run_dir / "train.log").read_text()
    assert "SIGHUP" in log and "stopped by SIGTERM" in log


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_kill_9_at_a_random_point_then_resume_gives_the_uninterrupted_weights(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=5)
    total = "24"
    whole = start_training(data, tmp_path / "ck", "whole", "--max_iters", total, "--dropout")  # dropout: RNG in the step
    assert whole.wait(timeout=120) == 0, whole.stdout.read()

    # Save every step so that the kill can land anywhere, a checkpoint write included.
    victim = start_training(data, tmp_path / "ck", "killed", "--max_iters", total, "--save_latest_freq", "1", "--dropout")
    run_dir = tmp_path / "ck" / "killed"
    wait_for(lambda: (run_dir / "latest.safetensors").exists())
    time.sleep(random.uniform(0.0, 0.8))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    killed_at = load_checkpoint(run_dir / "latest.safetensors")["progress"]["total_iters"]
    assert killed_at < int(total), "the run finished before the kill: nothing was tested"

    resumed = start_training(data, tmp_path / "ck", "killed", "--max_iters", total, "--continue_train", "--dropout")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert "resuming latest.safetensors" in output
    a = load_checkpoint(tmp_path / "ck" / "whole" / "latest.safetensors")
    b = load_checkpoint(run_dir / "latest.safetensors")
    assert a["progress"]["total_iters"] == b["progress"]["total_iters"] == int(total)
    for net in a["nets"]:
        for key in a["nets"][net]:
            assert torch.equal(a["nets"][net][key], b["nets"][net][key]), (net, key, killed_at)
    assert a["progress"]["history"] == b["progress"]["history"]
