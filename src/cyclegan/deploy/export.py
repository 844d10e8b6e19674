"""Export trained generators for inference outside this package: ONNX and torch.export (``.pt2``).

What is exported is the generator's plain layer stack (``SizeCheckedGenerator.body``), not its
``forward``: that one checks the size in Python and optionally reflect-pads to the network's
multiple, and a traced graph would freeze whichever branch the example input took. The exported
graph therefore needs H and W divisible by the generator's ``size_multiple`` (4 for the ResNets,
128 / 256 for the U-Nets); :class:`cyclegan.deploy.backends.OnnxGenerator` pads and crops around it, as
``cyclegan test`` does for the torch networks. Batch, height and width are dynamic axes; the
multiple is written into the file (ONNX metadata ``size_multiple``, the ``.pt2`` archive's extra file
``cyclegan.json``) so a reader needs nothing else.

Both formats start from one ``torch.export`` program, PyTorch's successor to TorchScript: ``.pt2``
is that program saved (``torch.export.load(path).module()`` runs it), ONNX is it translated by the
torch.export-based exporter (``torch.onnx.export(..., dynamo=True)``), which implements opset 18 and
up. Every file is written to a temporary name and renamed, so a reader never sees half a model.

``--quantize int8`` adds an int8 ONNX file per generator (:mod:`cyclegan.deploy.quantize`), calibrated on
the run's training images, for CPUs without native bf16.

``run_export_model`` is the engine of ``cyclegan export``; it checks each file against the torch network.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.config import CONFIG_FILENAME, TrainConfig
from cyclegan.core.checkpoint import CHECKPOINT_SUFFIX, export_reference, inference_weights, load_checkpoint
from cyclegan.core.fileio import atomic_write
from cyclegan.deploy.onnx_runtime import OnnxGenerator
from cyclegan.deploy.quantize import (
    DEFAULT_CALIBRATION_IMAGES,
    QUANTIZATIONS,
    calibration_batches,
    calibration_inputs,
    psnr,
    quantize_int8,
)
from cyclegan.networks.generators import pad_to_multiple
from cyclegan.recipes import create_model
from cyclegan.recipes.loading import load_generators

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torch_export", "reference")
SUFFIXES = {"onnx": ".onnx", "torch_export": ".pt2"}
DEFAULT_OPSET = 18  # the lowest opset the torch.export-based exporter implements
PT2_METADATA = "cyclegan.json"


class ExportError(ValueError):
    """An export that cannot be done as asked; the message says what to change."""


class _Body(nn.Module):
    """The generator's layers without the Python size check / padding branch of its forward."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.body(x)


def _unwrap(net: nn.Module) -> nn.Module:
    # torch.compile keeps the module in `_orig_mod`, DDP in `module`.
    while True:
        inner = getattr(net, "_orig_mod", None)
        if inner is None:
            inner = getattr(net, "module", None)
        if not isinstance(inner, nn.Module):
            return net
        net = inner


def _plain_generator(net: nn.Module) -> nn.Module:
    """A CPU fp32 eval-mode copy: export must not move, cast or switch the caller's network."""
    net = _unwrap(net)
    if not hasattr(net, "body") or not hasattr(net, "size_multiple"):
        raise ExportError(f"{type(net).__name__} is not one of our generators (no body / size_multiple)")
    plain = copy.deepcopy(net).float().cpu().eval()
    return plain.to(memory_format=torch.contiguous_format)


