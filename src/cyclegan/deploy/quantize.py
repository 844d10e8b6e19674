"""int8 post-training static quantisation of an exported ONNX generator, for CPUs without native bf16.

On AVX2-only CPUs bf16 is emulated (slower than fp32), so the fast inference path there is int8:
onnxruntime's static quantisation (``onnxruntime.quantization.quantize_static``) turns every
convolution's weights (but the first and last, which touch the pixels) into per-channel int8 and
its input activations into uint8, with activation
ranges calibrated on the run's own training inputs (:func:`calibration_inputs`: the crops the
recipe's own data set mode feeds the network). The graph keeps QuantizeLinear /
DequantizeLinear pairs around each convolution (QDQ format, which onnxruntime fuses into int8
kernels); instance norm, the residual adds and tanh stay in fp32.

The int8 file sits beside the fp32 one as ``<name>.int8.onnx`` and loads with the same
:class:`cyclegan.deploy.onnx_runtime.OnnxGenerator` (its metadata records ``quantization: int8``).
:func:`psnr` measures what quantisation costs: the int8 output against the fp32 one, in dB on the
[-1, 1] images (peak-to-peak 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from cyclegan.config import TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.data import create_dataset
from cyclegan.data.images import DatasetError
from cyclegan.networks.generators import pad_to_multiple
from cyclegan.recipes import MODELS

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8")
INT8_SUFFIX = ".int8.onnx"
DEFAULT_CALIBRATION_IMAGES = 32
QUANTIZED_OPS = ("Conv", "ConvTranspose")
SYMBOLIC_SHAPE_GAPS = ("Atanh",)  # ops onnxruntime's symbolic shape inference cannot follow


class QuantizationError(ValueError):
    """A quantisation that cannot be done as asked; the message says what to change."""


def int8_path(fp32_path: str | Path) -> Path:
    """``G_A.onnx`` → ``G_A.int8.onnx``: the naming convention the backends load by."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(fp32_path.name.removesuffix(".onnx") + INT8_SUFFIX)


def calibration_batches(
    images: Iterable[torch.Tensor], size_multiple: int, batch_size: int = 1
) -> list[torch.Tensor]:
    """N×C×H×W fp32 batches in [-1, 1], reflect-padded to the graph's multiple (as the backend does)."""
    images = [image.float() for image in images]
    return [pad_to_multiple(torch.stack(images[start : start + batch_size]), size_multiple)[0]
            for start in range(0, len(images), batch_size)]


def _reader(batches: Sequence[torch.Tensor], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class CropCalibrationReader(CalibrationDataReader):
        """Feeds the calibration batches to onnxruntime's calibrator, once each."""

        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch.numpy()}

    return CropCalibrationReader()


