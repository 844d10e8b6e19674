"""Distributed training with torchrun: sharding, equal replicas, SIGTERM on one rank, other world sizes.

The multi-process tests use torch's own launcher (``python -m torch.distributed.run``) with gloo on
the loopback interface only (127.0.0.1, GLOO_SOCKET_IFNAME=lo), one thread per process, and bounded
time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclegan.cli import main
from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.data import EpochSampler, epoch_order
from cyclegan.data.datasets import DATASETS
from cyclegan.data.paired import write_synthetic_for_layout
from cyclegan.recipes import MODELS, default_config
from cyclegan.training.distributed import DistributedContext

from .helpers import tiny_dataset

# --- in-process units ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,start,world", [(10, 0, 2), (9, 0, 2), (10, 3, 2), (7, 2, 3)])
def test_shards_cover_the_global_order_step_by_step(n, start, world):
    order = epoch_order(n, seed=5, epoch=1, shuffle=True)[start:]
    shards = [list(EpochSampler(n, seed=5, epoch=1, start=start, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank runs the same number of steps
    steps = len(shards[0])
    # Step i of the distributed run sees the same samples as step i of one process with the
    # global batch (world × 1 here), in the same global order.
    flattened = [shards[r][i][1] for i in range(steps) for r in range(world)]
    assert flattened[: len(order)] == order
    padded = flattened[len(order):]
    assert len(padded) < world and all(i in order or i < n for i in padded)


def test_a_single_process_context_is_a_no_op():
    context = DistributedContext()
    assert not context.enabled and context.is_main
    assert context.all_true(True) and not context.all_true(False) and context.any_true(True)
    assert context.mean({"a": 1.5}) == {"a": 1.5} and context.gather(3) == [3]
    module = torch.nn.Linear(2, 2)
    assert context.wrapper(torch.device("cpu"))(module) is module


# --- real processes -----------------------------------------------------------------------------

FLAGS = ["--load_size", "36", "--crop_size", "32", "--ngf", "4", "--ndf", "4", "--netG", "resnet_6blocks",
         "--num_threads", "0", "--seed", "0", "--no_progress_bar", "--no_tensorboard", "--device", "cpu",
         "--print_freq", "1", "--save_epoch_freq", "1000", "--n_epochs", "50", "--n_epochs_decay", "50",
         "--lambda_identity", "0", "--precision", "fp32"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONUNBUFFERED="1")


def torchrun(nproc: int, *args: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "cyclegan", "train", *args]
    return subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **popen)


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cyclegan", "train", *args], env=environment(),
                          capture_output=True, text=True, timeout=180)


def finish(process: subprocess.Popen, timeout: float = 180) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, output
    return output


def nets(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(run_dir / "latest.safetensors")["nets"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=6)
    # No pool (the pools are per rank) and no norm: a conv bias before instance norm has a gradient
    # that is zero in exact arithmetic, so Adam turns float noise into full-size random steps there
    # (1e-3 apart after 4 steps was seen); every other weight agrees to ~1e-8.
    common = ["--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"), "--pool_size", "0",
              "--max_iters", "4", "--norm", "none", *FLAGS]
    output = finish(torchrun(2, *common, "--name", "ddp", "--batch_size", "1"))
    assert "weights identical on all 2 ranks" in output
    one = single(*common, "--name", "one", "--batch_size", "2")
    assert one.returncode == 0, one.stderr
    a, b = nets(tmp_path / "ck" / "ddp"), nets(tmp_path / "ck" / "one")
    worst = max((a[n][k] - b[n][k]).abs().max().item() for n in a for k in a[n])
    assert worst < 1e-6, worst
    progress = load_checkpoint(tmp_path / "ck" / "ddp" / "latest.safetensors")["progress"]
    assert progress["total_iters"] == 4 and progress["images_seen"] == 8  # counted over both ranks
    assert len(load_checkpoint(tmp_path / "ck" / "ddp" / "latest.safetensors")["ranks"]) == 2
    # Only rank 0 wrote: one loss-log header, one line per step.
    log = (tmp_path / "ck" / "ddp" / "loss_log.txt").read_text().splitlines()
    assert sum(line.startswith("(epoch") for line in log) == 4


def worker_pids(launcher_pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == launcher_pid:
                children.append(int(entry.name))
    return children


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_sigterm_to_one_rank_ends_the_whole_job_with_a_checkpoint(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=6)
    run_dir = tmp_path / "ck" / "ddp"
    process = torchrun(2, "--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"), "--name", "ddp",
                       "--max_iters", "100000", *FLAGS)
    deadline = time.monotonic() + 120
    while not ((run_dir / "loss_log.txt").exists() and "(epoch" in (run_dir / "loss_log.txt").read_text()):
        assert time.monotonic() < deadline and process.poll() is None, "training did not start"
        time.sleep(0.1)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    os.kill(max(workers), signal.SIGTERM)  # one rank only (torchrun starts rank 0 first)
    output = finish(process, timeout=120)
    assert "stopped by" in output and "--continue_train" in output
    state = load_checkpoint(run_dir / "latest.safetensors")
    assert state["progress"]["total_iters"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_resume_on_another_world_size_and_test_on_one_cpu(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=6)
    common = ["--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"), "--name", "grow", *FLAGS]
    finish(torchrun(2, *common, "--max_iters", "3"))
    one = single(*common, "--max_iters", "5")
    assert one.returncode == 0, one.stderr
    assert "resuming a 2-process run on 1 process(es)" in one.stderr
    output = finish(torchrun(2, *common, "--max_iters", "7"))
    assert "weights identical on all 2 ranks" in output
    state = load_checkpoint(tmp_path / "ck" / "grow" / "latest.safetensors")
    assert state["progress"]["total_iters"] == 7 and len(state["ranks"]) == 2
    assert main(["test", "--dataroot", str(data), "--name", "grow", "--checkpoints_dir", str(tmp_path / "ck"),
                 "--results_dir", str(tmp_path / "res"), "--device", "cpu", "--num_test", "1"]) == 0
    assert list((tmp_path / "res" / "grow" / "test_latest" / "images").glob("*_fake_B.png"))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", MODELS.names())
def test_every_recipe_trains_under_torchrun(model, tmp_path):
    """torchrun asks the recipe too: its data layout, its networks (all in the checkpoint, equal on both
    ranks: the trainer checks and says so) and its config section."""
    layout = DATASETS.get(default_config(model).data.dataset_mode).layout
    data = write_synthetic_for_layout(layout, tmp_path / "data", n=4, size=32, n_test=2, n_val=2)
    output = finish(torchrun(2, "--dataroot", str(data), "--checkpoints_dir", str(tmp_path / "ck"), "--name", model,
                             "--model", model, "--pool_size", "0", "--max_iters", "2", "--batch_size", "1", *FLAGS))
    assert "weights identical on all 2 ranks" in output
    state = load_checkpoint(tmp_path / "ck" / model / "latest.safetensors")
    assert {d.net for d in MODELS.get(model).directions} <= set(state["nets"])
    assert state["config"]["model"]["model"] == model and len(state["ranks"]) == 2
