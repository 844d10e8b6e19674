"""Where a training run's time outside its steps goes: validation, page plots, checkpoints, logging.

    .venv/bin/python benchmarks/outside_steps.py [--iters 300] [--n 100] [--layouts val noval] [--out JSON]

Trains CycleGAN at the vs_reference.py flags (resnet_6blocks, ngf / ndf 32, ``--load_size 72
--crop_size 64``, batch 1, lambda_identity 0, everything else our defaults) on ``cyclegan data synthetic``
data, once per data layout: ``val`` with the valA / valB folders and their ground truth (a validation
each epoch, which the reference does not do) and ``noval`` without them (the reference's data sets,
horse2zebra and the rest, have none). Clocks wrap the trainer's phases (the step, validation,
checkpoints, pages and plots, per-step logging) while it runs; outside the steps = ``fit()``'s wall time
minus the steps'. Shares, not seconds, are the figures: both sides of the ratio slow down together on a
busy machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from common import machine_description, markdown_table, write_json

from cyclegan.config import DataConfig, RuntimeConfig
from cyclegan.data import write_synthetic_dataset
from cyclegan.recipes import MODELS, default_config
from cyclegan.training import logs, trainer

# (owner, method, phase): what the trainer does between steps, by the method that does it.
PHASES = (
    (trainer.Trainer, "_validate", "validation (generator passes, scores)"),
    (trainer.Trainer, "save", "checkpoints"),
    (logs.RunLogger, "display", "page images"),
    (logs.RunLogger, "update_plot", "loss plot"),
    (logs.RunLogger, "validation", "validation records and plot"),
    (logs.RunLogger, "step", "per-step logging"),
    (logs.RunLogger, "print_losses", "loss lines"),
)
VAL_FOLDERS = ("valA", "valB", "valA_gt", "valB_gt")


@contextlib.contextmanager
def clocked(targets: tuple[tuple[type, str, str], ...]) -> Iterator[tuple[dict[str, float], dict[str, int]]]:
    """Wrap each (class, method) with a clock for the block's duration; yields (seconds, calls) by phase.

    Exclusive times: a clocked call inside another (the validation plot inside the validation) counts
    for its own phase only, so the phases add up to at most the wall time.
    """
    seconds: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.Counter()
    inner: list[float] = []  # per open call: the time its clocked callees took
    originals = []

    def wrap(original, phase):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            inner.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                seconds[phase] += elapsed - inner.pop()
                calls[phase] += 1
                if inner:
                    inner[-1] += elapsed
        return timed

    for owner, name, phase in targets:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, wrap(original, phase))
    try:
        yield seconds, calls
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def run_config(dataroot: Path, checkpoints: Path, iters: int, ngf: int, seed: int):
    config = default_config("cycle_gan", data=DataConfig(dataroot=str(dataroot), load_size=72, crop_size=64),
                            runtime=RuntimeConfig(name="outside_steps", checkpoints_dir=str(checkpoints), seed=seed))
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, netG="resnet_6blocks", ngf=ngf, ndf=ngf),
        cycle_gan=dataclasses.replace(config.cycle_gan, lambda_identity=0.0),
        optim=dataclasses.replace(config.optim, max_iters=iters))


def measure(dataroot: Path, checkpoints: Path, iters: int, ngf: int, seed: int = 0) -> dict[str, Any]:
    """Train once with the clocks on; the phases' seconds, calls and shares of ``fit()``."""
    recipe = MODELS.get("cycle_gan")
    step = (recipe, "training_step", "steps")
    with clocked((step, *PHASES)) as (seconds, calls):
        run = trainer.Trainer(run_config(dataroot, checkpoints, iters, ngf, seed))
        start = time.perf_counter()
        run.fit()
        fit_s = time.perf_counter() - start
    # What no clock covers: the data loader, the schedulers, the epoch ends' bookkeeping.
    other = fit_s - sum(seconds.values())
    phases = {phase: {"s": s, "calls": calls[phase], "share": s / fit_s} for phase, s in seconds.items()}
    phases["other (data, schedulers, epoch ends)"] = {"s": other, "calls": 0, "share": other / fit_s}
    outside = fit_s - seconds["steps"]
    return {"fit_s": fit_s, "outside_s": outside, "outside_share": outside / fit_s, "iters": iters, "phases": phases}


def layout(source: Path, folder: Path, with_validation: bool) -> Path:
    """The generated set, with or without its validation folders."""
    if not folder.exists():
        shutil.copytree(source, folder)
        if not with_validation:
            for name in VAL_FOLDERS:
                shutil.rmtree(folder / name, ignore_errors=True)
    return folder


def report(name: str, result: dict[str, Any]) -> str:
    rows = [[phase, f"{p['s']:.2f}", f"{100 * p['share']:.1f} %", p["calls"] or ""]
            for phase, p in sorted(result["phases"].items(), key=lambda item: -item[1]["s"])]
    return (f"### {name}: outside the steps {result['outside_s']:.2f} s of {result['fit_s']:.2f} s, "
            f"{100 * result['outside_share']:.1f} %\n\n" + markdown_table(["phase", "s", "of fit()", "calls"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300, help="training iterations (batch 1)")
    parser.add_argument("--n", type=int, default=100, help="training images per domain (an epoch)")
    parser.add_argument("--n_test", type=int, default=20, help="validation (and test) images per domain")
    parser.add_argument("--ngf", type=int, default=32, help="ngf and ndf")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--layouts", nargs="+", choices=("val", "noval"), default=["val", "noval"])
    parser.add_argument("--workdir", type=Path, default=None, help="data and runs (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"- machine: {machine_description(torch.device('cpu'), args.threads)}")
    print(f"- CycleGAN, resnet_6blocks, ngf / ndf {args.ngf}, 72 -> 64 px crops, batch 1, {args.iters} iterations, "
          f"{args.n} training images per domain, {args.n_test} validation images per domain\n")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        data = work / "data"
        if not (data / "trainA").is_dir():
            write_synthetic_dataset(data, n=args.n, size=72, n_test=args.n_test, seed=0)
        for name in args.layouts:
            root = layout(data, work / f"data_{name}", name == "val")
            shutil.rmtree(work / f"runs_{name}", ignore_errors=True)  # a fresh run, never a resume
            results[name] = measure(root, work / f"runs_{name}", args.iters, args.ngf)
            print(report(name, results[name]) + "\n", flush=True)
    write_json(args.out, {"machine": machine_description(torch.device("cpu"), args.threads), "layouts": results})


if __name__ == "__main__":
    main()
