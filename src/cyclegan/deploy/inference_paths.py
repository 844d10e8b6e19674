"""The inference paths a generator can run on: torch at a precision and memory format, onnxruntime and
OpenVINO at fp32 / bf16 / int8, each built as a picture→picture module (:func:`build_path`).

:mod:`cyclegan.deploy.fastest` measures them and picks one; this module only knows how to build
each and which are worth measuring on this machine (:func:`eligible_paths`). The ONNX-based paths
share one exported file (:class:`Sources`): the caller's (e.g. the export cached beside a checkpoint
by :func:`cyclegan.deploy.backends.cached_onnx`) or one kept under the weights' digest in
``~/.cache/cyclegan/onnx``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.core.precision import cpu_has_native_bf16
from cyclegan.core.transfer import cache_dir
from cyclegan.deploy.backends import cached_onnx
from cyclegan.deploy.onnx_runtime import OnnxGenerator, default_providers
from cyclegan.deploy.openvino_runtime import OpenVinoGenerator, openvino_has_native_bf16
from cyclegan.deploy.quantize import calibration_batches, quantize_int8
from cyclegan.recipes.codec import CodedNetwork, inner_network


@dataclass(frozen=True)
class PathSpec:
    backend: str  # torch | onnxruntime | openvino
    precision: str  # fp32 | bf16 | int8
    channels_last: bool = False

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}" + (" channels-last" if self.channels_last else "")


# In order of preference: among equally fast paths the earlier one wins.
PATHS: dict[str, PathSpec] = {spec.name: spec for spec in (
    PathSpec("torch", "fp32"), PathSpec("torch", "fp32", True), PathSpec("torch", "bf16"),
    PathSpec("torch", "bf16", True), PathSpec("onnxruntime", "fp32"), PathSpec("onnxruntime", "int8"),
    PathSpec("openvino", "fp32"), PathSpec("openvino", "bf16"), PathSpec("openvino", "int8"),
)}


class TorchPath(nn.Module):
    """The torch network at a precision (autocast) and memory format; outputs fp32 NCHW."""

    def __init__(self, net: nn.Module, device: torch.device, dtype: torch.dtype | None, channels_last: bool) -> None:
        super().__init__()
        self.net, self.device, self.dtype, self.channels_last = net, device, dtype, channels_last
        self.size_multiple = getattr(net, "size_multiple", 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.net(x).contiguous()
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.net(x).float().contiguous()


@dataclass
class Sources:
    """What the ONNX-based paths are built from; each file is made at most once, on first need.

    ``onnx_file``: the fp32 export (a path, or a function that returns it, e.g. a
    :func:`cyclegan.deploy.backends.cached_onnx` call beside the checkpoint); default: exported into
    ``export_dir`` under the weights' digest. ``int8_file`` / ``calibration``: the int8 graph, or
    pictures (C×H×W in [-1, 1]) to calibrate one on.
    """

    net: nn.Module
    device: torch.device
    threads: int | None = None
    onnx_file: Path | Callable[[], Path] | None = None
    int8_file: Path | Callable[[], Path] | None = None
    calibration: Sequence[torch.Tensor] | None = None
    export_dir: Path = dataclasses.field(default_factory=lambda: cache_dir() / "onnx")
    _files: dict[str, Path] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def has_int8(self) -> bool:
        return self.int8_file is not None or bool(self.calibration)

    def fp32(self) -> Path:
        if "fp32" not in self._files:
            given = self.onnx_file() if callable(self.onnx_file) else self.onnx_file
            self._files["fp32"] = Path(given) if given is not None else self._default_export()
        return self._files["fp32"]

    def int8(self) -> Path:
        if "int8" not in self._files:
            given = self.int8_file() if callable(self.int8_file) else self.int8_file
            self._files["int8"] = Path(given) if given is not None else self._default_int8()
        return self._files["int8"]

    def _default_export(self) -> Path:
        generator = inner_network(self.net)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        return cached_onnx(generator, self.export_dir, _digest(generator.state_dict().values()), "G", [])

    def _default_int8(self) -> Path:
        if not self.calibration:
            raise ValueError("int8 needs calibration pictures or an int8 file")
        fp32 = self.fp32()
        path = fp32.with_name(f"{fp32.stem}.{_digest(self.calibration)}.int8.onnx")
        if not path.exists():
            multiple = getattr(inner_network(self.net), "size_multiple", 1)
            quantize_int8(fp32, calibration_batches(self.calibration, multiple), path)
        return path


def _digest(tensors: Any) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def build_path(name: str, sources: Sources) -> nn.Module:
    """The picture→picture module of path ``name`` (one of :data:`PATHS`)."""
    spec, net, device = PATHS[name], sources.net, sources.device
    if spec.backend == "torch":
        dtype = torch.bfloat16 if spec.precision == "bf16" else None
        if spec.channels_last:  # a copy: the caller's network keeps its layout
            net = copy.deepcopy(net).to(memory_format=torch.channels_last)
        return TorchPath(net, device, dtype, spec.channels_last)
    file = sources.int8() if spec.precision == "int8" else sources.fp32()
    multiple = getattr(inner_network(net), "size_multiple", None)
    if spec.backend == "onnxruntime":
        runtime: nn.Module = OnnxGenerator(file, multiple, providers=default_providers(device), threads=sources.threads)
    else:
        if device.type != "cpu":
            raise ValueError("the openvino backend runs on the CPU")
        precision = "bf16" if spec.precision == "bf16" else "fp32"  # int8: the graph's own QDQ nodes
        runtime = OpenVinoGenerator(file, multiple, precision=precision, threads=sources.threads)
    # The runtimes run the bare generator; a codec (colorization's Lab) wraps them as it wraps the torch one.
    return CodedNetwork(runtime, net.codec) if isinstance(net, CodedNetwork) else runtime


def _runs_here(backend: str, device: torch.device) -> bool:
    """The runtime is installed (looked up, not imported) and runs on ``device``: OpenVINO on the CPU,
    onnxruntime on the CPU or, with its CUDA provider, on the GPU."""
    if importlib.util.find_spec(backend) is None:
        return False
    if backend == "openvino":
        return device.type == "cpu"
    return device.type == "cpu" or "CUDAExecutionProvider" in default_providers(device)


def eligible_paths(device: torch.device, precision: str, backend: str, sources: Sources) -> list[str]:
    """The paths worth measuring here for ``precision`` / ``backend`` (each ``auto`` or explicit)."""
    explicit_bf16 = precision == "bf16"
    native_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    exportable = hasattr(inner_network(sources.net), "body")  # our generators: export_onnx's contract
    names = []
    for name, spec in PATHS.items():
        if backend != "auto" and spec.backend != backend:
            continue
        if precision != "auto" and spec.precision != precision:
            continue
        if spec.backend != "torch" and not (exportable and _runs_here(spec.backend, device)):
            continue
        if spec.precision == "int8" and (device.type != "cpu" or not sources.has_int8):
            continue
        if spec.precision == "bf16" and not explicit_bf16:
            if spec.backend == "openvino" and not openvino_has_native_bf16():
                continue
            if spec.backend == "torch" and not native_bf16:
                continue
        names.append(name)
    return names


__all__ = ["PATHS", "PathSpec", "Sources", "TorchPath", "build_path", "cache_dir", "eligible_paths"]
