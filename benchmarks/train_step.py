"""Time one CycleGAN training iteration: our step against the reference-style eager fp32 step.

    python benchmarks/train_step.py                     # cpu config, ours = bf16 (the training defaults)
    python benchmarks/train_step.py --config paper --iters 6
    python benchmarks/train_step.py --device cuda --config paper
    python benchmarks/train_step.py --quick --size 32 --ngf 4 --ndf 4   # does it run (seconds)
    python benchmarks/train_step.py --precision fp32 --threads 2 --concurrent_cycles   # + both cycles at once

Each variant runs in its own fresh worker process (so its peak memory is its own: peak RSS via
``getrusage`` on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA). The workers build their
networks from the same seed and warm up; then this process has them time their iterations in
alternating rounds (baseline, ours, ours, baseline, ...), one worker at a time, so that a drift of
the machine's speed (another job, the clock) hits both alike. Per variant: the median over all its
timed iterations, images/s, the speed ratio against the baseline, peak memory, and the model
FLOP/s (formula in ``benchmarks/common.py``) against the machine's convolution peak at that precision,
measured here after the workers have finished. Markdown table on stdout; ``--json PATH`` too.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cyclegan.core.precision import resolve_precision
from cyclegan.training.trainer import compiled_channels_last_is_safe

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere

from common import (  # noqa: E402
    add_config_arguments,
    bench_from_args,
    build_our_step,
    flops_per_iteration,
    machine_description,
    markdown_table,
    measure_peaks,
    median,
    network_macs,
    our_step_fn,
    peak_memory_mib,
    random_batch,
    synchronize,
    train_config,
    write_json,
)

PROTOCOL = "@@"  # worker replies start with this; anything else on its stdout is ignored


# --- the worker: one variant, in its own process ---------------------------------------------------


def worker(spec: dict[str, Any]) -> int:
    """Build one variant, then answer ``warmup N`` / ``run N`` / ``finish`` lines from stdin."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    from common import BenchConfig, ConcurrentCyclesStep, ReferenceStep

    bench = BenchConfig(**spec["bench"])
    config = train_config(bench, seed=0)
    start_memory = peak_memory_mib(device)
    torch.manual_seed(0)
    if spec["variant"] == "baseline":
        reference = ReferenceStep(config).to(device)
        step = reference.optimize_parameters
    else:
        model, precision = build_our_step(
            config, device, spec["precision"], spec["channels_last"], spec["compile"], spec["compile_backend"]
        )
        step = our_step_fn(model, precision, spec["channels_last"])
        if spec["variant"] == "concurrent":
            step = ConcurrentCyclesStep(model, precision, threads_per_cycle=max(1, spec["threads"] // 2))
    real_A, real_B = random_batch(bench, device)
    losses: dict[str, torch.Tensor] = {}

    def reply(payload: dict[str, Any]) -> None:
        print(PROTOCOL + json.dumps(payload), flush=True)

    reply({"ready": True})
    for line in sys.stdin:
        command, _, count = line.strip().partition(" ")
        if command in ("warmup", "run"):
            times = []
            for _ in range(int(count)):
                synchronize(device)
                begin = time.perf_counter()
                losses = step(real_A, real_B)
                synchronize(device)
                times.append(time.perf_counter() - begin)
            reply({"times": times})
        elif command == "finish":
            finite = all(math.isfinite(float(v)) for v in losses.values())
            reply(
                {
                    "peak_memory_mib": peak_memory_mib(device),
                    "start_memory_mib": start_memory,
                    "losses": {k: float(v) for k, v in losses.items()},
                    "finite": finite,
                }
            )
            return 0
    return 1


class Worker:
    """This side of a worker process."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.variant = spec["variant"]
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, command: str) -> dict[str, Any]:
        if command:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL) :])
        raise RuntimeError(
            f"the {self.variant} worker exited (code {self.process.wait()}); see its messages above"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# --- the driver ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="ours: auto = bf16 (fp16 on GPUs without bf16)",
    )
    parser.add_argument(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="ours: networks and batches in channels_last (off by default, as in training: slower on "
        "the AVX-512 CPU measured)",
    )
    parser.add_argument("--compile", action="store_true", help="ours: torch.compile the step's modules")
    parser.add_argument(
        "--concurrent_cycles", action="store_true",
        help="add a variant: ours with A→B→A and B→A→B run at once in two threads, each with half the "
        "threads (common.ConcurrentCyclesStep), against ours with batched generator calls",
    )
    parser.add_argument(
        "--compile_backend", default="inductor",
        help="with --compile: torch.compile's backend (the trainer's is inductor; aot_eager traces the same "
        "graphs without generating kernels, for a quick dry run)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed iterations per variant (default 3; paper 1)"
    )
    parser.add_argument(
        "--iters", type=int, default=None, help="timed iterations per variant (default 10; paper 4)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds the iterations are split into"
    )
    parser.add_argument(
        "--peak_size", type=int, default=None,
        help="image side of the 3×3 conv (256 channels) that measures the peak (default 64; CUDA 128)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    bench = bench_from_args(args)
    heavy = bench.size >= 256 and device.type == "cpu"
    warmup = args.warmup if args.warmup is not None else (1 if args.quick or heavy else 3)
    iters = args.iters if args.iters is not None else (2 if args.quick else 4 if heavy else 10)
    rounds = max(1, min(args.rounds or (2 if args.quick else 5), iters))
    per_round = math.ceil(iters / rounds)
    precision = resolve_precision(args.precision, device)
    base_spec = {"bench": vars(bench), "device": str(device), "threads": threads}
    specs = {
        "baseline": {**base_spec, "variant": "baseline"},
        "ours": {
            **base_spec,
            "variant": "ours",
            "precision": precision,
            # As the trainer decides: a compiled step on a CPU takes contiguous batches.
            "channels_last": args.channels_last and (not args.compile or compiled_channels_last_is_safe(device)),
            "compile": args.compile,
            "compile_backend": args.compile_backend,
        },
    }
    if args.concurrent_cycles:
        if device.type != "cpu" or args.compile:
            raise SystemExit("--concurrent_cycles: an eager CPU variant (no --compile, --device cpu)")
        specs["concurrent"] = {**specs["ours"], "variant": "concurrent"}

    workers: dict[str, Worker] = {}
    times: dict[str, list[float]] = {name: [] for name in specs}
    finals: dict[str, dict[str, Any]] = {}
    try:
        for name, spec in specs.items():  # start both (they build in parallel), then wait for both
            workers[name] = Worker(spec)
        for worker_ in workers.values():
            worker_.ask("")
        for worker_ in workers.values():  # one at a time: never two variants on the cores at once
            worker_.ask(f"warmup {warmup}")
        for round_ in range(rounds):
            order = list(specs) if round_ % 2 == 0 else list(reversed(specs))
            for name in order:
                times[name] += workers[name].ask(f"run {per_round}")["times"]
        for name, worker_ in workers.items():
            finals[name] = worker_.ask("finish")
    finally:
        for worker_ in workers.values():
            worker_.close()

    macs = network_macs(bench)
    flops, formula = flops_per_iteration(bench, macs)
    peak_size = args.peak_size or (16 if args.quick else 128 if device.type == "cuda" else 64)
    peak_batch = 32 if device.type == "cuda" else 1
    peaks = measure_peaks(device, peak_batch, peak_size)
    baseline_time = median(times["baseline"])
    results = []
    for name, spec in specs.items():
        seconds = median(times[name])
        variant_precision = spec.get("precision", "fp32")
        achieved = flops / seconds
        results.append(
            {
                "variant": name,
                "description": {"baseline": "reference-style eager step", "ours": "ours (create_model + Precision)",
                                "concurrent": "ours, both cycles at once (two threads)"}[name],
                "precision": variant_precision,
                "channels_last": spec.get("channels_last", False),
                # "inductor" prints as yes; another backend by its name
                "compile": spec.get("compile", False) and spec["compile_backend"],
                "median_ms": seconds * 1e3,
                "min_ms": min(times[name]) * 1e3,
                "timed_iterations": len(times[name]),
                "images_per_s": bench.batch_size / seconds,
                "speedup_vs_baseline": baseline_time / seconds,
                "peak_memory_mib": finals[name]["peak_memory_mib"],
                "start_memory_mib": finals[name]["start_memory_mib"],
                "achieved_tflops": achieved / 1e12,
                "peak_tflops": peaks[variant_precision] / 1e12,
                "fraction_of_peak": achieved / peaks[variant_precision],
                "losses_finite": finals[name]["finite"],
            }
        )
    return {
        "benchmark": "train_step",
        "config": vars(bench),
        "device": str(device),
        "machine": machine_description(device, threads),
        "threads": threads,
        "warmup": warmup,
        "iters": per_round * rounds,
        "rounds": rounds,
        "macs_per_image": macs,
        "flops_per_iteration": flops,
        "flops_formula": formula,
        "conv_peak_tflops": {k: v / 1e12 for k, v in peaks.items()},
        "conv_peak_probe": f"3×3 conv 256→256, batch {peak_batch}, {peak_size}×{peak_size}",
        "memory": "peak RSS of the worker process"
        if device.type == "cpu"
        else "torch.cuda.max_memory_allocated",
        "results": results,
        "speedup": results[1]["speedup_vs_baseline"],
        "concurrent_vs_ours": results[2]["speedup_vs_baseline"] / results[1]["speedup_vs_baseline"]
        if len(results) > 2 else None,
    }


def format_report(report: dict[str, Any]) -> str:
    from common import BenchConfig

    bench = BenchConfig(**report["config"])
    peaks = ", ".join(f"{k} {v:.3g}" for k, v in report["conv_peak_tflops"].items())
    memory = "peak RSS, MiB (at start)" if report["device"].startswith("cpu") else "peak CUDA allocated, MiB"
    header = [
        "variant",
        "precision",
        "channels_last",
        "compile",
        "median ms / iter",
        "images / s",
        "speed vs baseline",
        memory,
        "model TFLOP/s",
        "% of conv peak",
    ]
    rows = []
    for r in report["results"]:
        memory_cell = f"{r['peak_memory_mib']:.0f}"
        if report["device"].startswith("cpu"):
            memory_cell += f" ({r['start_memory_mib']:.0f})"
        rows.append(
            [
                r["variant"],
                r["precision"],
                "yes" if r["channels_last"] else "no",
                {False: "no", "inductor": "yes"}.get(r["compile"], r["compile"]),
                f"{r['median_ms']:.1f}",
                f"{r['images_per_s']:.2f}",
                f"{r['speedup_vs_baseline']:.2f}×",
                memory_cell,
                f"{r['achieved_tflops']:.3g}",
                f"{100 * r['fraction_of_peak']:.1f}%",
            ]
        )
    lines = [
        f"## CycleGAN training iteration — {bench.describe()}",
        "",
        f"- machine: {report['machine']}; device {report['device']}",
        f"- {report['warmup']} warm-up, then {report['iters']} timed iterations per variant "
        f"in {report['rounds']} interleaved rounds; each variant in its own process",
        "- baseline: reference-style eager fp32 NCHW optimize_parameters; ours: create_model + Precision",
        f"- model FLOPs / iteration: {report['flops_formula']}",
        f"- peak ({report['conv_peak_probe']}), TFLOP/s: {peaks}; "
        "% of peak is against the variant's precision",
        "",
        markdown_table(header, rows),
        "",
        f"**speed of ours relative to the baseline: {report['speedup']:.2f}×** (> 1: ours is faster)",
    ]
    if report.get("concurrent_vs_ours"):
        lines += ["", f"**both cycles at once, relative to ours (batched calls): {report['concurrent_vs_ours']:.2f}×** "
                  f"(> 1: concurrent is faster)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker(json.loads(args.worker))
    report = run(args)
    print(format_report(report))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
