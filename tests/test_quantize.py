"""int8 static quantisation of an exported generator: quality against fp32, size, and the plumbing
(``cyclegan export --quantize int8``, the onnxruntime backend's int8 cache, clear errors).

A small random-weights ResNet (ngf 16, 64 px) quantises in about a second; the fast tests use it with
random calibration images, the slow ones the session's tiny trained run and its training folders.
"""

from __future__ import annotations

import pytest
import torch

from cyclegan.config import DataConfig, TrainConfig
from cyclegan.networks import define_G
from cyclegan.recipes import default_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from cyclegan.deploy.backends import OnnxGenerator, load_backend_generators  # noqa: E402
from cyclegan.deploy.export import ExportError, export_onnx, format_export_summary, run_export_model  # noqa: E402
from cyclegan.deploy.quantize import (  # noqa: E402
    QuantizationError,
    calibration_batches,
    calibration_inputs,
    int8_path,
    psnr,
    quantize_int8,
)

PSNR_BAR_DB = 30.0  # int8 vs fp32 on a random-weights generator; the goal for trained ones is 35


def images(batch: int, side: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_psnr_of_known_errors():
    zeros = torch.zeros(1, 3, 8, 8)
    assert psnr(zeros, zeros) == float("inf")
    # a uniform error of 0.02 on a peak-to-peak of 2: 10·log10(4 / 0.0004) = 40 dB
    assert psnr(zeros + 0.02, zeros) == pytest.approx(40.0, abs=1e-4)


def test_int8_path_convention():
    assert int8_path("out/G_A.onnx").as_posix() == "out/G_A.int8.onnx"


def test_calibration_batches_pad_to_the_multiple():
    crops = [torch.zeros(3, 30, 30) for _ in range(3)]
    batches = calibration_batches(crops, size_multiple=4, batch_size=2)
    assert [tuple(b.shape) for b in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]


@pytest.mark.slow
def test_int8_generator_is_close_to_fp32_and_smaller(tmp_path):
    import onnx

    torch.manual_seed(0)
    net = define_G(3, 3, 16, "resnet_6blocks", norm="instance")
    fp32 = export_onnx(net, tmp_path / "G.onnx", 3, 64, 64, metadata={"name": "G"})
    int8 = quantize_int8(fp32, calibration_batches(images(8, 64, seed=1), 4))
    assert int8 == tmp_path / "G.int8.onnx"
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights: about a quarter
    graph = onnx.load(str(int8)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    producers = {output: node.op_type for node in graph.node for output in node.output}
    convolution_inputs = [producers.get(node.input[0], "graph input") for node in graph.node
                          if node.op_type in ("Conv", "ConvTranspose")]
    # the image-facing first and last convolutions stay fp32; the ones between run on int8 inputs
    assert convolution_inputs[0] != "DequantizeLinear" and convolution_inputs[-1] != "DequantizeLinear"
    assert all(kind == "DequantizeLinear" for kind in convolution_inputs[1:-1])

    fp32_session, int8_session = OnnxGenerator(fp32, threads=1), OnnxGenerator(int8, threads=1)
    assert int8_session.metadata["quantization"] == "int8" and int8_session.metadata["name"] == "G"
    held_out = images(2, 64, seed=2)  # not a calibration image
    expected, produced = fp32_session(held_out), int8_session(held_out)
    assert produced.shape == expected.shape
    assert psnr(produced, expected) >= PSNR_BAR_DB
    assert psnr(produced, expected) < 80  # it is quantised: not the fp32 graph again
    # dynamic sizes still work after quantisation (a size that needs padding)
    assert int8_session(images(1, 50, seed=3)).shape == (1, 3, 50, 50)


@pytest.mark.slow
def test_quantize_without_calibration_is_a_clear_error(tmp_path):
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    fp32 = export_onnx(net, tmp_path / "G.onnx", 3, 16, 16)
    with pytest.raises(QuantizationError, match="no calibration images"):
        quantize_int8(fp32, [])


def test_missing_training_data_is_a_clear_error(tmp_path):
    config = default_config("pix2pix", data=DataConfig(dataroot=str(tmp_path)))
    with pytest.raises(QuantizationError, match=r"--dataset_mode aligned.*cannot be read.*--dataroot"):
        calibration_inputs(config, "G")


def test_quantize_needs_onnx_format(tmp_path):
    with pytest.raises(ExportError, match="needs --format onnx"):
        run_export_model(tmp_path, fmt="torch_export", quantize="int8")
    with pytest.raises(ValueError, match="needs --backend onnxruntime"):
        load_backend_generators(tmp_path, backend="torch", quantize="int8")


@pytest.mark.slow
def test_export_quantize_int8_on_the_runs_training_images(trained_run, tmp_path):
    checkpoints, data = trained_run.checkpoints, trained_run.data
    config = TrainConfig.load(checkpoints / "run" / "config.json")
    crops, _ = calibration_inputs(config, "G_B", data, limit=2)
    crop = config.data.crop_size
    assert len(crops) == 2 and crops[0].shape == (3, crop, crop) and -1 <= float(crops[0].min()) <= float(crops[0].max()) <= 1
    result = run_export_model(
        checkpoints / "run", "latest", "onnx", tmp_path / "onnx", height=32, width=32, quantize="int8", dataroot=data
    )
    for name in ("G_A", "G_B"):
        assert (tmp_path / "onnx" / f"{name}.int8.onnx").exists()
        assert result["int8_bytes"][name] < result["bytes"][name]
        assert result["int8_psnr"][name] >= PSNR_BAR_DB
    assert "int8: PSNR" in format_export_summary(result)


@pytest.mark.slow
def test_onnxruntime_backend_caches_the_int8_graph(trained_run):
    run_dir = trained_run.checkpoints / "run"
    loaded = load_backend_generators(
        run_dir, names=("G_A",), backend="onnxruntime", threads=1, quantize="int8",
        calibration_dataroot=trained_run.data,
    )
    session = loaded.nets["G_A"]
    assert session.path.name == "latest_net_G_A.int8.onnx" and session.metadata["quantization"] == "int8"
    stamp = session.path.stat().st_mtime_ns
    again = load_backend_generators(
        run_dir, names=("G_A",), backend="onnxruntime", threads=1, quantize="int8",
        calibration_dataroot=trained_run.data,
    )
    assert again.nets["G_A"].path.stat().st_mtime_ns == stamp  # reused, not quantised again
    x = images(1, 16, seed=4)
    assert again.nets["G_A"](x).shape == x.shape


@pytest.mark.slow
def test_cli_export_and_test_with_int8(trained_run, tmp_path, capsys):
    from cyclegan.cli import main

    common = ["--name", "run", "--checkpoints_dir", str(trained_run.checkpoints)]
    assert main(["export", *common, "--format", "onnx", "--quantize", "int8", "--out", str(tmp_path / "x"),
                 "--height", "32", "--width", "32", "--calibration_images", "2"]) == 0
    out = capsys.readouterr().out
    assert "G_A.int8.onnx  int8: PSNR" in out and "on 2 training crop(s)" in out
    assert main(["test", "--dataroot", str(trained_run.data), *common, "--results_dir", str(tmp_path / "r"),
                 "--backend", "onnxruntime", "--quantize", "int8", "--device", "cpu"]) == 0
    assert "translated 6 image(s)" in capsys.readouterr().out
    assert (trained_run.checkpoints / "run" / "latest_net_G_B.int8.onnx").exists()
