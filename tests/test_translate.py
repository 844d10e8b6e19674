"""``cyclegan translate``: tiling against the whole image, the Translator API, bad inputs, video round trips.

Small random-init generators and small images: seconds on 2 CPU cores. The tiling tests show both
halves of the claim: our tiles reproduce the whole-image output (≥ 40 dB, exact mode to float
rounding) where naive tiling (own statistics, no margin) falls far below that bar.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import DataConfig, ModelConfig, TrainConfig
from cyclegan.inference.tiling import (
    TiledGenerator,
    default_margin,
    plan_exact_passes,
    plan_tiles,
    receptive_reach,
    with_shared_stats,
)
from cyclegan.inference.translator import Translator
from cyclegan.networks import ResnetGenerator, define_G, init_weights
from cyclegan.networks.layers import conv_bias_for, get_norm_layer


def photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A photo-like 1×3×H×W image in [-1, 1]: gradients, discs, blotches and grain."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    img = torch.stack([0.6 * xx + 0.2, 0.5 * yy + 0.3 * xx, 0.8 - 0.5 * yy])
    for _ in range(12):
        cy, cx, r = torch.rand(3, generator=g)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < (0.05 + 0.2 * r) ** 2).float()
        img = img * (1 - mask) + torch.rand(3, 1, 1, generator=g) * mask
    blotches = torch.nn.functional.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g),
                                               size=(height, width), mode="bilinear")[0]
    img = img * 0.85 + 0.15 * blotches + 0.03 * torch.randn(3, height, width, generator=g)
    return (img.clamp(0, 1) * 2 - 1).unsqueeze(0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / (a - b).square().mean().clamp_min(1e-20)))


def generator(norm: str = "instance", ngf: int = 4, gain: float = 0.02, n_blocks: int = 1):
    """A ResNet generator with one block: a 24 px reach, so that small images hold many tiles (fast)."""
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf, norm_layer=get_norm_layer(norm), n_blocks=n_blocks, use_bias=conv_bias_for(norm))
    return init_weights(net, "normal", gain).eval()


# --- tiling --------------------------------------------------------------------------------------


def test_tiles_cover_the_image_once_with_margins():
    tiles = plan_tiles(100, 72, 32, 8)
    covered = torch.zeros(100, 72)
    for t in tiles:
        covered[t.keep_top : t.keep_bottom, t.keep_left : t.keep_right] += 1
        assert t.top == max(0, t.keep_top - 8) and t.right == min(72, t.keep_right + 8)
    assert torch.equal(covered, torch.ones(100, 72))


def test_exact_tiles_equal_the_whole_image_and_naive_tiles_do_not():
    net = generator()
    assert default_margin(net) == 20
    x = photo(128, 160)
    with torch.no_grad():
        whole = net(x)
    ours = TiledGenerator(net, 32, stats="exact")(x)
    naive = TiledGenerator(net, 32, margin=0, stats="own")(x)
    assert ours.shape == whole.shape
    assert psnr(ours, whole) >= 40
    assert (ours - whole).abs().max() < 1e-4  # margin ≥ reach: equal up to float rounding
    assert psnr(naive, whole) < 30  # tonal jumps and seams


def test_margin_alone_does_not_fix_instance_norm_tiles():
    net = generator()
    x = photo(128, 160)
    with torch.no_grad():
        whole = net(x)
    own_stats = TiledGenerator(net, 32, stats="own")(x)  # full margin, each tile its own statistics
    assert psnr(own_stats, whole) < 30


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_norms_without_input_statistics_need_only_the_margin(norm):
    net = generator(norm=norm, gain=0.13)  # a larger init so that norm-free activations are not ~0
    x = photo(96, 128)
    with torch.no_grad():
        whole = net(x)
    assert whole.std() > 0.05
    _, _, shared = with_shared_stats(net)
    assert shared == 0  # eval-mode batch norm keeps its running statistics
    assert (TiledGenerator(net, 32)(x) - whole).abs().max() < 1e-4
    assert psnr(TiledGenerator(net, 32, margin=0, stats="own")(x), whole) < 40


def test_batch_norm_in_train_mode_is_fed_whole_image_statistics():
    net = generator(norm="batch")
    net.train()  # the reference's test.py without --eval: batch statistics of the (one) image
    x = photo(96, 128)
    with torch.no_grad():
        whole = net(x)
    tiled = TiledGenerator(net, 32, stats="exact")
    assert tiled.n_norms > 0
    assert (tiled(x) - whole).abs().max() < 1e-4
    assert psnr(TiledGenerator(net, 32, margin=0, stats="own")(x), whole) < 40


def test_odd_sizes_pad_like_the_whole_image_path():
    net = generator()
    net.pad_to_multiple = True
    x = photo(75, 101)
    with torch.no_grad():
        whole = net(x)
    out = TiledGenerator(net, 32, stats="exact")(x)
    assert out.shape == whole.shape
    assert (out - whole).abs().max() < 1e-4


def test_misaligned_tile_is_a_clear_error():
    with pytest.raises(ValueError, match="multiples of 4"):
        TiledGenerator(generator(), 30)
    assert default_margin(generator()) % 4 == 0


def test_kept_activations_give_the_same_output_in_fewer_network_calls():
    net = generator(n_blocks=3)
    x = photo(128, 160)
    with torch.no_grad():
        whole = net(x)
    calls = {}
    outputs = {}
    for budget in (None, 0):  # None: keep activations where they fit; 0: recompute from the image
        seen = []
        outputs[budget] = TiledGenerator(net, 32, stats="exact", cache_budget=budget,
                                         progress=lambda done, total, seen=seen: seen.append((done, total)))(x)
        assert seen[-1][0] == seen[-1][1] == len(seen)  # the progress total was known from the start
        calls[budget] = len(seen)
    for out in outputs.values():
        assert (out - whole).abs().max() < 1e-4
    n_tiles, n_norms = len(plan_tiles(128, 160, 32, 20)), 11
    assert calls[0] == (n_norms + 1) * n_tiles
    assert calls[None] == 16 * n_tiles  # 11 gathers + 4 kept (after the stem, after blocks 1-3) + output


def test_plan_keeps_one_activation_per_resnet_block_where_it_fits():
    tiled = TiledGenerator(define_G(3, 3, 8, "resnet_9blocks", norm="instance"), 64)
    layers = tiled.layers
    assert [str(layer.scale) for layer in layers[7:19]] == ["1/4"] * 12
    passes = plan_exact_passes(layers, 1024 * 1024, 64, tiled.margin, budget=1e12)
    kept = [(p.start, p.stop) for p in passes if not p.gather]
    assert kept == [(0, 10)] + [(i, i + 1) for i in range(10, 19)] + [(19, len(layers))]
    assert sum(p.gather for p in passes) == tiled.n_norms
    # an activation that does not fit is recomputed instead
    small = plan_exact_passes(layers, 1024 * 1024, 64, tiled.margin, budget=32 * 256 * 256 * 4 - 1)  # one byte short of a block
    assert [(p.start, p.stop) for p in small if not p.gather] == [(0, len(layers))]


def test_cut_generator_tiles_equal_the_whole_image():
    """CUT's anti-aliased resampling puts the receptive field off centre: the margin must follow it."""
    from cyclegan.recipes.cut.networks import CUTResnetGenerator

    torch.manual_seed(0)
    net = init_weights(CUTResnetGenerator(3, 3, 8, n_blocks=2), "normal", 0.02).eval()
    x = photo(96, 128, seed=1)
    with torch.no_grad():
        whole = net(x)
    # How far an output pixel's input gradient reaches, per side, with norm statistics held fixed.
    probe = torch.zeros(1, 3, 192, 192, requires_grad=True)
    from cyclegan.networks.inspect import _fixed_statistics_norm

    handles = [m.register_forward_hook(_fixed_statistics_norm) for m in net.modules()
               if isinstance(m, torch.nn.InstanceNorm2d)]
    try:
        out = net(probe + photo(192, 192, seed=2))
        (grad,) = torch.autograd.grad(out[0, :, 96, 96].sum(), probe)
    finally:
        for handle in handles:
            handle.remove()
    rows = grad[0].abs().sum(0).any(1).nonzero()[:, 0]
    assert receptive_reach(net) >= max(96 - int(rows.min()), int(rows.max()) - 96) > 30
    tiled = TiledGenerator(net, 16, stats="exact")
    assert (tiled(x) - whole).abs().max() < 1e-4


