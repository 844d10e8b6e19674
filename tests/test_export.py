"""Export (ONNX, torch.export) and the onnxruntime backend of ``cyclegan test``: parity with torch.

Small generators (ngf 4) keep each export to a second or two; the ONNX exporter's own start-up
(the first export in a process) is the largest cost.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.networks import ImageSizeError, define_G

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from cyclegan.deploy.backends import OnnxGenerator, load_backend_generators  # noqa: E402
from cyclegan.deploy.export import (  # noqa: E402
    ExportError,
    check_parity,
    export_onnx,
    export_program,
    format_export_summary,
    run_export_model,
)

TOLERANCE = 1e-3  # fp32, [-1, 1] units; observed ~1e-6


def images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("netG", ["resnet_6blocks", "unet_128"])
@pytest.mark.slow
def test_onnx_parity_and_dynamic_sizes(netG, tmp_path):
    net = define_G(3, 3, 4, netG, norm="instance")
    multiple = net.size_multiple  # 4 for the ResNet, 128 for unet_128
    path = export_onnx(net, tmp_path / "g.onnx", 3, 2 * multiple, 2 * multiple)
    assert net.training and not net.pad_to_multiple  # export works on a copy
    # the export size, another batch and other multiples (H ≠ W), and a size that needs padding
    for batch, height, width in [
        (1, 2 * multiple, 2 * multiple),
        (3, 3 * multiple, 4 * multiple),
        (1, 2 * multiple + 3, 3 * multiple - 1),
    ]:
        assert check_parity(net, path, "onnxruntime", images(batch, 3, height, width)) < TOLERANCE
    session = OnnxGenerator(path, threads=1)
    assert session.size_multiple == multiple  # read from the file's metadata
    assert session.metadata["producer"] == "cyclegan"


@pytest.mark.parametrize("grey", [False, True])
def test_the_quick_presets_generator_exports_with_its_colour_branch_and_grey_output(grey, tmp_path):
    torch.manual_seed(0)
    net = define_G(3, 3, 4, "resnet_6blocks", norm="none", init_type="kaiming", residual_output=True,
                   colour_branch=8, body_scale=0.1)
    torch.nn.init.normal_(net.colour[-1].weight, std=0.3)  # a fitted branch changes the colours
    net.colour.set_mix(torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, 1, 0]]))  # the colour start's channel mix
    net.colour.set_grey_output(grey)  # a generator whose target domain is greyscale
    path = export_onnx(net, tmp_path / "g.onnx", 3, 16, 16)
    x = images(2, 3, 16, 20)
    assert check_parity(net, path, "onnxruntime", x) < TOLERANCE
    out = OnnxGenerator(path, threads=1)(x)
    spread = (out.amax(1) - out.amin(1)).max().item()  # how far apart each pixel's channels lie
    assert (spread < 1e-5) if grey else (spread > 0.05), spread


def test_onnx_opset_below_18_is_a_clear_error(tmp_path):
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    with pytest.raises(ExportError, match="opset 17 is not supported.*--opset 18"):
        export_onnx(net, tmp_path / "g17.onnx", 3, 16, 16, opset=17)
    assert not (tmp_path / "g17.onnx").exists()


@pytest.mark.slow
def test_static_export_records_fixed_shapes(tmp_path):
    import onnx

    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    path = export_onnx(net, tmp_path / "static.onnx", 3, 16, 20, dynamic=False)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 20]


@pytest.mark.parametrize("netG", ["resnet_6blocks", "unet_128"])
@pytest.mark.slow
def test_torch_export_parity(netG, tmp_path):
    net = define_G(3, 3, 4, netG, norm="instance")
    multiple = net.size_multiple
    path = export_program(net, tmp_path / "g.pt2", 3, 2 * multiple, 2 * multiple)
    assert check_parity(net, path, "torch_export", images(1, 3, 2 * multiple, 2 * multiple)) < TOLERANCE
    assert check_parity(net, path, input=images(2, 3, 3 * multiple, 2 * multiple + 1)) < TOLERANCE


@pytest.mark.slow
def test_onnx_generator_checks_its_input(tmp_path):
    net = define_G(1, 1, 4, "resnet_6blocks", norm="instance")
    session = OnnxGenerator(export_onnx(net, tmp_path / "gray.onnx", 1, 16, 16), threads=1)
    with pytest.raises(ImageSizeError, match="1 input channel"):
        session(images(1, 3, 16, 16))
    with pytest.raises(ImageSizeError, match="N×C×H×W"):
        session(images(1, 1, 16, 16)[0])
    out = session(images(2, 1, 13, 9).to(torch.bfloat16))  # converted, padded and cropped back
    assert out.shape == (2, 1, 13, 9) and out.dtype == torch.float32


def test_unknown_format_and_backend_are_clear_errors(tmp_path):
    with pytest.raises(
        ExportError, match="unknown export format 'tflite'; known: onnx, torch_export, reference"
    ):
        run_export_model(tmp_path, "latest", "tflite", tmp_path / "out")
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    with pytest.raises(ExportError, match="cannot tell the backend"):
        check_parity(net, tmp_path / "model.bin")


# --- a trained run: cyclegan export and cyclegan test --backend onnxruntime ---------------------
# (slow: they train a tiny run first, and each ONNX export takes seconds)


@pytest.mark.slow
def test_run_export_model_onnx_and_torch_export(trained_run, tmp_path):
    checkpoints = trained_run.checkpoints
    result = run_export_model(checkpoints / "run", "latest", "onnx", tmp_path / "onnx", height=32, width=32)
    assert set(result["files"]) == {"G_A", "G_B"}
    assert (tmp_path / "onnx" / "G_A.onnx").exists() and (tmp_path / "onnx" / "config.json").exists()
    for name in ("G_A", "G_B"):
        assert result["parity"][name] < TOLERANCE and result["parity_dynamic"][name] < TOLERANCE
        assert result["sizes"][name]["dynamic"][0] == 2  # a second batch size and image size were checked
    assert "max |Δ| vs torch" in format_export_summary(result)

    program = run_export_model(checkpoints / "run", "latest", "torch_export", tmp_path / "pt2", height=32, width=32)
    assert (tmp_path / "pt2" / "G_B.pt2").exists() and max(program["parity"].values()) < TOLERANCE

    reference = run_export_model(checkpoints / "run", "latest", "reference", tmp_path / "ref")
    assert {"G_A", "G_B", "D_A", "D_B"} <= set(reference["files"])
    assert (tmp_path / "ref" / "latest_net_G_A.pth").exists()


def read_pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


@pytest.mark.slow
def test_test_with_onnxruntime_matches_torch(trained_run, tmp_path):
    from cyclegan.inference.test_run import run_test

    data, checkpoints = trained_run.data, trained_run.checkpoints
    common = {"dataroot": data, "name": "run", "checkpoints_dir": checkpoints, "device": "cpu"}
    torch_run = run_test(results_dir=tmp_path / "torch", **common)
    onnx_run = run_test(results_dir=tmp_path / "onnx", backend="onnxruntime", batch_size=2, **common)
    assert onnx_run.count == torch_run.count == 6
    # The network outputs (real / fake / rec of both folders); the copied true_B files are not outputs.
    produced = sorted(p.name for p in onnx_run.images_dir.glob("*.png") if "_true_" not in p.name)
    assert produced == sorted(p.name for p in torch_run.images_dir.glob("*.png") if "_true_" not in p.name)
    assert len(produced) == 18
    for name in produced:
        # fp32 on both sides differ by ~1e-6: at most one 8-bit level after rounding
        difference = np.abs(
            read_pixels(onnx_run.images_dir / name) - read_pixels(torch_run.images_dir / name)
        )
        assert difference.max() <= 1, name
    cached = checkpoints / "run" / "latest_net_G_A.onnx"
    assert cached.exists() and cached.with_suffix(".onnx.json").exists()


@pytest.mark.slow
def test_onnx_cache_is_reused_until_the_checkpoint_changes(trained_run):
    checkpoints = trained_run.checkpoints
    run_dir = checkpoints / "run"
    first = load_backend_generators(run_dir, names=("G_A",), backend="onnxruntime", threads=1)
    cached = first.nets["G_A"].path
    stamp = cached.stat().st_mtime_ns
    load_backend_generators(run_dir, names=("G_A",), backend="onnxruntime", threads=1)
    assert cached.stat().st_mtime_ns == stamp  # reused
    checkpoint = run_dir / "latest.safetensors"
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 10**9))
    load_backend_generators(run_dir, names=("G_A",), backend="onnxruntime", threads=1)
    assert cached.stat().st_mtime_ns != stamp  # the checkpoint changed: exported again


@pytest.mark.slow
def test_given_onnx_files_are_used_as_they_are(trained_run, tmp_path):
    checkpoints = trained_run.checkpoints
    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance")
    path = export_onnx(net, tmp_path / "mine.onnx", 3, 16, 16)
    loaded = load_backend_generators(
        checkpoints / "run", names=("G_A",), backend="onnxruntime", onnx_paths={"G_A": path}, threads=1
    )
    assert loaded.nets["G_A"].path == path and loaded.config.model.ngf == 4


@pytest.mark.slow
def test_batched_translation_equals_one_at_a_time(trained_run, tmp_path):
    from cyclegan.inference.folders import translate_folder
    from cyclegan.recipes.loading import load_generators

    checkpoints = trained_run.checkpoints
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, (width, height) in enumerate([(20, 12), (33, 17), (20, 12), (20, 12), (33, 17)]):
        pixels = (torch.rand(height, width, 3, generator=torch.Generator().manual_seed(i)) * 255).to(
            torch.uint8
        )
        Image.fromarray(pixels.numpy()).save(folder / f"img{i}.png")
    paths = sorted(folder.glob("*.png"))
    nets = load_generators(checkpoints / "run").nets
    labels = ("real_A", "fake_B", "rec_A")
    one = {t.stem: t.images for t in translate_folder(paths, nets["G_A"], nets["G_B"], 3, labels)}
    batched = {
        t.stem: t.images for t in translate_folder(paths, nets["G_A"], nets["G_B"], 3, labels, batch_size=2)
    }
    assert set(batched) == set(one) == {f"img{i}" for i in range(5)}
    for stem, tensors in one.items():
        for label, tensor in tensors.items():
            assert batched[stem][label].shape == tensor.shape
            torch.testing.assert_close(batched[stem][label], tensor, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="batch_size"):
        list(translate_folder(paths, nets["G_A"], None, 3, labels, batch_size=0))
