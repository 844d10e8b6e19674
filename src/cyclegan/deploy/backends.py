"""Inference backends for ``cyclegan test``: the torch networks, ONNX Runtime, or OpenVINO.

:class:`~cyclegan.deploy.onnx_runtime.OnnxGenerator` runs a generator exported by :mod:`cyclegan.deploy.export`
and is called like the torch generator.

:func:`load_backend_generators` returns a run's generators for a backend. For ``onnxruntime`` it
exports each generator once to ``<run_dir>/<epoch>_net_<name>.onnx`` beside the checkpoint and
reuses that file while the checkpoint is unchanged (a ``.json`` sidecar records the checkpoint's
size and modification time and the torch version that exported it), or reads given .onnx files.
With ``quantize="int8"`` each cached fp32 file gets an int8 sibling ``<epoch>_net_<name>.int8.onnx``
(:mod:`cyclegan.deploy.quantize`, calibrated on the run's training crops), cached the same way; a given
.onnx file is run as it is (an ``.int8.onnx`` one is the int8 graph).
onnxruntime is an optional dependency (``pip install 'cyclegan[export]'``). ``openvino`` runs the same
cached files (fp32, or the int8 sibling) with :class:`~cyclegan.deploy.openvino_runtime.OpenVinoGenerator`
(``pip install 'cyclegan[openvino]'``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.config import CONFIG_FILENAME, TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.deploy.export import DEFAULT_OPSET, export_onnx
from cyclegan.deploy.onnx_runtime import OnnxGenerator, default_providers
from cyclegan.deploy.openvino_runtime import OpenVinoGenerator
from cyclegan.deploy.quantize import (
    DEFAULT_CALIBRATION_IMAGES,
    QUANTIZATIONS,
    calibration_batches,
    calibration_inputs,
    int8_path,
    quantize_int8,
)
from cyclegan.networks.generators import pad_to_multiple
from cyclegan.recipes.loading import LoadedGenerators, load_generators, translator_names

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
CACHE_VERSION = 1  # bump when the exported graph changes, to invalidate cached files


# --- a run's generators for a backend ------------------------------------------------------------


def _stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cached(path: Path, fingerprint: dict[str, Any], build: Callable[[], object]) -> Path:
    """``path``, built again (``build()``) unless its ``.json`` sidecar records the same fingerprint."""
    sidecar = path.with_suffix(".onnx.json")
    try:
        if path.exists() and json.loads(sidecar.read_text()) == fingerprint:
            return path
    except (OSError, ValueError):
        pass  # no or unreadable sidecar: build again
    build()
    atomic_write(sidecar, json.dumps(fingerprint, indent=2))
    return path


def _cache_dir(run_dir: Path) -> Path:
    """Beside the checkpoint; a per-user temporary folder when the run folder is read-only."""
    if os.access(run_dir, os.W_OK):
        return run_dir
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
    fallback = (
        Path(tempfile.gettempdir()) / f"cyclegan-onnx-{os.getuid() if hasattr(os, 'getuid') else 0}" / digest
    )
    log.warning("%s is read-only: caching the ONNX export in %s", run_dir, fallback)
    return fallback


def cached_onnx(net: nn.Module, run_dir: Path, epoch: str, name: str, sources: Iterable[Path]) -> Path:
    """``<run_dir>/<epoch>_net_<name>.onnx`` for ``net``, exported again only when stale."""
    path = _cache_dir(run_dir) / f"{epoch}_net_{name}.onnx"
    fingerprint = {"cache_version": CACHE_VERSION, "torch": torch.__version__, "opset": DEFAULT_OPSET,
                   "name": name, "sources": [_stamp(source) for source in sources]}

    def build() -> None:
        log.info("exporting %s to %s for onnxruntime", name, path)
        export_onnx(net, path, net.input_nc, 1, 1, dynamic=True, metadata={"name": name})  # example: 2 multiples

    return _cached(path, fingerprint, build)


def cached_int8(
    fp32_path: Path, net: nn.Module, name: str, config: TrainConfig, dataroot: str | Path | None = None
) -> Path:
    """The int8 sibling of the cached ``fp32_path``, quantised again only when the fp32 file or the
    calibration set changed. Calibration: crops of ``<dataroot>/train<A|B>`` (default the run's dataroot)."""
    data = config.data
    root = Path(dataroot or data.dataroot)
    path = int8_path(fp32_path)
    fingerprint = {
        "cache_version": CACHE_VERSION,
        "quantization": "int8",
        "fp32": _stamp(fp32_path),
        "calibration": {"dataroot": str(root.resolve()), "mode": data.dataset_mode,
                        "images": DEFAULT_CALIBRATION_IMAGES, "crop_size": data.crop_size,
                        "load_size": data.load_size},
    }

    def build() -> None:
        crops, source = calibration_inputs(config, name, root, DEFAULT_CALIBRATION_IMAGES)
        log.info("quantising %s to int8 in %s, calibrated on %s", name, path, source)
        quantize_int8(fp32_path, calibration_batches(crops, net.size_multiple), path)

    return _cached(path, fingerprint, build)


def load_backend_generators(
    run_dir: str | Path,
    epoch: str = "latest",
    names: Iterable[str] | None = None,
    backend: str = "torch",
    flags: Any = None,
    device: torch.device | str = "cpu",
    onnx_paths: Mapping[str, str | Path] | None = None,
    providers: list[str] | None = None,
    threads: int | None = None,
    eval_mode: bool = True,
    quantize: str = "none",
    calibration_dataroot: str | Path | None = None,
    precision: str = "fp32",
):
    """A run's generators as :class:`cyclegan.recipes.loading.LoadedGenerators` for ``backend``.

    ``names``: default the run recipe's directions. ``torch``: exactly
    :func:`cyclegan.recipes.loading.load_generators` (``eval_mode`` as there). ``onnxruntime``: each generator
    as an :class:`OnnxGenerator`, from ``onnx_paths[name]`` when given (the config then comes from
    the run's ``config.json``, else ``flags``), else from the cache beside the checkpoint.
    ``quantize="int8"`` (onnxruntime, cached files): the int8 graphs, calibrated on crops of
    ``<calibration_dataroot>/train<A|B>`` (default the run's dataroot), see :func:`cached_int8`.
    ``openvino``: the same files run by :class:`OpenVinoGenerator` at ``precision`` (fp32 / bf16).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and backend == "torch":
        raise ValueError(f"--quantize {quantize} needs --backend onnxruntime or openvino")
    run_dir = Path(run_dir)
    if backend == "torch":
        return load_generators(run_dir, epoch, names=names, flags=flags, device=device, eval_mode=eval_mode)

    if backend == "onnxruntime":
        providers = providers or default_providers(device)

    def runtime(path: str | Path, size_multiple: int | None) -> nn.Module:
        if backend == "openvino":
            return OpenVinoGenerator(path, size_multiple, precision=precision, threads=threads)
        return OnnxGenerator(path, size_multiple, providers=providers, threads=threads)

    if onnx_paths is not None:
        missing = [name for name in names if name not in onnx_paths]
        if missing:
            raise ValueError(f"no .onnx file given for {', '.join(missing)}")
        saved = run_dir / CONFIG_FILENAME
        config = TrainConfig.load(saved) if saved.exists() else (flags or TrainConfig())
        names = translator_names(config) if names is None else tuple(names)
        nets = {name: runtime(onnx_paths[name], None) for name in names}
        return LoadedGenerators(nets, config, [Path(onnx_paths[name]) for name in names])

    loaded = load_generators(run_dir, epoch, names=names, flags=flags, device="cpu")
    nets = {}
    for name, net in loaded.nets.items():
        # Ours: one checkpoint holds every network; the reference's: one .pth per network.
        sources = [p for p in loaded.source if p.stem.endswith(f"_net_{name}")] or loaded.source
        path = cached_onnx(net, run_dir, epoch, name, sources)
        if quantize == "int8":
            path = cached_int8(path, net, name, loaded.config, calibration_dataroot)
        nets[name] = runtime(path, net.size_multiple)
    return LoadedGenerators(nets, loaded.config, loaded.source)


__all__ = [
    "BACKENDS",
    "OnnxGenerator",
    "OpenVinoGenerator",
    "cached_int8",
    "cached_onnx",
    "default_providers",
    "load_backend_generators",
    "pad_to_multiple",
]
