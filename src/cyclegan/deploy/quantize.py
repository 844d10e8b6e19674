"""int8 post-training static quantisation of an exported ONNX generator, for CPUs without native bf16.

On AVX2-only CPUs bf16 is emulated (slower than fp32), so the fast inference path there is int8:
onnxruntime's static quantisation (``onnxruntime.quantization.quantize_static``) turns every
convolution's weights (but the first and last, which touch the pixels) into per-channel int8 and
its input activations into uint8, with activation
ranges calibrated on the run's own training images (:class:`CropCalibrationReader`: crops of
``<dataroot>/train<A|B>``, preprocessed as the test phase does). The graph keeps QuantizeLinear /
DequantizeLinear pairs around each convolution (QDQ format, which onnxruntime fuses into int8
kernels); instance norm, the residual adds and tanh stay in fp32.

The int8 file sits beside the fp32 one as ``<name>.int8.onnx`` and loads with the same
:class:`cyclegan.deploy.onnx_runtime.OnnxGenerator` (its metadata records ``quantization: int8``).
:func:`psnr` measures what quantisation costs: the int8 output against the fp32 one, in dB on the
[-1, 1] images (peak-to-peak 2).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from cyclegan.core.fileio import atomic_write
from cyclegan.networks.generators import pad_to_multiple

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8")
INT8_SUFFIX = ".int8.onnx"
DEFAULT_CALIBRATION_IMAGES = 32
QUANTIZED_OPS = ("Conv", "ConvTranspose")


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


def training_crops(
    folder: str | Path, crop_size: int, load_size: int, channels: int = 3, limit: int = DEFAULT_CALIBRATION_IMAGES
) -> list[torch.Tensor]:
    """Up to ``limit`` C×crop×crop tensors in [-1, 1] from ``folder``: resized so the shorter side is
    ``load_size``, centre-cropped (the deterministic version of the training crops), evenly spaced
    over the sorted file list so a large set is sampled end to end."""
    from torchvision.transforms import v2

    from cyclegan.data.images import list_images, load_image

    paths, _ = list_images(folder)
    step = max(1, len(paths) // max(1, limit))
    chosen = paths[::step][:limit]
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(load_size, antialias=True),
            v2.CenterCrop(crop_size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    return [transform(load_image(path, channels)) * 2 - 1 for path in chosen]


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
        quant_pre_process(str(fp32_path), str(prepared))
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


def training_folder(dataroot: str | Path, name: str, direction: str = "AtoB") -> Path:
    """The folder that feeds generator ``name``: ``G_A`` (A→B) reads trainA, ``G_B`` trainB; ``G``
    (pix2pix, CUT) reads the domain its direction starts from."""
    source = {"G_A": "A", "G_B": "B"}.get(name, "A" if direction == "AtoB" else "B")
    folder = Path(dataroot) / f"train{source}"
    if not folder.is_dir():
        raise QuantizationError(
            f"calibration images for {name} are read from {folder}, which does not exist; pass "
            f"--dataroot pointing at the training set (with trainA / trainB), or export without --quantize"
        )
    return folder


__all__ = [
    "INT8_SUFFIX",
    "QUANTIZATIONS",
    "QuantizationError",
    "calibration_batches",
    "int8_path",
    "psnr",
    "quantize_int8",
    "training_crops",
    "training_folder",
]
