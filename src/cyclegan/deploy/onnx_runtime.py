"""ONNX Runtime as a generator: :class:`OnnxGenerator` runs a file exported by :mod:`cyclegan.deploy.export`.

It behaves like the torch generator loaded for inference: it takes an N×C×H×W tensor in [-1, 1] of
any H, W, reflect-pads to the network's multiple, runs, and crops back (the same rule as
``SizeCheckedGenerator.pad_to_multiple``). It is an ``nn.Module`` without parameters so that it goes
wherever ``translate_folder`` expects a network. Its own module so that the import graph runs one
way: ``backends`` → ``export`` → ``onnx_runtime``. onnxruntime is an optional dependency
(``pip install 'cyclegan[export]'``), imported only when a session is made.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cyclegan.networks import ImageSizeError
from cyclegan.networks.generators import pad_to_multiple  # the one padding rule


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


def runtime_input(x: torch.Tensor, path: Path, input_nc: int | None, size_multiple: int
                  ) -> tuple[torch.Tensor, int, int]:
    """A batch checked against an exported graph ``path`` and made what it was exported with: fp32,
    contiguous NCHW on the CPU (bf16 / channels-last tensors from the torch side are converted, not
    rejected), padded to the graph's size multiple; with the height and width to crop the output to."""
    if x.dim() != 4:
        raise ImageSizeError(f"{path.name} expects a batch N×C×H×W, got shape {tuple(x.shape)}")
    if input_nc is not None and x.shape[1] != input_nc:
        raise ImageSizeError(f"{path.name} takes {input_nc} input channel(s), got {x.shape[1]}")
    return pad_to_multiple(x.detach().float().cpu().contiguous(), size_multiple)


class OnnxGenerator(nn.Module):
    """An exported generator run by ONNX Runtime, called like the torch generator.

    ``size_multiple``: H and W the graph needs divisible by; ``None`` reads it from the file's
    metadata (written by :func:`cyclegan.deploy.export.export_onnx`). ``threads``: ONNX Runtime's
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
        padded, height, width = runtime_input(x, self.path, self.input_nc, self.size_multiple)
        (output,) = self.session.run([self.output_name], {self.input_name: padded.numpy()})
        return torch.from_numpy(output)[..., :height, :width].to(x.device)


__all__ = ["OnnxGenerator", "default_providers", "pad_to_multiple"]
