"""``cyclegan train --tune``: pick the fastest settings for this machine and run by measurement.

Flag lists guess; a few timed steps know. :func:`tune` builds the run's own model and first batch,
times a few training steps of each candidate setting — precision (fp32, and bf16 only where the
hardware computes it natively: :func:`cyclegan.core.precision.resolve_precision`'s rule), channels-last
batches on / off, and the CPU's torch thread count — and keeps the fastest candidate whose first-step
losses agree with fp32's (:func:`keeps_numerics`). The choice is cached per CPU model (or GPU) and
speed-relevant config in ``~/.cache/cyclegan/tune.json``, so the next run of the same shape on the
same machine starts at once; :func:`describe` is the one line ``cyclegan train`` prints.

The selection (:func:`choose`) is a pure function of the timings and losses, so it is tested with
injected figures; only :func:`measure` reads a clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from cyclegan.config import TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.core.precision import Precision, resolve_precision
from cyclegan.core.runtime import cpu_model, resolve_device
from cyclegan.core.transfer import cache_dir
from cyclegan.data import create_dataset
from cyclegan.recipes import create_model
from cyclegan.training.trainer import batch_to_device

log = logging.getLogger(__name__)

TUNE_CACHE_VERSION = 1
# bf16 keeps 8 bits of mantissa: its first-step losses differ from fp32's by ~1e-3 relative; a wrong
# result (a broken kernel, a NaN) is far outside.
LOSS_TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 5e-2}
# Another candidate replaces the fp32 defaults only when it is clearly faster, not within the noise.
MIN_GAIN = 1.03


@dataclass(frozen=True)
class Candidate:
    precision: str = "fp32"
    channels_last: bool = False
    threads: int = 0  # torch intra-op threads; 0: torch's default

    def label(self) -> str:
        parts = [self.precision, "channels_last" if self.channels_last else "NCHW"]
        if self.threads:
            parts.append(f"{self.threads} thread(s)")
        return " + ".join(parts)


@dataclass(frozen=True)
class Measurement:
    seconds_per_step: float
    losses: Mapping[str, float]


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    reason: str
    cached: bool = False


def default_cache_path() -> Path:
    return cache_dir() / "tune.json"


def machine_key(device: torch.device) -> str:
    """The CPU model (or GPU name) and core count: settings are tuned for one kind of machine."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}"
    return f"{cpu_model()} ×{os.cpu_count()}"


