"""The fastest correct inference path for this machine, chosen by measurement on the user's own input.

``--precision auto`` / ``--backend auto`` of the inference doors: :func:`choose_path` runs the first
image (or batch of frames) through each eligible path
(:data:`cyclegan.deploy.inference_paths.PATHS`): torch fp32 (the reference),
fp32 channels-last, bf16 autocast (only where the hardware computes bf16 natively, or when asked
for), onnxruntime fp32 / int8 (int8 only with a calibration set), OpenVINO fp32 / bf16 / int8. A path
is kept when its output agrees with torch fp32's (PSNR ≥ :data:`MIN_PSNR_DB` on [-1, 1] pictures),
and the fastest kept path wins, timed over a few interleaved calls after a warm-up call. The choice
is cached per machine (CPU model and ISA, or GPU), network fingerprint and input size class in
``~/.cache/cyclegan/inference.json`` (the ``--tune`` pattern), so later runs skip the measurement;
:meth:`Choice.describe` is the one line a door prints.

Explicit choices (``precision="fp32" | "bf16"`` with ``backend="torch" | "onnxruntime" | "openvino"``)
are built as asked, without measuring (bf16 included where the CPU emulates it: the user asked);
one explicit and one ``auto`` measures the paths that fit the explicit one.

The selection (:func:`choose`) is a pure function of the timings and PSNRs, tested with injected
figures; only :func:`measure` reads a clock. The ONNX-based paths run the file that
:func:`cyclegan.deploy.backends.cached_onnx` exports (the caller's, beside a checkpoint, or one kept
in the cache folder under the weights' digest).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.core.fileio import atomic_write
from cyclegan.core.precision import cpu_has_native_bf16
from cyclegan.core.runtime import cpu_model
from cyclegan.deploy.inference_paths import PATHS, Sources, build_path, cache_dir, eligible_paths
from cyclegan.deploy.openvino_runtime import openvino_has_native_bf16
from cyclegan.deploy.quantize import psnr
from cyclegan.recipes.codec import inner_network

log = logging.getLogger(__name__)
choice_log = logging.getLogger(f"{__name__}.choice")  # the one line a door prints: what runs, and why

BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "openvino")
PRECISION_CHOICES = ("auto", "fp32", "bf16")
BASELINE = "torch fp32"
# Agreement with fp32: bf16 and int8 outputs land well above this on real generators; a broken
# kernel or a badly calibrated layer falls far below.
MIN_PSNR_DB = 40.0
# Another path replaces torch fp32 only when clearly faster than it, not within the timing noise.
MIN_GAIN = 1.05
# After the first timed round, a path this much slower than the best cannot win: it is not timed again.
DROP_AFTER_FIRST_ROUND = 1.5
CACHE_VERSION = 1


@dataclass(frozen=True)
class Measurement:
    seconds_per_call: float
    psnr_db: float  # against torch fp32 on the same input; inf when identical


@dataclass(frozen=True)
class Selection:
    name: str
    refused: tuple[str, ...] = ()  # measured, but below MIN_PSNR_DB
    note: str = ""


@dataclass
class Choice:
    """The chosen path: ``run`` is a picture→picture module (N×C×H×W in [-1, 1] → the same) with the
    network's ``size_multiple``; the figures are those measured (None when the path was asked for)."""

    name: str
    run: nn.Module
    seconds_per_call: float | None = None
    psnr_db: float | None = None
    baseline_seconds: float | None = None
    sample: str = ""
    machine: str = ""
    source: str = "measured"  # measured | cached | asked for
    refused: tuple[str, ...] = ()
    note: str = ""
    measured_paths: int = 0

    @property
    def speedup(self) -> float | None:
        if not self.seconds_per_call or not self.baseline_seconds:
            return None
        return self.baseline_seconds / self.seconds_per_call

    def describe(self) -> str:
        """One line: what runs, and why."""
        if self.source == "asked for":
            line = f"inference: {self.name}, as asked, not measured ({self.machine})"
            return line + (f"; {self.note}" if self.note else "")
        of = f"fastest of {self.measured_paths} measured" if self.measured_paths else "measured"
        if self.name == BASELINE:
            line = f"inference: {self.name}, the {of} on {self.sample} ({self.machine})"
        else:
            quality = (f"{self.psnr_db:.1f} dB against fp32" if self.psnr_db is not None and math.isfinite(self.psnr_db)
                       else "identical to fp32")
            speed = f"{self.speedup:.2f}× {BASELINE}" if self.speedup else "not timed"
            line = f"inference: {self.name}, {speed} ({of}) on {self.sample}, {quality} ({self.machine})"
        if self.source == "cached":
            line += "; cached choice, measured on an earlier run"
        if self.refused:
            line += f"; refused below {MIN_PSNR_DB:.0f} dB: {', '.join(self.refused)}"
        if self.note:
            line += f"; {self.note}"
        return line


