"""Inference backends for ``cyclegan test``: the torch networks, or ONNX Runtime.

:class:`OnnxGenerator` runs a generator exported by :mod:`cyclegan.export` and behaves like the
torch generator loaded for inference: it takes an N×C×H×W tensor in [-1, 1] of any H, W,
reflect-pads to the network's multiple, runs, and crops back (the same rule as
``SizeCheckedGenerator.pad_to_multiple``). It is an ``nn.Module`` without parameters so that it
goes wherever ``translate_folder`` expects a network.

:func:`load_backend_generators` returns a run's generators for a backend. For ``onnxruntime`` it
exports each generator once to ``<run_dir>/<epoch>_net_<name>.onnx`` beside the checkpoint and
reuses that file while the checkpoint is unchanged (a ``.json`` sidecar records the checkpoint's
size and modification time and the torch version that exported it), or reads given .onnx files.
onnxruntime is an optional dependency (``pip install 'cyclegan[export]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.networks import ImageSizeError
from cyclegan.networks.generators import pad_to_multiple

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
CACHE_VERSION = 1  # bump when the exported graph changes, to invalidate cached files


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "the onnxruntime backend needs onnxruntime: pip install 'cyclegan[export]' (or onnxruntime)"
        ) from None
    return onnxruntime


def default_providers(device: torch.device | str = "cpu") -> list[str]:
    """CUDA when asked for and this onnxruntime build has it, else the CPU."""
    available = _import_onnxruntime().get_available_providers()
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxGenerator(nn.Module):
    """An exported generator run by ONNX Runtime, called like the torch generator.

    ``size_multiple``: H and W the graph needs divisible by; ``None`` reads it from the file's
    metadata (written by :func:`cyclegan.export.export_onnx`). ``threads``: ONNX Runtime's
    intra-op threads; by default torch's own count (``torch.get_num_threads()``, which follows
    ``OMP_NUM_THREADS``), so the two backends use the same cores and are compared fairly, rather
    than onnxruntime's default of every physical core.
    """

    def __init__(
        self,
        path: str | Path,
        size_multiple: int | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        ort = _import_onnxruntime()
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        options.inter_op_num_threads = 1  # one generator is a chain of layers: no parallel branches to run
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.path), options, providers=providers or default_providers()
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        if size_multiple is None:
            if "size_multiple" not in metadata:
                raise ValueError(f"{self.path} records no size_multiple: pass size_multiple=")
            size_multiple = int(metadata["size_multiple"])
        self.size_multiple = size_multiple
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        channels = model_input.shape[1]
        self.input_nc = channels if isinstance(channels, int) else None
        self.metadata = dict(metadata)

    def extra_repr(self) -> str:
        return (
            f"{self.path.name}, size_multiple={self.size_multiple}, providers={self.session.get_providers()}"
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ImageSizeError(f"{self.path.name} expects a batch N×C×H×W, got shape {tuple(x.shape)}")
        if self.input_nc is not None and x.shape[1] != self.input_nc:
            raise ImageSizeError(f"{self.path.name} takes {self.input_nc} input channel(s), got {x.shape[1]}")
        # fp32, contiguous NCHW on the CPU: what the graph was exported with (bf16 / channels_last
        # tensors from the torch side are converted here, not rejected).
        padded, height, width = pad_to_multiple(x.detach().float().cpu().contiguous(), self.size_multiple)
        (output,) = self.session.run([self.output_name], {self.input_name: padded.numpy()})
        return torch.from_numpy(output)[..., :height, :width].to(x.device)


# --- a run's generators for a backend ------------------------------------------------------------


def _fingerprint(sources: Iterable[Path], name: str, opset: int) -> dict[str, Any]:
    files = []
    for path in sources:
        stat = path.stat()
        files.append({"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {
        "cache_version": CACHE_VERSION,
        "torch": torch.__version__,
        "opset": opset,
        "name": name,
        "sources": files,
    }


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
    from cyclegan.export import DEFAULT_OPSET, export_onnx
    from cyclegan.fileio import atomic_write

    folder = _cache_dir(run_dir)
    path = folder / f"{epoch}_net_{name}.onnx"
    sidecar = path.with_suffix(".onnx.json")
    fingerprint = _fingerprint(sources, name, DEFAULT_OPSET)
    try:
        if path.exists() and json.loads(sidecar.read_text()) == fingerprint:
            return path
    except (OSError, ValueError):
        pass  # no or unreadable sidecar: export again
    log.info("exporting %s to %s for onnxruntime", name, path)
    export_onnx(net, path, net.input_nc, 1, 1, dynamic=True, metadata={"name": name})  # example: 2 multiples
    atomic_write(sidecar, json.dumps(fingerprint, indent=2))
    return path


def load_backend_generators(
    run_dir: str | Path,
    epoch: str = "latest",
    names: Iterable[str] = ("G_A", "G_B"),
    backend: str = "torch",
    flags: Any = None,
    device: torch.device | str = "cpu",
    onnx_paths: Mapping[str, str | Path] | None = None,
    providers: list[str] | None = None,
    threads: int | None = None,
):
    """A run's generators as :class:`cyclegan.translate.LoadedGenerators` for ``backend``.

    ``torch``: exactly :func:`cyclegan.translate.load_generators`. ``onnxruntime``: each generator
    as an :class:`OnnxGenerator`, from ``onnx_paths[name]`` when given (the config then comes from
    the run's ``config.json``, else ``flags``), else from the cache beside the checkpoint.
    """
    from cyclegan.config import CONFIG_FILENAME, TrainConfig
    from cyclegan.translate import LoadedGenerators, load_generators

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    run_dir, names = Path(run_dir), tuple(names)
    if backend == "torch":
        return load_generators(run_dir, epoch, names=names, flags=flags, device=device)

    providers = providers or default_providers(device)
    if onnx_paths is not None:
        missing = [name for name in names if name not in onnx_paths]
        if missing:
            raise ValueError(f"no .onnx file given for {', '.join(missing)}")
        saved = run_dir / CONFIG_FILENAME
        config = TrainConfig.load(saved) if saved.exists() else (flags or TrainConfig())
        nets = {name: OnnxGenerator(onnx_paths[name], providers=providers, threads=threads) for name in names}
        return LoadedGenerators(nets, config, [Path(onnx_paths[name]) for name in names])

    loaded = load_generators(run_dir, epoch, names=names, flags=flags, device="cpu")
    nets = {}
    for name, net in loaded.nets.items():
        # Ours: one checkpoint holds every network; the reference's: one .pth per network.
        sources = [p for p in loaded.source if p.stem.endswith(f"_net_{name}")] or loaded.source
        path = cached_onnx(net, run_dir, epoch, name, sources)
        nets[name] = OnnxGenerator(path, net.size_multiple, providers=providers, threads=threads)
    return LoadedGenerators(nets, loaded.config, loaded.source)


__all__ = [
    "BACKENDS",
    "OnnxGenerator",
    "cached_onnx",
    "default_providers",
    "load_backend_generators",
    "pad_to_multiple",
]
