"""The fastest correct inference path (``cyclegan.deploy.fastest``) and the OpenVINO backend.

The selection is tested with injected timings and PSNRs (no clock), the cache with a counting fake
measurement, :func:`measure` with a fake clock; a tiny random generator shows that the chosen path
really runs and agrees with torch. The tests that export ONNX (seconds each) are marked slow.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cyclegan.deploy import inference_paths
from cyclegan.deploy.fastest import (
    BASELINE,
    Choice,
    Measurement,
    choose,
    choose_path,
    measure,
    network_key,
    size_class,
)
from cyclegan.deploy.inference_paths import PATHS, Sources, eligible_paths
from cyclegan.deploy.quantize import psnr
from cyclegan.networks import define_G

TORCH_ONLY = ["torch fp32", "torch fp32 channels-last"]


def tiny_generator(ngf: int = 4) -> nn.Module:
    torch.manual_seed(0)
    net = define_G(3, 3, ngf, "resnet_6blocks", norm="instance").eval()
    net.pad_to_multiple = True  # odd sizes: reflect-pad and crop back, as the runtimes do
    return net


def pictures(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- the selection, with injected figures --------------------------------------------------------


def test_the_fastest_agreeing_path_wins():
    measured = {
        "torch fp32": Measurement(1.0, math.inf),
        "torch fp32 channels-last": Measurement(0.8, math.inf),
        "openvino fp32": Measurement(0.5, 60.0),
        "onnxruntime fp32": Measurement(0.6, 70.0),
    }
    selection = choose(measured)
    assert selection.name == "openvino fp32"
    assert selection.refused == ()


def test_a_faster_path_under_40_db_is_refused():
    measured = {
        "torch fp32": Measurement(1.0, math.inf),
        "openvino fp32": Measurement(0.5, 60.0),
        "onnxruntime int8": Measurement(0.2, 39.9),
        "openvino int8": Measurement(0.1, math.nan),  # a broken output is refused too
    }
    selection = choose(measured)
    assert selection.name == "openvino fp32"
    assert set(selection.refused) == {"onnxruntime int8", "openvino int8"}


def test_ties_go_to_torch_fp32():
    equal = {"torch fp32": Measurement(1.0, math.inf), "openvino fp32": Measurement(1.0, 60.0)}
    assert choose(equal).name == BASELINE
    within_noise = {"torch fp32": Measurement(1.0, math.inf), "openvino fp32": Measurement(1 / 1.02, 60.0)}
    selection = choose(within_noise)
    assert selection.name == BASELINE and "only 1.02× faster" in selection.note
    # Among the others, equal times go to the earlier (preferred) path.
    others = {"torch fp32": Measurement(2.0, math.inf), "torch fp32 channels-last": Measurement(1.0, math.inf),
              "openvino fp32": Measurement(1.0, 60.0)}
    assert choose(others).name == "torch fp32 channels-last"


def test_allowed_paths_narrow_the_choice_and_the_closest_is_kept_when_none_agrees():
    measured = {"torch fp32": Measurement(1.0, math.inf), "openvino fp32": Measurement(0.5, 60.0),
                "onnxruntime fp32": Measurement(0.7, 70.0), "onnxruntime int8": Measurement(0.2, 30.0)}
    assert choose(measured, allowed=["onnxruntime fp32", "onnxruntime int8"]).name == "onnxruntime fp32"
    selection = choose(measured, allowed=["onnxruntime int8"])
    assert selection.name == "onnxruntime int8" and "no allowed path agreed" in selection.note


def test_describe_is_one_line_saying_what_and_why():
    choice = Choice("openvino fp32", nn.Identity(), 1.0, 52.14, 2.3, "1 image of 768×1024", "AMD EPYC, avx2",
                    refused=("onnxruntime int8 (35.2 dB)",), measured_paths=5)
    line = choice.describe()
    assert "\n" not in line
    assert line.startswith("inference: openvino fp32, 2.30× torch fp32 (fastest of 5 measured) on 1 image of 768×1024")
    assert "52.1 dB against fp32 (AMD EPYC, avx2)" in line and "onnxruntime int8 (35.2 dB)" in line
    baseline = Choice(BASELINE, nn.Identity(), 1.0, math.inf, 1.0, "2 images of 64×64", "CPU", measured_paths=3)
    assert baseline.describe() == "inference: torch fp32, the fastest of 3 measured on 2 images of 64×64 (CPU)"


# --- measuring, with a fake clock ------------------------------------------------------------------


def test_measure_times_agreeing_paths_interleaved_and_drops_slow_ones():
    now = [0.0]
    calls: list[str] = []

    def path(name: str, seconds: float, offset: float = 0.0):
        def run(x: torch.Tensor) -> torch.Tensor:
            calls.append(name)
            now[0] += seconds
            return x + offset

        return run

    runs = {"torch fp32": path("torch fp32", 1.0), "torch fp32 channels-last": path("cl", 0.5),
            "openvino fp32": path("slow", 4.0), "onnxruntime int8": path("wrong", 0.1, offset=0.5)}
    measured = measure(runs, torch.zeros(1, 3, 8, 8), calls=3, clock=lambda: now[0])
    assert measured["torch fp32 channels-last"] == Measurement(0.5, math.inf)
    assert measured["torch fp32"].seconds_per_call == 1.0
    assert measured["onnxruntime int8"].seconds_per_call == math.inf  # disagrees: never timed
    assert measured["onnxruntime int8"].psnr_db < 40
    assert calls.count("slow") == 2  # its warm-up and one round: 8× the best, not timed again
    assert calls.count("cl") == 4 and calls.count("wrong") == 1


# --- choose_path on a tiny generator -------------------------------------------------------------


def test_choice_is_cached_and_a_second_call_does_not_measure(tmp_path):
    net, sample, cache = tiny_generator(), pictures(1, 32, 48), tmp_path / "inference.json"
    counted: list[list[str]] = []

    def fake_measure(runs, x):
        counted.append(list(runs))
        return {name: Measurement(1.0 if name == BASELINE else 0.5, math.inf) for name in runs}

    first = choose_path(net, sample, candidates=TORCH_ONLY, cache=cache, measure_fn=fake_measure)
    assert (first.name, first.source, first.speedup) == ("torch fp32 channels-last", "measured", 2.0)
    again = choose_path(net, pictures(1, 30, 50, seed=1), candidates=TORCH_ONLY, cache=cache, measure_fn=fake_measure)
    assert (again.name, again.source, again.speedup) == ("torch fp32 channels-last", "cached", 2.0)
    assert len(counted) == 1 and "cached choice" in again.describe()
    choose_path(net, sample, candidates=TORCH_ONLY, cache=cache, measure_fn=fake_measure, refresh=True)
    choose_path(net, pictures(1, 256, 256), candidates=TORCH_ONLY, cache=cache, measure_fn=fake_measure)
    choose_path(tiny_generator(ngf=8), sample, candidates=TORCH_ONLY, cache=cache, measure_fn=fake_measure)
    assert len(counted) == 4  # refresh, another size class, another network: measured again


def test_chosen_path_runs_and_agrees_with_torch(tmp_path):
    net, sample = tiny_generator(), pictures(2, 32, 48)
    choice = choose_path(net, sample, candidates=TORCH_ONLY, cache=tmp_path / "c.json", calls=1)
    assert choice.name in TORCH_ONLY and choice.psnr_db >= 40 and choice.seconds_per_call > 0
    other = pictures(2, 33, 47, seed=3)
    with torch.no_grad():
        expected = net(other)
    assert psnr(choice.run(other), expected) >= 40
    assert choice.run.size_multiple == net.size_multiple
    assert choice.describe().startswith(f"inference: {choice.name}")


def test_explicit_precision_and_backend_are_built_without_measuring(tmp_path):
    def refuse(runs, x):
        raise AssertionError("an explicit choice must not measure")

    net = tiny_generator()
    choice = choose_path(net, pictures(1, 32, 32), precision="bf16", backend="torch", cache=tmp_path / "c.json",
                         measure_fn=refuse)
    assert choice.name == "torch bf16" and choice.source == "asked for"
    assert choice.run(pictures(1, 32, 32)).dtype == torch.float32
    assert "as asked" in choice.describe()
    with pytest.raises(ValueError, match="no onnxruntime bf16 path"):
        choose_path(net, pictures(1, 32, 32), precision="bf16", backend="onnxruntime")
    with pytest.raises(ValueError, match="unknown inference path"):
        choose_path(net, pictures(1, 32, 32), candidates=["torch fp64"], cache=tmp_path / "c.json")


def test_bf16_is_offered_only_where_native_unless_asked(monkeypatch):
    net, cpu = tiny_generator(), torch.device("cpu")
    monkeypatch.setattr(inference_paths, "cpu_has_native_bf16", lambda: False)
    offered = eligible_paths(cpu, "auto", "torch", Sources(net, cpu))
    assert offered == ["torch fp32", "torch fp32 channels-last"]
    assert eligible_paths(cpu, "bf16", "torch", Sources(net, cpu)) == ["torch bf16", "torch bf16 channels-last"]
    monkeypatch.setattr(inference_paths, "cpu_has_native_bf16", lambda: True)
    assert "torch bf16" in eligible_paths(cpu, "auto", "torch", Sources(net, cpu))
    # int8 only with something to calibrate on (or an int8 file).
    assert not any("int8" in name for name in eligible_paths(cpu, "auto", "auto", Sources(net, cpu)))


def test_keys_follow_the_network_and_the_size_class():
    assert network_key(tiny_generator(4)) != network_key(tiny_generator(8))
    assert network_key(tiny_generator(4), netG="resnet_6blocks") != network_key(tiny_generator(4))
    assert size_class(torch.zeros(1, 3, 200, 300)) == size_class(torch.zeros(1, 3, 256, 256))
    assert size_class(torch.zeros(1, 3, 768, 1024)) != size_class(torch.zeros(2, 3, 768, 1024))
    assert set(PATHS) >= {"torch fp32", "onnxruntime int8", "openvino fp32", "openvino bf16"}


# --- the runtimes (export: seconds) --------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("onnxscript", reason="exporting to ONNX needs the export extra")
    from cyclegan.deploy.export import export_onnx

    net = tiny_generator()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "G.onnx", 3, 32, 48, dynamic=True)
    return net, path


@pytest.mark.slow
def test_openvino_generator_matches_torch_fp32(exported):
    pytest.importorskip("openvino", reason="the OpenVINO backend needs openvino (pip install 'cyclegan[openvino]')")
    from cyclegan.deploy.openvino_runtime import OpenVinoGenerator

    net, path = exported
    generator = OpenVinoGenerator(path, threads=1)
    assert generator.size_multiple == net.size_multiple == 4 and generator.input_nc == 3
    for height, width in ((32, 48), (33, 47), (32, 48)):  # odd sizes padded; a known shape reuses its compile
        x = pictures(2, height, width, seed=height)
        with torch.no_grad():
            expected = net(x)
        out = generator(x)
        assert out.shape == expected.shape
        assert (out - expected).abs().max() < 1e-3
    assert len(generator._compiled) == 2
    assert psnr(OpenVinoGenerator(path, 4, precision="bf16")(x), expected) >= 30


@pytest.mark.slow
def test_choose_path_over_every_backend_keeps_an_agreeing_one(exported, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnxruntime paths need onnxruntime")
    net, path = exported
    sample = pictures(1, 32, 48)
    choice = choose_path(net, sample, cache=tmp_path / "c.json", onnx_file=path, calibration=list(pictures(2, 32, 48)))
    assert choice.source == "measured" and choice.psnr_db >= 40
    with torch.no_grad():
        expected = net(sample)
    assert psnr(choice.run(sample), expected) >= 40


@pytest.mark.slow
def test_openvino_backend_runs_the_cached_export_of_a_run(trained_run):
    pytest.importorskip("openvino", reason="the OpenVINO backend needs openvino")
    from cyclegan.deploy.backends import load_backend_generators
    from cyclegan.deploy.openvino_runtime import OpenVinoGenerator

    torch_nets = load_backend_generators(trained_run.run_dir, backend="torch").nets
    loaded = load_backend_generators(trained_run.run_dir, backend="openvino")
    name, generator = next(iter(loaded.nets.items()))
    assert isinstance(generator, OpenVinoGenerator)
    x = pictures(1, 32, 32)
    with torch.no_grad():
        expected = torch_nets[name](x)
    assert (generator(x) - expected).abs().max() < 1e-3


# --- FastestPath: the per-size choice every door shares ------------------------------------------


def test_fastest_path_chooses_once_per_picture_size_and_skips_small_inputs(monkeypatch):
    from cyclegan.deploy import fastest

    calls = []

    def fake_choose(net, sample, device, **kwargs):
        calls.append((tuple(sample.shape), kwargs["precision"], kwargs["backend"]))
        return Choice("torch fp32 channels-last", lambda x: net(x) + 0, 1.0, math.inf, 1.1, "s", "CPU")

    monkeypatch.setattr(fastest, "choose_path", fake_choose)
    net = tiny_generator()
    path = fastest.FastestPath(net, "cpu", "auto", "auto", key="k")
    assert path.training is False
    small = pictures(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(path(small), net(small)) and calls == []  # under AUTO_MIN_PIXELS: torch fp32, no measuring
        big = pictures(2, 256, 256)
        path(big)
        path(big[:1])  # the same picture size in a shorter batch: the choice holds
        path(pictures(1, 256, 320))
    assert calls == [((2, 3, 256, 256), "auto", "auto"), ((1, 3, 256, 320), "auto", "auto")]
    exact = fastest.FastestPath(net, "cpu", "fp32", "torch")
    with torch.no_grad():
        assert torch.equal(exact(big), net(big)) and len(calls) == 2  # both explicit torch fp32: as it is


@pytest.mark.slow
def test_test_command_with_backend_auto_matches_fp32_and_says_what_it_chose(trained_run, tmp_path, monkeypatch,
                                                                          caplog):
    from cyclegan.deploy import fastest
    from cyclegan.inference.test_run import run_test

    monkeypatch.setattr(fastest, "AUTO_MIN_PIXELS", 0)  # the tiny run's pictures are small: measure them anyway
    common = {"dataroot": trained_run.data, "name": "run", "checkpoints_dir": trained_run.checkpoints, "eval_mode": True}
    exact = run_test(results_dir=tmp_path / "fp32", **common)
    with caplog.at_level("INFO", logger="cyclegan.deploy.fastest"):
        auto = run_test(results_dir=tmp_path / "auto", backend="auto", precision="auto", **common)
    assert any(record.getMessage().startswith("inference: ") for record in caplog.records)
    assert auto.count == exact.count
    if exact.scores is not None:
        assert abs(auto.scores["psnr"] - exact.scores["psnr"]) < 0.5
    with pytest.raises(ValueError, match="--quantize int8"):
        run_test(results_dir=tmp_path / "q", backend="auto", quantize="int8", **common)