# --- the selection (pure) -------------------------------------------------------------------------


def choose(
    measured: Mapping[str, Measurement],
    allowed: Sequence[str] | None = None,
    baseline: str = BASELINE,
    min_psnr: float = MIN_PSNR_DB,
    min_gain: float = MIN_GAIN,
) -> Selection:
    """The fastest ``allowed`` path (default: every measured one) whose output agrees with the
    baseline's at ``min_psnr`` dB or more; the baseline unless another beats it by ``min_gain``.
    Among equal times the earlier path in ``measured`` wins. When no allowed path agrees, the one
    closest to the baseline's output is taken, and the note says so."""
    allowed = list(measured) if allowed is None else [name for name in measured if name in allowed]
    if not allowed:
        raise ValueError("no inference path was measured")
    refused = tuple(name for name in allowed if not measured[name].psnr_db >= min_psnr)  # NaN refused too
    agreeing = [name for name in allowed if name not in refused and math.isfinite(measured[name].seconds_per_call)]
    if not agreeing:
        closest = max(allowed, key=lambda name: -math.inf if math.isnan(measured[name].psnr_db) else measured[name].psnr_db)
        return Selection(closest, tuple(n for n in refused if n != closest),
                         f"no allowed path agreed at {min_psnr:.0f} dB: kept the closest")
    fastest = min(agreeing, key=lambda name: measured[name].seconds_per_call)
    note = ""
    if baseline in agreeing and fastest != baseline:
        gain = measured[baseline].seconds_per_call / measured[fastest].seconds_per_call
        if gain < min_gain:
            note = f"{fastest} was only {gain:.2f}× faster"
            fastest = baseline
    return Selection(fastest, refused, note)


# --- keys and the cache ---------------------------------------------------------------------------


def default_cache_path() -> Path:
    return cache_dir() / "inference.json"


def machine_label(device: torch.device) -> str:
    """What a reader needs to know the figures' machine: "AMD EPYC, avx2" or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability().lower()}"


def machine_key(device: torch.device) -> str:
    """The machine a choice holds for: its CPU model, ISA and cores and torch's threads (or the GPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{machine_label(device)} ×{os.cpu_count()}, {torch.get_num_threads()} thread(s)"


def network_key(net: nn.Module, **fields: Any) -> str:
    """A fingerprint of what sets a network's cost: ``fields`` (netG, ngf, norm ... as the caller
    knows them), its classes and parameter count; not its weights, which do not change the speed."""
    inner = inner_network(net)
    parameters = sum(parameter.numel() for parameter in inner.parameters())
    described = {**{key: str(value) for key, value in fields.items()}, "class": type(inner).__qualname__,
                 "wrapper": type(net).__qualname__, "parameters": parameters}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def size_class(sample: torch.Tensor) -> str:
    """Batch, channels and the pixel count rounded up to a power-of-two square: speeds scale with it."""
    count, channels, height, width = sample.shape
    side = 2 ** math.ceil(math.log2(max(1.0, math.sqrt(height * width))))
    return f"{count}×{channels}×≤{side}²"