def config_key(config: TrainConfig) -> str:
    """A digest of what sets a step's cost: recipe, networks, crop and batch, and the torch version."""
    data, model = config.data, config.model
    section = getattr(config, model.model, None)  # the recipe's own options (lambda_identity ...)
    relevant = {
        "model": model.model, "netG": model.netG, "netD": model.netD, "ngf": model.ngf, "ndf": model.ndf,
        "n_layers_D": model.n_layers_D, "norm": model.norm, "crop_size": data.crop_size,
        "batch_size": data.batch_size, "input_nc": data.input_nc, "output_nc": data.output_nc,
        "recipe": dataclasses.asdict(section) if dataclasses.is_dataclass(section) else {},
        "device": config.runtime.device, "compile": config.runtime.compile, "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def candidates(device: torch.device, cpu_count: int | None = None) -> list[Candidate]:
    """fp32 and (where native) bf16, × channels-last off / on, × (CPU) all cores or half of them."""
    precisions = ["fp32"] + (["bf16"] if resolve_precision("auto", device) == "bf16" else [])
    if device.type == "cpu":
        cores = cpu_count or os.cpu_count() or 1
        threads = sorted({cores, max(1, cores // 2)}, reverse=True)
    else:
        threads = [0]
    return [
        Candidate(precision, channels_last, count)
        for precision in precisions
        for channels_last in (False, True)
        for count in threads
    ]


def keeps_numerics(losses: Mapping[str, float], reference: Mapping[str, float], precision: str) -> bool:
    """Every loss finite and within the precision's relative tolerance of fp32's on the same step."""
    tolerance = LOSS_TOLERANCE[precision]
    for name, expected in reference.items():
        value = losses.get(name)
        if value is None or not (value == value) or abs(value) == float("inf"):  # missing, NaN or inf
            return False
        if abs(value - expected) > tolerance * max(abs(expected), 1e-3):
            return False
    return True


def choose(measured: Mapping[Candidate, Measurement], baseline: Candidate) -> Choice:
    """The fastest candidate that keeps the numerics; the baseline unless another beats it by MIN_GAIN."""
    if baseline not in measured:
        raise ValueError(f"the baseline {baseline.label()} was not measured")
    reference = measured[baseline].losses
    kept = {c: m for c, m in measured.items() if keeps_numerics(m.losses, reference, c.precision)}
    rejected = [c.label() for c in measured if c not in kept]
    fastest = min(kept, key=lambda c: kept[c].seconds_per_step)
    base_time = measured[baseline].seconds_per_step
    if base_time < MIN_GAIN * kept[fastest].seconds_per_step and fastest != baseline:
        note = f"{fastest.label()} was only {base_time / kept[fastest].seconds_per_step:.2f}× faster: kept"
        fastest = baseline
    else:
        note = ""
    speedup = base_time / kept[fastest].seconds_per_step
    reason = (
        f"{kept[fastest].seconds_per_step * 1e3:.0f} ms/step, {speedup:.2f}× {baseline.label()}, "
        f"fastest of {len(measured)} measured"
    )
    if note:
        reason += f"; {note}"
    if rejected:
        reason += f"; rejected for their losses: {', '.join(rejected)}"
    return Choice(fastest, reason)


def describe(choice: Choice, machine: str) -> str:
    """The one line ``cyclegan train --tune`` prints."""
    source = "cached choice" if choice.cached else "measured"
    return f"tune ({source}, {machine}): {choice.candidate.label()} — {choice.reason}"


def apply(config: TrainConfig, candidate: Candidate) -> TrainConfig:
    runtime = dataclasses.replace(
        config.runtime, precision=candidate.precision, channels_last=candidate.channels_last,
        torch_threads=candidate.threads,
    )
    return dataclasses.replace(config, runtime=runtime)


# --- the cache ------------------------------------------------------------------------------------


def read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again (and rewrite it)
    return cache if isinstance(cache, dict) and cache.get("version") == TUNE_CACHE_VERSION else {}


def cached_choice(path: Path, machine: str, key: str) -> Choice | None:
    entry = read_cache(path).get("choices", {}).get(f"{machine} | {key}")
    if not isinstance(entry, dict):
        return None
    try:
        return Choice(Candidate(**entry["candidate"]), entry["reason"], cached=True)
    except (KeyError, TypeError):
        return None


def store_choice(path: Path, machine: str, key: str, choice: Choice) -> None:
    cache = read_cache(path) or {"version": TUNE_CACHE_VERSION, "choices": {}}
    cache.setdefault("choices", {})[f"{machine} | {key}"] = {
        "candidate": dataclasses.asdict(choice.candidate),
        "reason": choice.reason,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(cache, indent=2, sort_keys=True))


# --- measuring ------------------------------------------------------------------------------------


def measure(config: TrainConfig, candidate: Candidate, steps: int = 3, warmup: int = 1) -> Measurement:
    """Median seconds of ``steps`` training steps (after ``warmup``) of the run's model at ``candidate``
    from seed 0, and the first step's losses (the same weights and batch for every candidate)."""
    device = resolve_device(config.runtime.device)
    threads_before = torch.get_num_threads()
    if candidate.threads:
        torch.set_num_threads(candidate.threads)
    try:
        torch.manual_seed(0)
        model = create_model(config, is_train=True)
        model.rebuild_step_modules()
        model.to(device)
        dataset = create_dataset(config.data, seed=0)
        batch = default_collate([dataset[index] for index in range(min(len(dataset), config.data.batch_size))])
        batch = batch_to_device(batch, apply(config, candidate), device)
        precision = Precision(candidate.precision, device)
        if model.needs_first_batch:
            model.data_dependent_init(batch, precision, fresh=True)
        model.build_optimizers()
        model.wrap_step_modules(lambda module: module)
        losses: dict[str, float] = {}
        times = []
        for step in range(warmup + steps):
            synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            synchronize()
            start = time.perf_counter()
            result = model.training_step(batch, precision)
            synchronize()
            if step == 0:
                losses = {name: float(value) for name, value in result.losses.items()}
            if step >= warmup:
                times.append(time.perf_counter() - start)
        return Measurement(statistics.median(times), losses)
    finally:
        torch.set_num_threads(threads_before)


def tune(
    config: TrainConfig,
    cache_path: Path | None = None,
    steps: int = 3,
    measure_fn: Callable[[TrainConfig, Candidate], Measurement] | None = None,
    refresh: bool = False,
    budget_seconds: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[TrainConfig, Choice, str]:
    """The config with the chosen settings, the choice and its one-line description.

    Reads the cache first (``refresh``: measure anyway). ``measure_fn`` replaces :func:`measure`
    (tests inject timings with it). ``budget_seconds``: no new candidate starts after this long (the
    baseline always runs); a choice made without every candidate says so and is not cached.
    """
    device = resolve_device(config.runtime.device)
    cache_path = cache_path or default_cache_path()
    machine, key = machine_key(device), config_key(config)
    choice = None if refresh else cached_choice(cache_path, machine, key)
    if choice is None:
        measure_fn = measure_fn or (lambda cfg, candidate: measure(cfg, candidate, steps=steps))
        options = candidates(device)
        measured = {}
        start = clock()
        for candidate in options:
            if measured and clock() - start > budget_seconds:
                break
            measured[candidate] = measure_fn(config, candidate)
            log.info("tune: %s: %.0f ms/step", candidate.label(), measured[candidate].seconds_per_step * 1e3)
        choice = choose(measured, options[0])
        if len(measured) < len(options):
            # A partial comparison must not stick: the next run measures again.
            reason = f"{choice.reason}; {len(options) - len(measured)} candidate(s) skipped after {budget_seconds:.0f} s"
            choice = dataclasses.replace(choice, reason=reason)
        else:
            store_choice(cache_path, machine, key, choice)
    return apply(config, choice.candidate), choice, describe(choice, machine)


__all__ = [
    "Candidate",
    "Choice",
    "Measurement",
    "apply",
    "cached_choice",
    "candidates",
    "choose",
    "config_key",
    "default_cache_path",
    "describe",
    "keeps_numerics",
    "machine_key",
    "measure",
    "store_choice",
    "tune",
]