def quantize_int8(
    fp32_path: str | Path,
    calibration: Sequence[torch.Tensor],
    out_path: str | Path | None = None,
) -> Path:
    """Write the int8 version of the fp32 ONNX generator at ``fp32_path`` (default
    :func:`int8_path`), calibrated on ``calibration`` (batches from :func:`calibration_batches`).

    Weights: int8 per output channel (symmetric); activations: uint8 per tensor, ranges from the
    calibration batches (99.999th percentile). The first and last convolutions stay fp32. The fp32
    file's metadata is kept, plus ``quantization: int8``.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )
    except ImportError:
        raise ImportError("int8 quantisation needs onnxruntime: pip install 'cyclegan[export]'") from None
    fp32_path = Path(fp32_path)
    out_path = Path(out_path) if out_path is not None else int8_path(fp32_path)
    if not calibration:
        raise QuantizationError(f"no calibration images for {fp32_path}: give at least one training image")
    model = onnx.load(str(fp32_path))
    input_name = model.graph.input[0].name
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    with tempfile.TemporaryDirectory() as workdir:
        prepared = Path(workdir) / "prepared.onnx"
        quantized = Path(workdir) / "int8.onnx"
        # Shape inference and constant folding first, as onnxruntime recommends before quantising.
        # onnxruntime's symbolic shape inference has no rule for Atanh (the skip of a --residual_output
        # generator): it fails, leaving temporary files in the working folder. ONNX's own shape
        # inference, which the pre-processing also runs, covers these graphs.
        no_symbolic_rule = any(node.op_type in SYMBOLIC_SHAPE_GAPS for node in model.graph.node)
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=no_symbolic_rule)
        convolutions = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type in QUANTIZED_OPS]
        # The quantiser warns once per ConvTranspose bias that "axis 1 is out of range" for its 1-D
        # bias (it then quantises it per tensor, which is right); not something a user can act on.
        # Its histogram calibrator also prints progress to stdout; ours says what it did in one line.
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(
                    str(prepared),
                    str(quantized),
                    _reader(calibration, input_name),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                    # The image-facing layers stay fp32: quantising the input image to 256 levels and the
                    # last layer's output, which becomes the pixels, cost the most PSNR for little time.
                    nodes_to_exclude=[convolutions[0], convolutions[-1]] if len(convolutions) > 2 else [],
                    # Ranges from the 99.999th percentile, not the extreme: one outlier pixel must not
                    # stretch a layer's 256 levels.
                    calibrate_method=CalibrationMethod.Percentile,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
        finally:
            root.setLevel(level)
        result = onnx.load(str(quantized))
    del result.metadata_props[:]
    for key, value in {**metadata, "quantization": "int8", "calibration_batches": str(len(calibration))}.items():
        entry = result.metadata_props.add()
        entry.key, entry.value = key, value
    return atomic_write(out_path, result.SerializeToString())


def psnr(produced: torch.Tensor, expected: torch.Tensor, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of ``produced`` against ``expected``; images in [-1, 1] have a peak-to-peak of 2."""
    mse = float(((produced.float() - expected.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(torch.log10(torch.tensor(peak_to_peak**2 / mse)))


def calibration_inputs(config: TrainConfig, name: str, dataroot: str | Path | None = None,
                       limit: int = DEFAULT_CALIBRATION_IMAGES) -> tuple[list[torch.Tensor], str]:
    """Up to ``limit`` inputs of network ``name`` as training feeds it (C×crop×crop, the network's own
    input: a picture in [-1, 1], or colorization's L channel), read by the recipe's own data set mode
    from ``dataroot`` (default the run's) with its crops, and where they came from.

    The recipe says which domain feeds ``name`` (its ``directions``), and its data set mode where
    that domain's images are: ``trainA`` / ``trainB`` for unpaired data, the A|B files of ``train/``
    for paired data, the pictures of ``train/`` for colorization.
    """
    recipe = MODELS.get(config.model.model)
    direction = next((d for d in recipe.directions if d.net == name), recipe.directions[0])
    source = direction.target if config.data.direction == "BtoA" else direction.source  # the loader's key
    data = dataclasses.replace(config.data, dataroot=str(dataroot or config.data.dataroot), phase="train",
                               no_flip=True, serial_batches=True, max_dataset_size=limit)
    try:
        dataset = create_dataset(data, seed=0)
    except (DatasetError, FileNotFoundError) as error:
        raise QuantizationError(
            f"calibration images for {name} come from the training data of --dataset_mode {data.dataset_mode} "
            f"in {data.dataroot}, which cannot be read ({error}); pass --dataroot pointing at the training set, "
            f"or export without --quantize") from None
    count = min(limit, len(dataset))
    inputs = [dataset[(0, index)][source] for index in range(count)]
    return inputs, f"{data.dataroot} ({data.dataset_mode}, {source} side of train)"


__all__ = [
    "INT8_SUFFIX",
    "QUANTIZATIONS",
    "QuantizationError",
    "calibration_batches",
    "calibration_inputs",
    "int8_path",
    "psnr",
    "quantize_int8",
]
