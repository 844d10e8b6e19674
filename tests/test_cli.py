"""The command line: train / test / eval / export / inspect / data, with the reference's flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import TrainConfig
from cyclegan.recipes.loading import load_generators


def write_images(folder, count, size=(50, 37), prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(count)
    for i in range(count):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{prefix}{i:03d}.png")


def test_data_synthetic_command(tmp_path, capsys):
    assert main(["data", "synthetic", str(tmp_path / "s"), "--n", "3", "--n_test", "2", "--size", "32"]) == 0
    for folder in ("trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt"):
        assert len(list((tmp_path / "s" / folder).glob("*.png"))) == (3 if folder.startswith("train") else 2)
    assert "testA_gt" in capsys.readouterr().out


def test_test_translates_every_image_at_its_own_size(trained_run, tmp_path, capsys):
    data, checkpoints = tmp_path / "data", trained_run.checkpoints
    write_images(data / "bigA", 55)  # more than the reference's silent 50-image default
    write_images(data / "bigB", 2, size=(30, 22), prefix="other")
    code = main(["test", "--dataroot", str(data), "--phase", "big", "--name", "run", "--checkpoints_dir",
                 str(checkpoints), "--results_dir", str(tmp_path / "res"), "--device", "cpu"])
    assert code == 0
    images = tmp_path / "res" / "run" / "big_latest" / "images"
    assert len(list(images.glob("*_fake_B.png"))) == 55
    for label in ("real_A", "fake_B", "rec_A"):
        with Image.open(images / f"img007_{label}.png") as image:
            assert image.size == (50, 37)  # padded to the multiple of 4 and cropped back
    for label in ("real_B", "fake_A", "rec_B"):  # B results are named after their own input
        assert (images / f"other001_{label}.png").exists()
    page = (tmp_path / "res" / "run" / "big_latest" / "index.html").read_text()
    assert "img054_fake_B.png" in page and "other001_rec_B.png" in page
    assert "translated 57 image(s)" in capsys.readouterr().out


def test_test_scores_against_ground_truth_and_honours_num_test(trained_run, tmp_path, capsys):
    data, checkpoints = trained_run.data, trained_run.checkpoints
    code = main(["test", "--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(checkpoints),
                 "--results_dir", str(tmp_path / "res"), "--num_test", "2", "--format", "json", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    scores = json.loads(out[out.index("{"):])
    assert scores["count"] == 2 and set(scores) >= {"psnr", "ssim", "per_image"}
    page = (tmp_path / "res" / "run" / "test_latest" / "index.html").read_text()
    assert "PSNR" in page
    assert json.loads((tmp_path / "res" / "run" / "test_latest" / "scores.json").read_text())["count"] == 2


def test_export_reference_layout_and_single_direction_test(trained_run, tmp_path):
    data, checkpoints = trained_run.data, trained_run.checkpoints
    out = tmp_path / "exported" / "ref_run"
    assert main(["export", "--name", "run", "--checkpoints_dir", str(checkpoints), "--format", "reference",
                 "--out", str(out)]) == 0
    for name in ("G_A", "G_B", "D_A", "D_B"):
        state = torch.load(out / f"latest_net_{name}.pth", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    (out / "config.json").unlink()  # as the reference would have it: weights only, flags say the rest
    code = main(["test", "--dataroot", str(data / "testA"), "--name", "ref_run", "--checkpoints_dir",
                 str(out.parent), "--results_dir", str(tmp_path / "res"), "--model", "test", "--model_suffix", "_A",
                 "--dataset_mode", "single", "--netG", "resnet_6blocks", "--ngf", "4", "--no_dropout",
                 "--device", "cpu"])
    assert code == 0
    images = tmp_path / "res" / "ref_run" / "test_latest" / "images"
    fakes = sorted(images.glob("*_fake.png"))
    assert len(fakes) == 3 and len(list(images.glob("*_real.png"))) == 3
    # Same pixels as our own checkpoint's G_A gives.
    ours = load_generators(checkpoints / "run", names=("G_A",)).nets["G_A"]
    from cyclegan.data.transforms import image_tensor

    first_input = sorted((data / "testA").glob("*.png"))[0]
    with torch.no_grad():
        expected = ((ours(image_tensor(first_input, 3))[0] * 0.5 + 0.5).clamp(0, 1) * 255).round()
    saved = torch.from_numpy(__import__("numpy").array(Image.open(fakes[0]))).permute(2, 0, 1).float()
    assert (saved - expected).abs().max() <= 1


def test_test_reads_the_architecture_from_the_saved_run(trained_run, tmp_path):
    """No --netG / --ngf / --norm repeated: the reference's most reported error cannot happen."""
    loaded = load_generators(trained_run.run_dir)
    assert loaded.config.model == trained_run.config.model