def example_size(multiple: int, height: int, width: int, dynamic: bool) -> tuple[int, int]:
    """H, W of the example input: rounded up to the multiple, and at least twice it when dynamic.

    torch.export specialises a dimension whose example value is 1 (here: H / multiple == 1), so a
    dynamic export traces with at least two multiples per side.
    """
    height, width = (max(multiple, -(-side // multiple) * multiple) for side in (height, width))
    if dynamic:
        height, width = max(height, 2 * multiple), max(width, 2 * multiple)
    return height, width


def _metadata(generator: nn.Module, extra: dict[str, Any] | None) -> dict[str, str]:
    meta = {
        "producer": "cyclegan",
        "size_multiple": str(generator.size_multiple),
        "input_nc": str(generator.input_nc),
        "value_range": "[-1, 1]",
        "layout": "NCHW",
        "note": f"H and W must be multiples of {generator.size_multiple}: reflect-pad and crop back",
    }
    meta.update({key: str(value) for key, value in (extra or {}).items()})
    return meta


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    # Tracing warns once per instance-norm layer that its "spatial size is 1" check reads a tensor
    # as a Python bool (harmless: that check only raises); nothing the user can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*instance_norm.*")
        yield


def _program(
    net: nn.Module, input_nc: int | None, height: int, width: int, dynamic: bool
) -> tuple[nn.Module, torch.export.ExportedProgram]:
    """The plain generator copy and its ``torch.export`` program (batch, H and W symbolic when dynamic)."""
    generator = _plain_generator(net)
    input_nc = generator.input_nc if input_nc is None else input_nc
    if input_nc != generator.input_nc:
        raise ExportError(f"the generator takes {generator.input_nc} input channel(s), not {input_nc}")
    multiple = generator.size_multiple
    h, w = example_size(multiple, height, width, dynamic)
    # Batch 2 in the example for the same reason as H, W ≥ 2 multiples: a 1 would be specialised.
    example = torch.rand(2 if dynamic else 1, input_nc, h, w) * 2 - 1
    dynamic_shapes = None
    if dynamic:
        Dim = torch.export.Dim
        # H = multiple × h' keeps the divisibility in the graph's symbolic shapes; h' ≥ 2 because a
        # ResNet's innermost reflection pad needs its input wider than the pad.
        dynamic_shapes = {
            "x": {0: Dim("batch", min=1), 2: multiple * Dim("h", min=2), 3: multiple * Dim("w", min=2)}
        }
    with _quiet_tracing(), torch.no_grad():
        program = torch.export.export(_Body(generator).eval(), (example,), dynamic_shapes=dynamic_shapes)
    return generator, program


def export_onnx(
    net: nn.Module,
    path: str | Path,
    input_nc: int | None = None,
    height: int = 256,
    width: int = 256,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (a generator) as an ONNX model with input ``input`` and output ``output``.

    ``dynamic``: batch, height and width are symbolic (height and width as multiples of the
    generator's ``size_multiple``); otherwise the file takes only the example's shape. ``height`` /
    ``width`` give the example input (rounded up to the multiple). ``opset``: 18 or newer.
    """
    if opset < DEFAULT_OPSET:
        raise ExportError(
            f"opset {opset} is not supported: the torch.export-based ONNX exporter writes opset "
            f"{DEFAULT_OPSET} and newer (ONNX Runtime 1.14+ reads it); pass --opset {DEFAULT_OPSET} or more"
        )
    generator, program = _program(net, input_nc, height, width, dynamic)
    with _quiet_tracing(), torch.no_grad():
        onnx_program = torch.onnx.export(
            program, dynamo=True, opset_version=opset, input_names=["input"], output_names=["output"],
            verbose=False,
        )
    onnx_program.model.metadata_props.update(_metadata(generator, metadata))
    # Serialised in memory (not ONNXProgram.save) so that atomic_write can do the rename; a
    # generator is far below protobuf's 2 GB limit.
    return atomic_write(Path(path), onnx_program.model_proto.SerializeToString())


def export_program(
    net: nn.Module,
    path: str | Path,
    input_nc: int | None = None,
    height: int = 256,
    width: int = 256,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (a generator) as a ``torch.export`` archive (``.pt2``) with dynamic batch and
    H, W (multiples of the generator's multiple, which the extra file ``cyclegan.json`` records)."""
    generator, program = _program(net, input_nc, height, width, dynamic=True)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={PT2_METADATA: json.dumps(_metadata(generator, metadata))})
    return atomic_write(Path(path), buffer.getvalue())


def load_program(path: str | Path) -> tuple[nn.Module, dict[str, str]]:
    """A ``.pt2`` file written by :func:`export_program` as a callable module, and its metadata."""
    extra = {PT2_METADATA: ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra[PT2_METADATA] or "{}")


@torch.no_grad()
def check_parity(
    net: nn.Module,
    exported_path: str | Path,
    backend: str | None = None,
    input: torch.Tensor | None = None,
) -> float:
    """Max |exported(input) − net(input)| in the images' [-1, 1] units, both in fp32 on the CPU.

    ``backend``: ``onnxruntime`` or ``torch_export`` (default: from the suffix, .onnx / .pt2).
    ``input``: N×C×H×W in [-1, 1], any H, W (both sides pad to the multiple and crop back);
    default one random image at twice the generator's multiple.
    """
    exported_path = Path(exported_path)
    backend = backend or {".onnx": "onnxruntime", ".pt2": "torch_export"}.get(exported_path.suffix)
    if backend is None:
        raise ExportError(f"cannot tell the backend of {exported_path} from its suffix: pass "
                          f"backend='onnxruntime' or 'torch_export'")
    generator = _plain_generator(net)
    generator.pad_to_multiple = True
    if input is None:
        side = 2 * generator.size_multiple
        input = (
            torch.rand(1, generator.input_nc, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
        )
    input = input.detach().float().cpu()
    expected = generator(input)
    if backend == "onnxruntime":
        # One thread: a parity check should not compete with the caller for cores.
        produced = OnnxGenerator(exported_path, generator.size_multiple, threads=1)(input)
    elif backend == "torch_export":
        module, _ = load_program(exported_path)
        padded, height, width = pad_to_multiple(input, generator.size_multiple)
        produced = module(padded)[..., :height, :width]
    else:
        raise ExportError(f"unknown backend {backend!r}; known: onnxruntime, torch_export")
    if produced.shape != expected.shape:
        raise ExportError(
            f"{exported_path} gave shape {tuple(produced.shape)}, torch {tuple(expected.shape)}"
        )
    return float((produced.float() - expected).abs().max())


def _second_size(multiple: int, height: int, width: int) -> tuple[int, int]:
    """Another H × W (not square, not the export's) to prove the dynamic axes."""
    return (height - multiple if height - multiple >= 2 * multiple else height + multiple), width + multiple


def _export_and_check(net: nn.Module, name: str, path: Path, fmt: str, height: int, width: int, opset: int,
                      meta: dict[str, Any], result: dict[str, Any]) -> None:
    """Write ``net`` as ``path`` and record its file, its parity with torch at the export size and at
    batch 2 of another size (the dynamic axes), and both sizes in ``result``."""
    multiple = net.size_multiple
    h, w = example_size(multiple, height, width, dynamic=False)
    h2, w2 = _second_size(multiple, h, w)
    if fmt == "onnx":
        export_onnx(net, path, net.input_nc, h, w, dynamic=True, opset=opset, metadata=meta)
    else:
        export_program(net, path, net.input_nc, h, w, metadata=meta)
    rng = torch.Generator().manual_seed(0)
    first = torch.rand(1, net.input_nc, h, w, generator=rng) * 2 - 1
    second = torch.rand(2, net.input_nc, h2, w2, generator=rng) * 2 - 1
    result["files"][name] = str(path)
    result["parity"][name] = check_parity(net, path, input=first)
    result["parity_dynamic"][name] = check_parity(net, path, input=second)
    result["sizes"][name] = {"export": [1, net.input_nc, h, w], "dynamic": [2, net.input_nc, h2, w2]}


def _add_int8(path: Path, name: str, multiple: int, config: TrainConfig, dataroot: str | Path | None,
              calibration_images: int, result: dict[str, Any]) -> None:
    """Quantise the ONNX file ``path`` to int8, calibrated on the generator's training inputs, and
    record the int8 file, its PSNR against the fp32 ONNX output and both files' sizes in ``result``."""
    crops, source = calibration_inputs(config, name, dataroot, calibration_images)
    batches = calibration_batches(crops, multiple)
    quantized = quantize_int8(path, batches)
    fp32_session = OnnxGenerator(path, multiple, threads=1)
    int8_session = OnnxGenerator(quantized, multiple, threads=1)
    scores = [psnr(int8_session(batch), fp32_session(batch)) for batch in batches]
    result.setdefault("int8_files", {})[name] = str(quantized)
    result.setdefault("int8_psnr", {})[name] = sum(scores) / len(scores)
    result.setdefault("bytes", {})[name] = path.stat().st_size
    result.setdefault("int8_bytes", {})[name] = quantized.stat().st_size
    result["calibration"] = {"source": source, "images": len(crops)}


def run_export_model(
    run_dir: str | Path,
    epoch: str = "latest",
    fmt: str = "onnx",
    out_dir: str | Path | None = None,
    height: int = 256,
    width: int = 256,
    names: Iterable[str] | None = None,
    opset: int = DEFAULT_OPSET,
    flags: Any = None,
    quantize: str = "none",
    dataroot: str | Path | None = None,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> dict[str, Any]:
    """Export a run's networks; the engine of ``cyclegan export``.

    ``fmt``: ``onnx`` (``<name>.onnx``), ``torch_export`` (``<name>.pt2``), or ``reference`` (every
    network as the reference's ``latest_net_<name>.pth``, plus ``config.json``). For onnx /
    torch_export the generators (``names``, default the recipe's directions: ``G_A`` / ``G_B`` for
    CycleGAN, ``G`` for pix2pix) come from :func:`cyclegan.recipes.loading.load_generators` (our
    checkpoint or the reference's .pth files), and the result holds per generator the max
    absolute difference to torch, in the images' [-1, 1] units, at ``1×C×height×width``
    (``parity``) and at batch 2 of another size (``parity_dynamic``, which proves the dynamic
    axes). Print it with :func:`format_export_summary`.

    ``quantize="int8"`` (onnx only): each generator is also written as ``<name>.int8.onnx``, statically
    quantised with activation ranges calibrated on up to ``calibration_images`` of its training inputs,
    read by the recipe's own data set mode (``dataroot`` defaults to the run's); the result then
    holds ``int8_files``, ``int8_psnr`` (dB of the int8 output against the fp32 ONNX output on those
    crops) and both files' sizes in bytes (``bytes`` / ``int8_bytes``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and fmt != "onnx":
        raise ExportError(f"--quantize {quantize} needs --format onnx (onnxruntime runs the int8 graph)")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "export"
    if fmt == "reference":
        return _export_reference_run(run_dir, epoch, out_dir)

    loaded = load_generators(run_dir, epoch, names=names, flags=flags, device="cpu")
    result: dict[str, Any] = {
        "format": fmt,
        "out_dir": str(out_dir),
        "files": {},
        "parity": {},
        "parity_dynamic": {},
        "sizes": {},
    }
    if fmt == "onnx":
        result["opset"] = opset
    for name, net in loaded.nets.items():
        meta = {
            "name": name,
            "netG": loaded.config.model.netG,
            "source": ", ".join(p.name for p in loaded.source),
        }
        path = out_dir / f"{name}{SUFFIXES[fmt]}"
        _export_and_check(net, name, path, fmt, height, width, opset, meta, result)
        if quantize == "int8":
            _add_int8(path, name, net.size_multiple, loaded.config, dataroot, calibration_images, result)
    atomic_write(out_dir / CONFIG_FILENAME, loaded.config.to_json())
    return result


def _export_reference_run(run_dir: Path, epoch: str, out_dir: Path) -> dict[str, Any]:
    """Every network of our checkpoint as the reference's ``latest_net_<name>.pth``."""
    state = load_checkpoint(run_dir / f"{epoch}{CHECKPOINT_SUFFIX}")
    config = TrainConfig.from_dict(state["config"])
    if config.model.residual_output:
        raise ExportError(f"{run_dir} was trained with --residual_output, which the reference's generators do "
                          f"not compute (their .pth would load and translate wrongly); export --format onnx "
                          f"or torch_export instead")
    model = create_model(config, is_train=True)
    model.build_from_state(state["nets"])  # networks shaped by the data (CUT's F)
    weights = inference_weights(state)  # the generators' average where the run kept one
    for name, net in model.nets.items():
        net.load_state_dict(weights[name], strict=True)
    written = export_reference(dict(model.nets.items()), out_dir, epoch="latest")
    atomic_write(out_dir / CONFIG_FILENAME, config.to_json())
    return {
        "format": "reference",
        "out_dir": str(out_dir),
        "files": {p.stem.split("_net_")[-1]: str(p) for p in written},
        "parity": {},
        "parity_dynamic": {},
        "sizes": {},
    }


def format_export_summary(result: dict[str, Any]) -> str:
    """One line per written file, with its parity figures when measured."""
    lines = []
    for name, path in result["files"].items():
        line = str(path)
        if name in result.get("parity", {}):
            sizes = result["sizes"][name]
            line += (
                f"  max |Δ| vs torch: {result['parity'][name]:.2e} at {'×'.join(map(str, sizes['export']))}, "
                f"{result['parity_dynamic'][name]:.2e} at {'×'.join(map(str, sizes['dynamic']))}"
            )
        lines.append(line)
    for name, path in result.get("int8_files", {}).items():
        lines.append(
            f"{path}  int8: PSNR {result['int8_psnr'][name]:.1f} dB vs the fp32 ONNX output on "
            f"{result['calibration']['images']} training crop(s); {result['int8_bytes'][name] / 1e6:.2f} MB "
            f"vs {result['bytes'][name] / 1e6:.2f} MB fp32"
        )
    return "\n".join(lines)


__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_FORMATS",
    "ExportError",
    "check_parity",
    "example_size",
    "export_onnx",
    "export_program",
    "format_export_summary",
    "load_program",
    "run_export_model",
]