def _versions() -> str:
    found = []
    for package in ("torch", "onnxruntime", "openvino"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def cache_entry_key(device: torch.device, key: str, sample: torch.Tensor, names: Sequence[str]) -> str:
    names_digest = hashlib.sha256(" | ".join(names).encode()).hexdigest()[:8]
    return f"{machine_key(device)} | {key} | {size_class(sample)} | {_versions()} | {names_digest}"


def read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again (and rewrite it)
    return cache if isinstance(cache, dict) and cache.get("version") == CACHE_VERSION else {}


def store_choice(path: Path, entry_key: str, choice: Choice) -> None:
    cache = read_cache(path) or {"version": CACHE_VERSION, "choices": {}}
    cache.setdefault("choices", {})[entry_key] = {
        "name": choice.name, "seconds_per_call": choice.seconds_per_call, "psnr_db": choice.psnr_db,
        "baseline_seconds": choice.baseline_seconds, "sample": choice.sample, "refused": list(choice.refused),
        "note": choice.note, "measured_paths": choice.measured_paths, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(path, json.dumps(cache, indent=2, sort_keys=True, default=str))


def cached_entry(path: Path, entry_key: str) -> dict[str, Any] | None:
    entry = read_cache(path).get("choices", {}).get(entry_key)
    return entry if isinstance(entry, dict) and entry.get("name") in PATHS else None


# --- measuring ------------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    runs: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    sample: torch.Tensor,
    baseline: str = BASELINE,
    calls: int = 2,
    budget_seconds: float = 300.0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Measurement]:
    """Each path's median seconds per call on ``sample`` and its PSNR against ``baseline``'s output.

    Every path is called once untimed first (compilation, first-shape kernel choice, caches): that
    output is the one compared. Then ``calls`` rounds time one call of each path, alternating the
    order so that drift hits each alike; after the first round, paths far slower than the best are
    not timed again, and no round starts after ``budget_seconds``. A path whose output disagrees is
    not timed (it cannot be chosen).
    """
    device = sample.device
    start = clock()
    reference = runs[baseline](sample).float().cpu()
    quality: dict[str, float] = {baseline: math.inf}
    for name, run in runs.items():
        if name != baseline:
            quality[name] = psnr(run(sample).float().cpu(), reference)
            log.info("inference: %s: %.1f dB against %s", name, quality[name], baseline)
    timed = [name for name in runs if name == baseline or quality[name] >= MIN_PSNR_DB]
    times: dict[str, list[float]] = {name: [] for name in timed}
    for round_ in range(max(1, calls)):
        if round_ and clock() - start > budget_seconds:
            break
        for name in timed if round_ % 2 == 0 else timed[::-1]:
            _synchronize(device)
            began = clock()
            runs[name](sample)
            _synchronize(device)
            times[name].append(clock() - began)
        best = min(statistics.median(values) for values in times.values())
        timed = [name for name in timed if name == baseline or times[name][-1] <= DROP_AFTER_FIRST_ROUND * best]
    return {name: Measurement(statistics.median(times[name]) if times.get(name) else math.inf, quality[name])
            for name in runs}


def describe_sample(sample: torch.Tensor) -> str:
    count, _, height, width = sample.shape
    return f"{count} image{'s' if count != 1 else ''} of {height}×{width}"


# --- the door -------------------------------------------------------------------------------------


def choose_path(
    net: nn.Module,
    sample: torch.Tensor,
    device: torch.device | str = "cpu",
    candidates: Sequence[str] | None = None,
    cache: Path | None = None,
    key: str | None = None,
    *,
    precision: str = "auto",
    backend: str = "auto",
    refresh: bool = False,
    threads: int | None = None,
    onnx_file: Path | Callable[[], Path] | None = None,
    int8_file: Path | Callable[[], Path] | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    calls: int = 2,
    measure_fn: Callable[..., Mapping[str, Measurement]] | None = None,
) -> Choice:
    """The fastest path for ``net`` (a picture→picture module, on ``device``, in eval mode) that
    agrees with its fp32 output on ``sample`` (N×C×H×W in [-1, 1]: the first image, or frames).

    ``precision`` / ``backend``: ``auto`` measures; explicit values narrow the paths measured, and
    both explicit build that path without measuring. ``candidates``: path names to consider
    (default: those :func:`eligible_paths` finds here). ``cache``: the choices file (default
    ``~/.cache/cyclegan/inference.json``); ``key``: the network's fingerprint (default
    :func:`network_key` of ``net``; pass ``network_key(net, netG=..., ngf=..., norm=...)``);
    ``refresh``: measure again. ``onnx_file`` / ``int8_file`` / ``calibration``: see
    :class:`cyclegan.deploy.inference_paths.Sources`.
    ``measure_fn(runs, sample)``: replaces :func:`measure` (tests inject figures with it).
    """
    if precision not in PRECISION_CHOICES or backend not in BACKEND_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)} and backend one of "
                         f"{', '.join(BACKEND_CHOICES)}; got {precision!r}, {backend!r}")
    device = torch.device(device)
    sample = (sample.unsqueeze(0) if sample.dim() == 3 else sample).to(device, torch.float32)
    sources = Sources(net, device, threads, onnx_file, int8_file, calibration)
    machine = machine_label(device)
    if precision != "auto" and backend != "auto":
        name = f"{backend} {precision}"
        if name not in PATHS:
            raise ValueError(f"no {name} path; known: {', '.join(PATHS)}")
        return Choice(name, build_path(name, sources), machine=machine, source="asked for",
                      note=_emulation_note(name, device))
    names = list(candidates) if candidates is not None else eligible_paths(device, precision, backend, sources)
    unknown = [name for name in names if name not in PATHS]
    if unknown:
        raise ValueError(f"unknown inference path(s) {', '.join(unknown)}; known: {', '.join(PATHS)}")
    if not names:
        raise ValueError(f"no inference path here for --precision {precision} --backend {backend}")
    measured_names = [BASELINE] + [name for name in names if name != BASELINE]  # fp32: the reference
    cache = cache or default_cache_path()
    entry_key = cache_entry_key(device, key or network_key(net), sample, measured_names)
    entry = None if refresh else cached_entry(cache, entry_key)
    if entry is not None:
        try:
            return _cached_choice(entry, build_path(entry["name"], sources), machine)
        except Exception as error:  # a runtime uninstalled since, an export that fails now: measure afresh
            log.warning("inference: the cached choice %s cannot be built (%s): measuring again", entry["name"], error)
    return _measured_choice(sources, sample, names, measured_names, machine, calls, measure_fn, cache, entry_key)