def test_test_with_missing_weights_names_what_it_looked_for(tmp_path, capsys):
    (tmp_path / "ck" / "nothing").mkdir(parents=True)
    code = main(["test", "--dataroot", str(tmp_path), "--name", "nothing", "--checkpoints_dir", str(tmp_path / "ck"),
                 "--results_dir", str(tmp_path / "results")])
    assert code == 2
    assert not (tmp_path / "results").exists()  # nothing translated, no folder left behind
    err = capsys.readouterr().err
    assert "latest.safetensors" in err and "latest_net_G_A.pth" in err


def test_eval_command_json(trained_run, tmp_path, capsys):
    data = trained_run.data
    assert main(["eval", "--fake", str(data / "testA_gt"), "--real", str(data / "testA_gt"), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 3 and result["ssim"] == pytest.approx(1.0)


def test_inspect_command_prints_the_patchgan_numbers(capsys):
    assert main(["inspect", "--netD", "basic", "--size", "256"]) == 0
    out = capsys.readouterr().out
    assert "70" in out and "30×30" in out


def test_train_flags_fill_the_typed_config(tmp_path):
    from cyclegan.cli import build_parser, config_from_args

    args = build_parser().parse_args([
        "train", "--dataroot", "d", "--name", "n", "--netG", "unet_256", "--norm", "batch", "--lambda_identity", "0",
        "--n_epochs", "3", "--save_latest_freq", "10m", "--gpu_ids", "-1", "--display_id", "0", "--no_flip",
        "--dropout", "--precision", "bf16", "--no_tensorboard",
    ])
    config = config_from_args(args)
    assert config.model.netG == "unet_256" and config.model.norm == "batch" and config.cycle_gan.lambda_identity == 0
    assert config.optim.n_epochs == 3 and config.runtime.checkpoint_every == 600 and config.runtime.device == "cpu"
    assert config.data.no_flip and not config.model.no_dropout and config.runtime.precision == "bf16"
    assert not config.runtime.tensorboard
    assert config.data.load_size == 286  # untouched defaults stay the reference's
    plain = config_from_args(build_parser().parse_args(["train", "--dataroot", "d"]))
    assert plain.model.no_dropout  # CycleGAN's default: no dropout unless --dropout


def test_train_without_dataroot_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--dataroot is required"):
        main(["train", "--name", "x", "--checkpoints_dir", str(tmp_path)])


@pytest.mark.slow
def test_the_reference_example_command_lines_work(tmp_path, monkeypatch, capsys):
    """`python train.py ...` → `cyclegan train ...` with the reference's defaults (256 px, resnet_9blocks)."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "datasets" / "horse2zebra"
    for folder in ("trainA", "trainB", "testA", "testB"):
        write_images(root / folder, 1, size=(300, 290))
    code = main(["train", "--dataroot", "./datasets/horse2zebra", "--name", "horse2zebra_cyclegan", "--model",
                 "cycle_gan", "--max_iters", "1", "--num_threads", "0", "--display_id", "0", "--no_progress_bar"])
    assert code == 0
    saved = TrainConfig.load(tmp_path / "checkpoints" / "horse2zebra_cyclegan" / "config.json")
    assert (saved.model.netG, saved.model.ngf, saved.data.crop_size) == ("resnet_9blocks", 64, 256)
    code = main(["test", "--dataroot", "./datasets/horse2zebra", "--name", "horse2zebra_cyclegan", "--model",
                 "cycle_gan"])
    assert code == 0
    images = tmp_path / "results" / "horse2zebra_cyclegan" / "test_latest" / "images"
    assert {p.name for p in images.iterdir()} == {
        "img000_real_A.png", "img000_fake_B.png", "img000_rec_A.png",
        "img000_real_B.png", "img000_fake_A.png", "img000_rec_B.png",
    }
    assert (images.parent / "index.html").exists()


def test_report_command_gathers_a_run(trained_run, tmp_path, capsys):
    data, checkpoints = trained_run.data, trained_run.checkpoints
    assert main(["test", "--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(checkpoints),
                 "--results_dir", str(tmp_path / "res"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["report", "--name", "run", "--checkpoints_dir", str(checkpoints), "--results_dir",
                 str(tmp_path / "res" / "run" / "test_latest")]) == 0
    page = checkpoints / "run" / "report.html"
    assert capsys.readouterr().out.strip() == str(page)
    html = page.read_text()
    assert "val_psnr" in html and "loss" in html.lower()


@pytest.mark.slow
def test_export_onnx_command_prints_parity(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    checkpoints = trained_run.checkpoints
    assert main(["export", "--name", "run", "--checkpoints_dir", str(checkpoints), "--format", "onnx",
                 "--out", str(tmp_path / "onnx"), "--height", "32", "--width", "32", "--opset", "18"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "G_A.onnx" in line]
    assert len(lines) == 1 and "max |Δ| vs torch" in lines[0]
    worst = float(lines[0].split("max |Δ| vs torch: ")[1].split(" ")[0])
    assert worst < 1e-3  # parity in [-1, 1] units
    assert (tmp_path / "onnx" / "G_A.onnx").exists()


def test_download_offline_is_a_clear_error(tmp_path, capsys):
    import socket

    with socket.socket() as sock:  # a closed local port: connection refused, as when offline
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["download", "pretrained", "horse2zebra", "--checkpoints_dir", str(tmp_path),
                 "--base", f"http://127.0.0.1:{port}"])
    assert code == 2
    assert "horse2zebra" in capsys.readouterr().err


def test_bf16_translation_is_close_to_fp32(trained_run, tmp_path):
    from cyclegan.inference.test_run import run_test

    data, checkpoints = trained_run.data, trained_run.checkpoints
    outputs = {}
    for precision in ("fp32", "bf16"):
        summary = run_test(dataroot=data, name="run", checkpoints_dir=checkpoints, num_test=1, device="cpu",
                           results_dir=tmp_path / precision, precision=precision)
        fake = sorted(summary.images_dir.glob("*_fake_B.png"))[0]
        outputs[precision] = torch.from_numpy(__import__("numpy").array(Image.open(fake))).float()
    difference = (outputs["fp32"] - outputs["bf16"]).abs()
    assert difference.max() <= 0.07 * 127.5 + 1  # the bound benchmarks/inference.py measured, in 8-bit units


def test_eval_lpips_through_the_cli(trained_run, tmp_path, capsys):
    import torchvision

    data = trained_run.data
    weights = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights)  # random, made here
    code = main(["eval", "--fake", str(data / "testA_gt"), "--real", str(data / "testA_gt"), "--metrics",
                 "psnr,lpips", "--lpips_weights", str(weights), "--format", "json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lpips"] == 0.0 and len(result["per_image"]) == 3  # identical folders


@pytest.mark.parametrize("command", ["train", "test", "demo", "eval", "inspect", "export", "data", "download", "report"])
def test_every_command_has_working_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: cyclegan" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("setting", [None, "0"])
def test_the_command_puts_large_tensors_on_huge_pages_unless_told_not_to(setting):
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("this kernel has transparent huge pages off")
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    if setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = setting
    code = ("import cyclegan.cli, resource, torch\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "torch.ones(16 * 2**20)  # 64 MB: 16,384 pages of 4 KB, 32 of 2 MB\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    faults = int(result.stdout.split()[-1])
    if setting is None:
        assert faults < 2000
    else:
        assert faults > 15000  # the user's 0 is kept
