"""OpenVINO as a generator: :class:`OpenVinoGenerator` runs a file exported by :mod:`cyclegan.deploy.export`.

OpenVINO is Intel's CPU runtime: it reads the same ONNX file the onnxruntime backend runs (the fp32
export, or its int8 QDQ sibling from :mod:`cyclegan.deploy.quantize`, which it turns into int8
kernels), and computes in bf16 where the CPU does natively (AVX-512 BF16, AMX) when asked to with its
``INFERENCE_PRECISION_HINT``.

Like :class:`cyclegan.deploy.onnx_runtime.OnnxGenerator` it behaves as the torch generator loaded for
inference: an N×C×H×W tensor in [-1, 1] of any H, W is reflect-padded to the network's multiple,
run, and cropped back. The graph is compiled for each input shape it meets (a static shape lets the
CPU plugin pick its kernels for it; compiling takes a fraction of one call) and the last few
compiled shapes are kept, so a folder or a video of one size compiles once.

openvino is an optional dependency (``pip install 'cyclegan[openvino]'``), imported only when a
generator is made.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.deploy.onnx_runtime import runtime_input

OPENVINO_PRECISIONS = ("fp32", "bf16")
HINTS = {"fp32": "f32", "bf16": "bf16"}
COMPILED_SHAPES = 4  # compiled input shapes kept: a folder of a few sizes compiles each once


def import_openvino() -> Any:
    """The ``openvino`` module, or an ImportError that names the extra to install."""
    try:
        import openvino
    except ImportError:
        raise ImportError(
            "the openvino backend needs OpenVINO: pip install 'cyclegan[openvino]' (or openvino)"
        ) from None
    return openvino


def openvino_has_native_bf16() -> bool:
    """True when OpenVINO's CPU plugin computes bf16 natively here (it lists BF16 among its
    optimisation capabilities); elsewhere a bf16 hint runs in fp32."""
    core = import_openvino().Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _size_multiple_from_onnx(path: Path) -> int | None:
    # OpenVINO does not carry ONNX metadata_props over; read them with onnx (present with the export extra).
    try:
        import onnx
    except ImportError:
        return None
    metadata = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
    return int(metadata["size_multiple"]) if "size_multiple" in metadata else None


class OpenVinoGenerator(nn.Module):
    """An exported generator run by OpenVINO on the CPU, called like the torch generator.

    ``onnx_path``: the ONNX file (fp32, or an int8 QDQ file). ``size_multiple``: H and W the graph
    needs divisible by; ``None`` reads it from the file's metadata. ``precision``: ``fp32`` or
    ``bf16`` (OpenVINO's inference-precision hint; bf16 where the CPU lacks it runs as fp32).
    ``threads``: OpenVINO's inference threads; by default torch's own count, so that backends are
    compared on the same cores.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        size_multiple: int | None = None,
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(OPENVINO_PRECISIONS)}")
        openvino = import_openvino()
        self.path = Path(onnx_path)
        self.precision = precision
        self.core = openvino.Core()
        self.model = self.core.read_model(str(self.path))
        if size_multiple is None:
            size_multiple = _size_multiple_from_onnx(self.path)
            if size_multiple is None:
                raise ValueError(f"{self.path} records no size_multiple: pass size_multiple=")
        self.size_multiple = size_multiple
        channels = self.model.inputs[0].get_partial_shape()[1]
        self.input_nc = channels.get_length() if channels.is_static else None
        self.config = {
            "INFERENCE_PRECISION_HINT": HINTS[precision],
            "INFERENCE_NUM_THREADS": threads if threads is not None else torch.get_num_threads(),
            # One picture at a time, as fast as possible: one stream using every thread given.
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def extra_repr(self) -> str:
        return f"{self.path.name}, size_multiple={self.size_multiple}, precision={self.precision}"

    def _request(self, shape: tuple[int, ...]) -> Any:
        """An infer request of the graph compiled for ``shape`` (compiled on first use, kept LRU)."""
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        self.model.reshape({0: list(shape)})
        request = self.core.compile_model(self.model, "CPU", self.config).create_infer_request()
        self._compiled[shape] = request
        while len(self._compiled) > COMPILED_SHAPES:
            self._compiled.popitem(last=False)
        return request

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, height, width = runtime_input(x, self.path, self.input_nc, self.size_multiple)
        request = self._request(tuple(padded.shape))
        request.infer({0: padded.numpy()})
        # The request reuses its output buffer on the next call: copy it out.
        output = torch.from_numpy(request.get_output_tensor(0).data.copy())
        return output[..., :height, :width].to(x.device)


__all__ = ["OPENVINO_PRECISIONS", "OpenVinoGenerator", "import_openvino", "openvino_has_native_bf16"]
