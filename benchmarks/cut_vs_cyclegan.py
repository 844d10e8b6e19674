"""Time and memory of one training iteration: our CycleGAN against CUT and FastCUT, in one run.

    python benchmarks/cut_vs_cyclegan.py                       # the quick preset's sizes (64×64, resnet_6blocks)
    python benchmarks/cut_vs_cyclegan.py --config paper --iters 6 --device cuda
    python benchmarks/cut_vs_cyclegan.py --quick --size 32 --ngf 4 --ndf 4   # does it run (seconds)

An iteration is the recipe's own ``training_step`` (models/cycle_gan.py, models/cut.py), as the
trainer calls it: the generator forward, the discriminator's update (forward, backward, Adam) and
the generator's (and for CUT the projector F's). All variants use the same G / D sizes and the same
precision; CUT and FastCUT use the recipe's defaults for CUT_mode CUT / FastCUT (anti-aliased G and D, 256 patches on layers 0,4,8,12,16, identity
NCE for CUT, flip-equivariance for FastCUT); ``--no_antialias`` adds CUT variants without the blur
layers, which isolates what the anti-aliasing costs.

Time: all variants live in this process and are timed in alternating rounds, so a drift of the
machine's speed hits them alike; the median per variant and its ratio to CycleGAN. Memory, two
measures: the bytes of the tensors autograd saves for backward in one iteration (activations:
deterministic, the same on any machine), plus the weights, gradients and Adam moments; and on CUDA
the peak allocated during an iteration, on the CPU the peak resident set of a fresh process that
builds only that variant and runs a few iterations (above its size before the first one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere

from common import (  # noqa: E402
    BenchConfig,
    add_config_arguments,
    bench_from_args,
    machine_description,
    markdown_table,
    median,
    our_step_fn,
    peak_rss_mib,
    random_batch,
    synchronize,
    train_config,
    write_json,
)

from cyclegan.config import TrainConfig  # noqa: E402
from cyclegan.core.precision import Precision  # noqa: E402
from cyclegan.recipes import create_model, default_config  # noqa: E402
from cyclegan.recipes.cut.config import CUTOptions

VARIANTS = ("cyclegan", "cut", "fastcut")
NO_ANTIALIAS_VARIANTS = ("cut_noaa", "fastcut_noaa")

Step = Callable[[torch.Tensor, torch.Tensor], Any]


@dataclass
class Built:
    step: Step
    networks: list[nn.Module]
    optimizers: list[torch.optim.Optimizer]


def variant_config(variant: str, bench: BenchConfig, seed: int) -> TrainConfig:
    """CycleGAN as the bench sets it; CUT / FastCUT with the recipe's own defaults at the same G / D sizes."""
    config = train_config(bench, seed)
    if variant == "cyclegan":
        return config
    no_antialias = variant.endswith("_noaa")
    mode = "FastCUT" if variant.startswith("fastcut") else "CUT"
    config = default_config("cut", data=config.data, runtime=config.runtime,
                            cut=CUTOptions(CUT_mode=mode, no_antialias=no_antialias, no_antialias_up=no_antialias))
    config.model = dataclasses.replace(config.model, netG=bench.netG, netD=bench.netD, ngf=bench.ngf, ndf=bench.ndf)
    return config


def build_variant(variant: str, bench: BenchConfig, device: torch.device, precision_name: str, seed: int = 0) -> Built:
    """The recipe's own training step (``training_step``), set up as the trainer sets it up."""
    torch.manual_seed(seed)
    config = variant_config(variant, bench, seed)
    model = create_model(config, is_train=True).to(device)
    precision = Precision(precision_name, device)
    if model.needs_first_batch:  # CUT's F: MLPs sized from G's features of the first batch
        real_A, real_B = random_batch(bench, device, seed)
        model.data_dependent_init({"A": real_A, "B": real_B}, precision)
    model.build_optimizers()
    return Built(our_step_fn(model, precision, False), list(model.nets.values()), list(model.optimizers.values()))


def state_bytes(built: Built) -> int:
    """Weights + gradients + Adam's two moments (+ the blur buffers), in bytes."""
    parameters = sum(p.numel() * p.element_size() for net in built.networks for p in net.parameters())
    buffers = sum(b.numel() * b.element_size() for net in built.networks for b in net.buffers())
    return 4 * parameters + buffers