def _emulation_note(name: str, device: torch.device) -> str:
    """A warning for an explicit bf16 path that this CPU emulates (slower than fp32) or ignores."""
    if not name.endswith("bf16") or device.type != "cpu":
        return ""
    if name.startswith("openvino"):
        return "" if openvino_has_native_bf16() else "this CPU has no native bf16: OpenVINO runs it in fp32"
    return "" if cpu_has_native_bf16() else "this CPU emulates bf16: expect it slower than fp32"


def _cached_choice(entry: Mapping[str, Any], run: nn.Module, machine: str) -> Choice:
    return Choice(entry["name"], run, entry.get("seconds_per_call"), entry.get("psnr_db"),
                  entry.get("baseline_seconds"), entry.get("sample", ""), machine, "cached",
                  tuple(entry.get("refused", ())), entry.get("note", ""), entry.get("measured_paths", 0))


def _measured_choice(
    sources: Sources, sample: torch.Tensor, allowed: Sequence[str], measured_names: Sequence[str], machine: str,
    calls: int, measure_fn: Callable[..., Mapping[str, Measurement]] | None, cache: Path, entry_key: str,
) -> Choice:
    """Build each path (a path that cannot be built here is left out, and said so), measure, choose,
    and cache the choice."""
    runs: dict[str, nn.Module] = {}
    unbuilt = []
    for name in measured_names:
        try:
            runs[name] = build_path(name, sources)
        except Exception as error:  # an export, a runtime or a quantisation that fails here: not a candidate
            if name == BASELINE:
                raise
            log.warning("inference: %s cannot run here (%s: %s): left out", name, type(error).__name__, error)
            unbuilt.append(name)
    log.info("inference: measuring %s on %s", ", ".join(runs), describe_sample(sample))
    measured = (measure_fn or (lambda r, s: measure(r, s, calls=calls)))(runs, sample)
    log.info("inference: %s", "; ".join(f"{name} {figures.seconds_per_call * 1e3:.0f} ms/call, {figures.psnr_db:.1f} dB"
                                       for name, figures in measured.items()))
    selection = choose(measured, [name for name in allowed if name in runs])
    chosen = measured[selection.name]
    note = "; ".join(filter(None, [selection.note, f"could not run: {', '.join(unbuilt)}" if unbuilt else ""]))
    choice = Choice(selection.name, runs[selection.name], chosen.seconds_per_call, chosen.psnr_db,
                    measured[BASELINE].seconds_per_call, describe_sample(sample), machine, "measured",
                    tuple(f"{name} ({measured[name].psnr_db:.1f} dB)" for name in selection.refused), note,
                    len(measured))
    store_choice(cache, entry_key, choice)
    return choice


