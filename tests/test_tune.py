"""``--tune``: the choice logic with injected timings and losses, the cache, and one real measurement.

No test depends on this machine's speed: :func:`cyclegan.training.tune.choose` is fed made-up timings, and
the one test that measures only checks that it measured (finite losses, positive times).
"""

from __future__ import annotations

import json

import pytest
import torch

from cyclegan.training.tune import (
    Candidate,
    Choice,
    Measurement,
    apply,
    cached_choice,
    candidates,
    choose,
    config_key,
    keeps_numerics,
    measure,
    store_choice,
    tune,
)

from .helpers import tiny_config, tiny_dataset

FP32 = Candidate("fp32", False, 2)
LOSSES = {"G_A": 0.50, "D_A": 0.25, "cycle_A": 1.5}


def measured(**times_and_losses) -> Measurement:
    return Measurement(times_and_losses.pop("seconds"), times_and_losses.pop("losses", LOSSES))


def test_the_fastest_candidate_that_keeps_the_numerics_wins():
    bf16 = Candidate("bf16", False, 2)
    bf16_cl = Candidate("bf16", True, 2)
    fp32_cl = Candidate("fp32", True, 2)
    timings = {
        FP32: measured(seconds=1.0),
        fp32_cl: measured(seconds=0.8, losses={k: v * (1 + 1e-5) for k, v in LOSSES.items()}),
        bf16: measured(seconds=0.6, losses={k: v * 1.01 for k, v in LOSSES.items()}),  # bf16 rounding: kept
        bf16_cl: measured(seconds=0.3, losses={**LOSSES, "G_A": float("nan")}),  # fastest, but a NaN
    }
    choice = choose(timings, FP32)
    assert choice.candidate == bf16
    assert "1.67×" in choice.reason and "rejected for their losses: bf16 + channels_last" in choice.reason


def test_fp32_losses_must_agree_closely_and_bf16_loosely():
    assert keeps_numerics({k: v * 1.01 for k, v in LOSSES.items()}, LOSSES, "bf16")
    assert not keeps_numerics({k: v * 1.01 for k, v in LOSSES.items()}, LOSSES, "fp32")
    assert not keeps_numerics({k: v * 1.2 for k, v in LOSSES.items()}, LOSSES, "bf16")
    assert not keeps_numerics({"G_A": 0.5}, LOSSES, "fp32")  # a loss missing
    assert not keeps_numerics({**LOSSES, "D_A": float("inf")}, LOSSES, "fp32")


def test_a_gain_within_the_noise_keeps_the_baseline():
    other = Candidate("fp32", True, 2)
    choice = choose({FP32: measured(seconds=1.0), other: measured(seconds=0.99)}, FP32)
    assert choice.candidate == FP32 and "only 1.01× faster: kept" in choice.reason


def test_candidates_offer_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("cyclegan.core.precision.cpu_has_native_bf16", lambda: False)
    options = candidates(cpu, cpu_count=4)
    assert {c.precision for c in options} == {"fp32"}
    assert {c.threads for c in options} == {4, 2} and {c.channels_last for c in options} == {False, True}
    assert options[0] == Candidate("fp32", False, 4)  # the baseline comes first
    monkeypatch.setattr("cyclegan.core.precision.cpu_has_native_bf16", lambda: True)
    assert {c.precision for c in candidates(cpu, cpu_count=1)} == {"fp32", "bf16"}
    assert {c.threads for c in candidates(cpu, cpu_count=1)} == {1}


def test_choice_is_cached_per_machine_and_config(tmp_path):
    cache = tmp_path / "cache" / "tune.json"
    config = tiny_config(tmp_path / "data", tmp_path / "ck")
    key = config_key(config)
    assert cached_choice(cache, "cpu X", key) is None
    choice = Choice(Candidate("bf16", True, 2), "measured reason")
    store_choice(cache, "cpu X", key, choice)
    store_choice(cache, "cpu Y", key, Choice(FP32, "other machine"))
    again = cached_choice(cache, "cpu X", key)
    assert again.candidate == choice.candidate and again.reason == "measured reason" and again.cached
    assert cached_choice(cache, "cpu X", config_key(apply(config, FP32))) is not None  # same shape: same key
    wider = tiny_config(tmp_path / "data", tmp_path / "ck", model__ngf=8)
    assert cached_choice(cache, "cpu X", config_key(wider)) is None  # another config: measure again
    cache.write_text("{not json")
    assert cached_choice(cache, "cpu X", key) is None  # unreadable: measure again, no crash