def saved_activation_bytes(built: Built, real_A: torch.Tensor, real_B: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward during one iteration."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        built.step(real_A, real_B)
    inputs = {real_A.untyped_storage().data_ptr(), real_B.untyped_storage().data_ptr()}
    return sum(n for ptr, n in storages.items() if ptr not in inputs)


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def memory_worker(args: argparse.Namespace) -> int:
    """One variant alone in a fresh process: peak memory of its iterations above its size before them."""
    device = torch.device(args.device)
    bench = bench_from_args(args)
    built = build_variant(args.memory_worker, bench, device, args.precision)
    real_A, real_B = random_batch(bench, device, seed=1)
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        before_rss = current_rss_mib()
    for _ in range(3):
        built.step(real_A, real_B)
    synchronize(device)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        peak = peak_rss_mib() - before_rss
    print("@@" + json.dumps({"variant": args.memory_worker, "peak_mib": peak}))
    return 0


def measure_in_fresh_process(args: argparse.Namespace, variant: str) -> float:
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", variant, "--device", args.device,
               "--precision", args.precision, "--config", args.config]
    for key in ("size", "ngf", "ndf", "netG", "netD", "batch_size", "threads"):
        value = getattr(args, key)
        if value is not None:
            command += [f"--{key}", str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("@@"))
    return float(json.loads(line[2:])["peak_mib"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    bench = bench_from_args(args)
    variants = list(VARIANTS) + (list(NO_ANTIALIAS_VARIANTS) if args.no_antialias else [])
    rounds, per_round, warmup = (1, 1, 1) if args.quick else (args.rounds, args.iters, 2)
    built = {name: build_variant(name, bench, device, args.precision) for name in variants}
    real_A, real_B = random_batch(bench, device, seed=1)
    activations = {name: saved_activation_bytes(b, real_A, real_B) for name, b in built.items()}
    for b in built.values():
        for _ in range(warmup):
            b.step(real_A, real_B)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for name in order:
            for _ in range(per_round):
                synchronize(device)
                start = time.perf_counter()
                built[name].step(real_A, real_B)
                synchronize(device)
                times[name].append(time.perf_counter() - start)
    peaks = {name: measure_in_fresh_process(args, name) for name in variants} if not args.quick else {}
    results = {}
    for name in variants:
        results[name] = {
            "ms_per_iter": 1000 * median(times[name]),
            "iterations": len(times[name]),
            "saved_activations_mib": activations[name] / 2**20,
            "weights_grads_adam_mib": state_bytes(built[name]) / 2**20,
            "peak_mib": peaks.get(name),
        }
    return {
        "machine": machine_description(device, torch.get_num_threads()),
        "bench": bench.describe(),
        "precision": args.precision,
        "results": results,
    }


def format_report(report: dict[str, Any]) -> str:
    results = report["results"]
    base = results["cyclegan"]
    peak_label = "peak MiB (CUDA allocated)" if "cuda" in report["machine"].lower() else "peak RSS MiB above start"
    rows = []
    for name, r in results.items():
        total = r["saved_activations_mib"] + r["weights_grads_adam_mib"]
        base_total = base["saved_activations_mib"] + base["weights_grads_adam_mib"]
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        peak_ratio = "" if r["peak_mib"] is None or not base["peak_mib"] else f"{r['peak_mib'] / base['peak_mib']:.2f}×"
        rows.append([
            name, f"{r['ms_per_iter']:.1f}", f"{r['ms_per_iter'] / base['ms_per_iter']:.2f}×",
            f"{r['saved_activations_mib']:.1f}", f"{r['weights_grads_adam_mib']:.1f}", f"{total / base_total:.2f}×",
            peak, peak_ratio,
        ])
    header = ["variant", "ms / iter", "time vs CycleGAN", "saved activations MiB", "weights+grads+Adam MiB",
              "memory vs CycleGAN", peak_label, "peak vs CycleGAN"]
    return "\n".join([f"{report['bench']}; {report['precision']}; {report['machine']}", "", markdown_table(header, rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser)
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 | auto (the same for every variant)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per variant per round")
    parser.add_argument("--no_antialias", action="store_true", help="also time CUT / FastCUT without the blur layers")
    parser.add_argument("--memory-worker", dest="memory_worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        return memory_worker(args)
    report = run(args)
    print(format_report(report))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