# --- a run on disk, the API and the command --------------------------------------------------------


def make_run(root: Path, name: str = "run", single: bool = False, ngf: int = 4) -> Path:
    """A run the way the reference leaves it: config.json and <epoch>_net_G_A/G_B.pth (or one G)."""
    run = root / name
    run.mkdir(parents=True)
    config = TrainConfig(data=DataConfig(), model=ModelConfig(netG="resnet_6blocks", ngf=ngf, norm="instance"))
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    for seed, label in enumerate(["G"] if single else ["G_A", "G_B"]):
        torch.manual_seed(seed)
        torch.save(define_G(3, 3, ngf, "resnet_6blocks", norm="instance").state_dict(), run / f"latest_net_{label}.pth")
    (run / "val_scores.json").write_text(json.dumps([{"epoch": 1, "iter": 4, "val_cycle_l1": 0.25, "psnr": 13.5}]))
    return run


def save_photo(path: Path, height: int = 48, width: int = 64, mode: str = "RGB") -> Path:
    array = ((photo(height, width)[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    image = Image.fromarray(array)
    if mode == "RGBA":
        image.putalpha(Image.fromarray(np.tile(np.arange(width, dtype=np.uint8) * 3, (height, 1))))
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def test_translator_api_on_pil_tensor_and_file(tmp_path):
    run = make_run(tmp_path / "checkpoints")
    translator = Translator.from_run(run)
    assert translator.info["netG"] == "resnet_6blocks" and translator.info["val_psnr"] == 13.5
    source = save_photo(tmp_path / "a.png")
    from_file = translator(source)
    from_pil = translator(Image.open(source))
    assert from_file.size == (64, 48) and np.array_equal(np.asarray(from_file), np.asarray(from_pil))
    x = photo(48, 64)
    assert translator(x).shape == (1, 3, 48, 64)
    backward = Translator.from_run(run, direction="BtoA")
    assert backward.fake_label == "fake_A"
    assert not torch.equal(backward(x), translator(x))
    tiled = Translator.from_run(run, tile=32)  # forced tiles: the same picture
    assert (tiled(x) - translator(x)).abs().max() < 1e-4


def test_command_translates_a_folder_a_glob_and_keeps_names(tmp_path, capsys):
    run = make_run(tmp_path / "checkpoints")
    save_photo(tmp_path / "in" / "one.png")
    save_photo(tmp_path / "in" / "sub" / "two.jpg")
    save_photo(tmp_path / "three.png", 20, 28)
    out = tmp_path / "out"
    code = main(["translate", str(tmp_path / "in"), str(tmp_path / "th*.png"), "--name", run.name,
                 "--checkpoints_dir", str(run.parent), "--out", str(out), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["one_fake_B.png", "three_fake_B.png", "two_fake_B.jpg"]
    assert Image.open(out / "three_fake_B.png").size == (28, 20)
    assert not list(out.glob(".*.tmp"))


def test_single_reference_generator_and_its_direction(tmp_path, capsys):
    run = make_run(tmp_path / "checkpoints", "ref", single=True)
    assert Translator.from_run(run).fake_label == "fake"
    save_photo(tmp_path / "x.png")
    code = main(["translate", str(tmp_path / "x.png"), "--name", "ref", "--checkpoints_dir", str(run.parent),
                 "--out", str(tmp_path / "out"), "--direction", "BtoA", "--device", "cpu"])
    assert code == 2 and "single generator" in capsys.readouterr().err


# --- bad inputs ----------------------------------------------------------------------------------


def test_bad_inputs_get_clear_messages_or_correct_outputs(tmp_path, capsys):
    run = make_run(tmp_path / "checkpoints")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "notes.png").write_text("this is not an image")
    (inputs / "tiny.png").write_bytes(b"")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(inputs / "dot.png")
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint16) * 1000, (32, 1))).save(inputs / "deep.png")
    Image.new("CMYK", (40, 24), (0, 128, 255, 0)).save(inputs / "print.jpg")
    save_photo(inputs / "alpha.png", mode="RGBA")
    save_photo(inputs / "<script>alert(1)<script>.png")
    out = tmp_path / "out"
    code = main(["translate", str(inputs), "--name", run.name, "--checkpoints_dir", str(run.parent), "--out",
                 str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    assert "notes.png" in captured.err and "cannot decode image" in captured.err
    assert "tiny.png" in captured.err and "empty" in captured.err
    assert "Traceback" not in captured.err
    assert Image.open(out / "dot_fake_B.png").size == (1, 1)
    deep = Image.open(out / "deep_fake_B.png")
    assert deep.size == (64, 32) and deep.mode == "RGB"
    assert Image.open(out / "print_fake_B.jpg").mode == "RGB"
    alpha = Image.open(out / "alpha_fake_B.png")
    assert alpha.mode == "RGBA"  # alpha kept: the input's own channel on the translated colour
    assert np.array_equal(np.asarray(alpha.getchannel("A")), np.asarray(Image.open(inputs / "alpha.png").getchannel("A")))
    assert (out / "<script>alert(1)<script>_fake_B.png").is_file()


def test_missing_input_and_wrong_run_are_errors_not_tracebacks(tmp_path, capsys):
    run = make_run(tmp_path / "checkpoints")
    assert main(["translate", str(tmp_path / "nope*.png"), "--name", run.name, "--checkpoints_dir",
                 str(run.parent), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "no such file" in capsys.readouterr().err
    save_photo(tmp_path / "x.png")
    assert main(["translate", str(tmp_path / "x.png"), "--name", "absent", "--checkpoints_dir", str(run.parent),
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "no weights found" in capsys.readouterr().err


# --- video ---------------------------------------------------------------------------------------

av = pytest.importorskip("av")


def make_clip(path: Path, frames: int = 7, rate: int = 12, size: tuple[int, int] = (64, 48), audio: bool = True,
              codec: str = "libx264") -> Path:
    """A tiny clip: moving gradient frames (and a 440 Hz tone)."""
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        for i in range(frames):
            array = np.zeros((height, width, 3), np.uint8)
            array[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
            array[..., 1] = (i * 30) % 256
            array[: height // 2, (i * 5) % width] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            seconds = frames / rate
            t = np.arange(int(44100 * seconds)) / 44100
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            for start in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate = 44100
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


@pytest.mark.parametrize("suffix,codec,audio", [(".mp4", "libx264", True), (".mkv", "libx264", True),
                                                (".webm", "libvpx-vp9", False), (".gif", "gif", False)])
def test_video_round_trip_keeps_frames_rate_size_and_audio(tmp_path, suffix, codec, audio):
    from cyclegan.inference.video import probe, translate_video

    run = make_run(tmp_path / "checkpoints")
    source = make_clip(tmp_path / f"clip{suffix}", codec=codec, audio=audio and suffix != ".webm")
    before = probe(source)
    summary = translate_video(Translator.from_run(run), source, tmp_path / "out" / f"clip_fake_B{suffix}",
                              batch_size=3)
    after = probe(summary.path)
    assert after["frames"] == before["frames"] == 7
    assert (after["width"], after["height"]) == (64, 48)
    assert after["rate"] == before["rate"] == Fraction(12) or suffix == ".gif"
    assert after["audio"] == before["audio"]
    assert summary.audio_copied == before["audio"]


def test_video_span_and_max_frames(tmp_path):
    from cyclegan.inference.video import probe, translate_video

    run = make_run(tmp_path / "checkpoints")
    source = make_clip(tmp_path / "clip.mp4", frames=24, audio=True)
    translator = Translator.from_run(run)
    out = translate_video(translator, source, tmp_path / "a.mp4", max_frames=5)
    assert probe(out.path)["frames"] == 5
    out = translate_video(translator, source, tmp_path / "b.mp4", start=1.0, duration=0.5)
    assert probe(out.path)["frames"] == 6  # frames at 1.0, 1.083 ... 1.417 s at 12 fps


def test_truncated_and_fake_videos_are_named_and_leave_nothing(tmp_path, capsys):
    run = make_run(tmp_path / "checkpoints")
    good = make_clip(tmp_path / "good.mp4", frames=12)
    truncated = tmp_path / "in" / "cut.mp4"
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "in" / "fake.mov").write_text("not a video")
    out = tmp_path / "out"
    code = main(["translate", str(tmp_path / "in"), "--name", run.name, "--checkpoints_dir", str(run.parent),
                 "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cut.mp4" in err and "fake.mov" in err and "Traceback" not in err
    assert list(out.iterdir()) == []  # no partial file, no temporary left behind


def test_exact_tiles_of_a_residual_output_generator_equal_the_whole_image():
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, 4, norm_layer=get_norm_layer("instance"), n_blocks=1, residual_output=True)
    net = init_weights(net, "normal", 0.02).eval()  # the last convolution not zeroed: h matters
    x = photo(128, 160)
    with torch.no_grad():
        whole = net(x)
    assert psnr(whole, x) < 40  # the output is not the input
    tiled = TiledGenerator(net, 32, stats="exact")
    assert tiled.layers is not None  # the layer-by-layer passes, which must add the input at the end
    assert (tiled(x) - whole).abs().max() < 1e-4


def test_exact_tiles_of_a_generator_with_a_colour_branch_equal_the_whole_image():
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, 4, norm_layer=get_norm_layer("instance"), n_blocks=1, residual_output=True,
                          colour_branch=8, body_scale=0.5)
    net = init_weights(net, "normal", 0.5).eval()  # nothing zeroed: the body and the colour branch both matter
    x = photo(128, 160)
    with torch.no_grad():
        whole = net(x)
        without_colour = torch.tanh(0.5 * net.model(x) + torch.atanh(x.clamp(-0.99, 0.99)))
    assert psnr(whole, without_colour) < 40  # the colour branch changes the output
    tiled = TiledGenerator(net, 32, stats="exact")
    assert tiled.layers is not None
    assert (tiled(x) - whole).abs().max() < 1e-4


# --- the path each call takes (--precision / --backend) ---------------------------------------------


@pytest.mark.slow
def test_translate_takes_an_explicit_backend_and_auto_measures_once(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    run = make_run(tmp_path / "checkpoints")
    photo = save_photo(tmp_path / "x.png", 64, 64)
    exact = np.asarray(Translator.from_run(run)(photo), np.float64)
    out = tmp_path / "onnx"
    assert main(["translate", str(photo), "--name", "run", "--checkpoints_dir", str(run.parent), "--out", str(out),
                 "--device", "cpu", "--backend", "onnxruntime", "--precision", "fp32"]) == 0
    via_onnx = np.asarray(Image.open(out / "x_fake_B.png"), np.float64)
    assert np.abs(via_onnx - exact).max() <= 1  # the same picture, up to rounding

    # auto on an input large enough to be worth it: every path is measured once, one line says which won.
    caplog.set_level(logging.INFO)
    translator = Translator.from_run(run, precision="auto", backend="auto", tile=0)
    big = torch.rand(1, 3, 256, 256) * 2 - 1
    first = translator.translate_tensor(big)
    def verdicts() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "cyclegan.deploy.fastest.choice" and r.getMessage().startswith("inference: ")]

    assert len(verdicts()) == 1 and "measured" in verdicts()[0]  # whichever path won: no test on a speed
    again = translator.translate_tensor(big)  # the same shape: the chosen path, not a new measurement
    translator.translate_tensor(torch.cat([big, big]))  # another batch of the same pictures: the same path
    assert len(verdicts()) == 1
    reference = Translator.from_run(run, tile=0).translate_tensor(big)
    mse = float(((first - reference) ** 2).mean())
    assert mse == 0 or 10 * math.log10(4 / mse) >= 40 and torch.equal(first, again)