def test_tune_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("cyclegan.core.precision.cpu_has_native_bf16", lambda: False)
    config = tiny_config(tmp_path / "data", tmp_path / "ck")
    cache = tmp_path / "tune.json"
    calls = []

    def fake_measure(cfg, candidate):
        calls.append(candidate)
        return Measurement(0.5 if candidate.channels_last else 1.0, LOSSES)

    tuned, choice, line = tune(config, cache_path=cache, measure_fn=fake_measure)
    assert calls and choice.candidate.channels_last and not choice.cached
    assert tuned.runtime.channels_last and tuned.runtime.precision == "fp32"
    assert tuned.runtime.torch_threads == choice.candidate.threads
    assert line.startswith("tune (measured, ") and "channels_last" in line and "2.00×" in line
    calls.clear()
    _, again, line = tune(config, cache_path=cache, measure_fn=fake_measure)
    assert not calls and again.cached and line.startswith("tune (cached choice, ")
    assert json.loads(cache.read_text())["version"] == 1
    tune(config, cache_path=cache, measure_fn=fake_measure, refresh=True)
    assert calls  # --retune measures again


def test_tune_stops_starting_candidates_after_its_budget_and_does_not_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("cyclegan.core.precision.cpu_has_native_bf16", lambda: False)
    config = tiny_config(tmp_path / "data", tmp_path / "ck")
    ticks = iter(range(0, 1000, 100))  # each clock read: 100 s later

    def fake_measure(cfg, candidate):
        return Measurement(1.0, LOSSES)

    _, choice, _ = tune(config, cache_path=tmp_path / "tune.json", measure_fn=fake_measure,
                        budget_seconds=150, clock=lambda: next(ticks))
    assert "candidate(s) skipped after 150 s" in choice.reason
    assert not (tmp_path / "tune.json").exists()


def test_measure_runs_real_steps_of_the_run(tmp_path):
    data = tiny_dataset(tmp_path / "data", n=2, n_test=1)
    config = tiny_config(data, tmp_path / "ck")
    result = measure(config, Candidate("fp32", True, 1), steps=1, warmup=1)
    assert result.seconds_per_step > 0
    assert result.losses and all(v == v and abs(v) < float("inf") for v in result.losses.values())
    again = measure(config, Candidate("fp32", False, 1), steps=1, warmup=1)
    assert keeps_numerics(again.losses, result.losses, "fp32")  # same weights and batch: same losses
    assert torch.get_num_threads() >= 1


def test_train_parser_knows_tune_and_torch_threads():
    from cyclegan.cli import build_parser, train_config_from_args

    args = build_parser().parse_args(["train", "--dataroot", "x", "--tune", "--torch_threads", "3"])
    assert args.tune and not args.retune
    assert train_config_from_args(args).runtime.torch_threads == 3


@pytest.mark.slow
def test_cli_train_tune_prints_its_choice_and_trains_with_it(tmp_path, monkeypatch, capsys):
    from cyclegan.cli import main
    from cyclegan.config import TrainConfig

    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    data = tiny_dataset(tmp_path / "data", n=2, n_test=1)
    flags = ["train", "--dataroot", str(data), "--name", "tuned", "--checkpoints_dir", str(tmp_path / "ck"),
             "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load_size", "36", "--crop_size", "32",
             "--num_threads", "0", "--max_iters", "1", "--no_html", "--tune"]
    assert main(flags) == 0
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("tune ("))
    assert line.startswith("tune (measured, ") and "ms/step" in line
    saved = TrainConfig.load(tmp_path / "ck" / "tuned" / "config.json").runtime
    cached = json.loads((tmp_path / "cache" / "tune.json").read_text())["choices"]
    (entry,) = cached.values()
    assert (saved.precision, saved.channels_last, saved.torch_threads) == (
        entry["candidate"]["precision"], entry["candidate"]["channels_last"], entry["candidate"]["threads"]
    )


def test_bf16_is_not_native_where_the_kernels_are_pinned_below_avx512(monkeypatch):
    # ATEN_CPU_CAPABILITY=avx2 (an AVX2 machine emulated, or the ISA pinned by the user) keeps bf16 emulated.
    from cyclegan.core.precision import cpu_has_native_bf16, resolve_precision

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not cpu_has_native_bf16()
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