__all__ = [
    "BACKEND_CHOICES",
    "BASELINE",
    "MIN_PSNR_DB",
    "PRECISION_CHOICES",
    "Choice",
    "Measurement",
    "Selection",
    "choose",
    "choose_path",
    "default_cache_path",
    "machine_key",
    "machine_label",
    "measure",
    "network_key",
    "size_class",
]


# Under this many pixels per call (batch × H × W) ``auto`` keeps torch fp32 without measuring: the
# measurement (exports, compilations) would cost more than the whole job could save.
AUTO_MIN_PIXELS = 256 * 256


class FastestPath:
    """A picture→picture network run by the path ``precision`` / ``backend`` name, chosen by
    :func:`choose_path` on its first input of each picture size (C, H, W), whatever the batch (a
    video's last, shorter batch reuses the path its full batches chose). Torch fp32 as it is when both
    say so, and for inputs under :data:`AUTO_MIN_PIXELS`. One log line says what was chosen and why.
    """

    def __init__(self, net: nn.Module, device: torch.device | str, precision: str = "auto",
                 backend: str = "auto", key: str | None = None) -> None:
        self.net, self.device, self.precision, self.backend = net, torch.device(device), precision, backend
        self.key = key
        self.paths: dict[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] = {}

    @property
    def training(self) -> bool:
        return self.net.training

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (self.backend, self.precision) == ("torch", "fp32"):
            return self.net(x)
        automatic = "auto" in (self.backend, self.precision)
        if automatic and x.shape[0] * x.shape[-2] * x.shape[-1] < AUTO_MIN_PIXELS:
            return self.net(x)  # per-call overheads dominate such small inputs: nothing to gain
        shape = tuple(x.shape[1:])
        if shape not in self.paths:
            # One timed call per path after its warm-up: the first input pays for the measurement, and
            # the choice is cached for every later run on this machine.
            choice = choose_path(self.net, x, self.device, precision=self.precision, backend=self.backend,
                                 key=self.key, calls=1)
            choice_log.info("%s", choice.describe())
            self.paths[shape] = choice.run
        return self.paths[shape](x)
