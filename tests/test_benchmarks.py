"""The benchmarks: the baseline computes what our step computes, and both scripts run (--quick).

The equivalence test is what makes the speed ratio meaningful: the reference-style eager step in
``benchmarks/common.py`` and our ``CycleGANModel.training_step`` at fp32 give the same losses and
the same weights from the same starting weights, up to float rounding (our step batches generator
and discriminator calls and uses the fused Adam kernel; it computes both losses before applying both updates, and
D's loss uses detached fakes, so the reference's order is the same arithmetic).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from cyclegan.core.precision import resolve_precision

from .conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from colour_branch_split import split_scores  # noqa: E402
from common import (  # noqa: E402
    BenchConfig,
    ConcurrentCyclesStep,
    ReferenceStep,
    build_our_step,
    cpu_isa,
    flops_per_iteration,
    markdown_table,
    random_batch,
    train_config,
)

CPU = torch.device("cpu")


def parameters(nets: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach()
        for name, net in nets.items()
        for key, value in net.state_dict().items()
    }


def assert_same_weights(ours, theirs, reference, atol):
    """Equal up to ``atol`` wherever the gradient is real.

    A conv bias right before instance norm has an exactly-zero gradient; Adam's step there is
    lr·sign(float noise), ±lr of random sign, so those elements cannot be compared.
    """
    grads = {f"{name}.{key}": param.grad for name, net in reference.networks().items()
             for key, param in net.named_parameters() if param.grad is not None}
    for key, value in ours.items():
        close = (value - theirs[key]).abs() <= atol
        if key in grads:
            close |= grads[key].abs() < 1e-5
        assert bool(close.all()), key


@pytest.mark.parametrize("batch_calls", [False, True])
@pytest.mark.parametrize("lambda_identity", [0.0, 0.5])
def test_baseline_step_is_our_step(lambda_identity, batch_calls):
    """Same losses and weights up to float rounding: ours batches generator and discriminator calls
    (per-sample norm) and uses the fused Adam kernel, which round differently from the reference's
    separate calls."""
    bench = BenchConfig("tiny", size=32, ngf=4, ndf=4, netG="resnet_6blocks", lambda_identity=lambda_identity)
    config = train_config(bench, seed=0)
    config.cycle_gan.batch_generator_calls = batch_calls
    config.cycle_gan.batch_discriminator_calls = batch_calls
    torch.manual_seed(0)
    model, precision = build_our_step(config, CPU, "fp32", channels_last=False, compile=False)
    reference = ReferenceStep(config)
    reference.load_from(model.nets)
    start = {k: v.clone() for k, v in parameters(dict(model.nets.items())).items()}
    real_A, real_B = random_batch(bench, CPU)
    d_calls: list[int] = []
    model.nets["D_A"].register_forward_hook(lambda module, args, out: d_calls.append(args[0].shape[0]))

    ours = model.training_step({"A": real_A, "B": real_B}, precision).losses
    assert d_calls == ([1, 2] if batch_calls else [1, 1, 1])
    theirs = reference.optimize_parameters(real_A, real_B)
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name].float(), rtol=1e-5, atol=1e-6)
    ours_weights, their_weights = parameters(dict(model.nets.items())), parameters(reference.networks())
    assert ours_weights.keys() == their_weights.keys()
    assert_same_weights(ours_weights, their_weights, reference, atol=2e-6)  # first-step moves: up to lr
    moved = [k for k, v in ours_weights.items() if (v - start[k]).abs().max() > 1e-4]
    assert len(moved) > len(ours_weights) // 4  # the comparison is about a real update


@pytest.mark.parametrize("lambda_identity", [0.0, 0.5])
def test_concurrent_cycles_step_is_our_step(lambda_identity):
    """Both cycles at once (two threads, gradients added in a fixed order) compute our step's losses
    and weights, up to float rounding, and the same again when run twice from the same start."""
    bench = BenchConfig("tiny", size=32, ngf=4, ndf=4, netG="resnet_6blocks", lambda_identity=lambda_identity,
                        batch_size=2)
    config = train_config(bench, seed=0)
    real_A, real_B = random_batch(bench, CPU)
    results = []
    for concurrent in (False, True, True):
        torch.manual_seed(0)
        model, precision = build_our_step(config, CPU, "fp32", channels_last=False, compile=False)
        if concurrent:
            losses = ConcurrentCyclesStep(model, precision)(real_A, real_B)
        else:
            losses = model.training_step({"A": real_A, "B": real_B}, precision).losses
        results.append((losses, parameters(dict(model.nets.items())), model))
    (ours, our_weights, our_model), (concurrent, weights, _), (again, weights_again, _) = results
    assert set(concurrent) == {name for name in ours if name not in ("colour_A", "colour_B", "body_A", "body_B")}
    for name in concurrent:
        torch.testing.assert_close(concurrent[name], ours[name], rtol=1e-5, atol=1e-6)
        assert torch.equal(concurrent[name], again[name])
    # Where the gradient is float noise (a conv bias before instance norm), Adam moves by ±lr either way.
    noise = {f"{name}.{key}": param.grad.abs() < 1e-5 for name, net in our_model.nets.items()
             for key, param in net.named_parameters() if param.grad is not None}
    for key, value in our_weights.items():
        close = (weights[key] - value).abs() <= 2e-6
        assert bool((close | noise.get(key, torch.zeros_like(close))).all()), key
        assert torch.equal(weights[key], weights_again[key]), key


def test_batch_norm_turns_call_batching_off():
    """Batch norm normalises over the batch, so one call on [real, fake] would mix the two images'
    statistics: with batch norm our step keeps the reference's separate calls (and its numbers),
    even though batching is asked for."""
    bench = BenchConfig("tiny", size=32, ngf=4, ndf=4, netG="resnet_6blocks", norm="batch")
    config = train_config(bench, seed=0)
    assert config.cycle_gan.batch_generator_calls and config.cycle_gan.batch_discriminator_calls
    torch.manual_seed(0)
    model, precision = build_our_step(config, CPU, "fp32", channels_last=False, compile=False)
    reference = ReferenceStep(config)
    reference.load_from(model.nets)
    calls: list[int] = []
    model.nets["D_A"].register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    real_A, real_B = random_batch(bench, CPU)
    ours = model.training_step({"A": real_A, "B": real_B}, precision).losses
    theirs = reference.optimize_parameters(real_A, real_B)
    assert calls == [1, 1, 1]  # fake_B for G, then real_B and pooled fake_B apart
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name].float(), rtol=1e-5, atol=1e-6)


def test_baseline_and_ours_stay_together_through_the_pool():
    """Pool of 1: from the second step on, D sees stored fakes drawn by the pools' own RNG."""
    bench = BenchConfig("tiny", size=32, ngf=4, ndf=4, netG="resnet_6blocks")
    config = train_config(bench, seed=3)
    config.model.pool_size = 1
    torch.manual_seed(0)
    model, precision = build_our_step(config, CPU, "fp32", channels_last=False, compile=False)
    reference = ReferenceStep(config)
    reference.load_from(model.nets)
    for step in range(3):
        real_A, real_B = random_batch(bench, CPU, seed=step)
        ours = model.training_step({"A": real_A, "B": real_B}, precision).losses
        theirs = reference.optimize_parameters(real_A, real_B)
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-6)
    ours_weights, their_weights = parameters(dict(model.nets.items())), parameters(reference.networks())
    assert_same_weights(ours_weights, their_weights, reference, atol=1e-5)


def test_flops_formula_counts_generator_and_discriminator_calls():
    bench = BenchConfig("t", size=64, ngf=8, ndf=8, netG="resnet_6blocks", lambda_identity=0.5, batch_size=2)
    flops, formula = flops_per_iteration(bench, {"G": 100, "D": 10})
    assert flops == 3 * 2 * (6 * 100 + 6 * 10) * 2
    assert "6 G passes" in formula and "6 D passes" in formula
    bench.lambda_identity = 0.0
    assert flops_per_iteration(bench, {"G": 100, "D": 10})[0] == 3 * 2 * (4 * 100 + 6 * 10) * 2


def test_markdown_table_shape():
    table = markdown_table(["a", "b"], [[1, 2.5], ["x", "y"]]).splitlines()
    assert table[0] == "| a | b |" and table[1].count("---") == 2 and len(table) == 4


def test_cpu_isa_names_the_vector_extensions_from_cpuinfo_flags():
    assert cpu_isa("fpu sse4_2 avx avx2 fma") == "AVX2, FMA"
    assert cpu_isa("avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8") == (
        "AVX2, FMA, AVX-512, AVX-512 VNNI, AVX-512 BF16, AMX-BF16, AMX-INT8"
    )
    assert cpu_isa("fpu sse2") == "unknown ISA"


def run_script(script: str, *args: str, tmp_path) -> tuple[str, dict]:
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the test must not crowd the machine
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--threads", "1", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout, json.loads(out.read_text())


def table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_train_step_benchmark_quick(tmp_path):
    stdout, report = run_script(
        "train_step.py", "--size", "32", "--ngf", "4", "--ndf", "4", tmp_path=tmp_path
    )
    rows = table_rows(stdout)
    assert len(rows) == 4 and all(len(row) == len(rows[0]) == 10 for row in rows)  # header, rule, 2 variants
    assert [row[0] for row in rows[2:]] == ["baseline", "ours"]
    assert [r["variant"] for r in report["results"]] == ["baseline", "ours"]
    baseline, ours = report["results"]
    assert baseline["precision"] == "fp32" and not baseline["channels_last"]
    # The training defaults: --precision auto resolved by the package's rule (bf16 on a CPU with native bf16).
    assert ours["precision"] == resolve_precision("auto", CPU) and not ours["channels_last"]
    assert baseline["speedup_vs_baseline"] == 1.0 and ours["speedup_vs_baseline"] > 0
    for result in report["results"]:
        assert result["timed_iterations"] == 2 and result["losses_finite"]
        assert result["median_ms"] > 0 and result["images_per_s"] > 0
        assert result["peak_memory_mib"] >= result["start_memory_mib"] > 0
        assert 0 < result["fraction_of_peak"]
    assert report["flops_per_iteration"] > 0 and set(report["conv_peak_tflops"]) >= {"fp32", "bf16"}
    assert report["config"]["size"] == 32 and "speed of ours relative to the baseline" in stdout
    assert report["concurrent_vs_ours"] is None


def test_train_step_benchmark_times_both_cycles_at_once(tmp_path):
    stdout, report = run_script("train_step.py", "--size", "32", "--ngf", "4", "--ndf", "4", "--precision", "fp32",
                                "--threads", "2", "--concurrent_cycles", tmp_path=tmp_path)
    assert [row[0] for row in table_rows(stdout)[2:]] == ["baseline", "ours", "concurrent"]
    concurrent = report["results"][2]
    assert concurrent["losses_finite"] and concurrent["timed_iterations"] == 2
    assert report["concurrent_vs_ours"] > 0 and "both cycles at once, relative to ours" in stdout


@pytest.mark.slow
@pytest.mark.timeout(600)  # subprocesses with their own limits; more than the default
def test_inference_benchmark_quick(tmp_path):
    stdout, report = run_script(
        "inference.py", "--size", "32", "--ngf", "4", "--netG", "resnet_6blocks", tmp_path=tmp_path
    )
    rows = table_rows(stdout)
    assert len(rows) == 6 and all(len(row) == 7 for row in rows)  # header, rule, 4 variants
    names = [r["variant"] for r in report["results"]]
    assert names[0] == "eager fp32" and names[1].startswith("ours (" + resolve_precision("auto", CPU))
    assert names[2].startswith("onnxruntime fp32") and names[3].startswith("onnxruntime int8")
    eager, ours, onnx, int8 = report["results"]
    assert eager["max_abs_diff"] == 0.0 and eager["psnr_db"] == float("inf")
    assert onnx["max_abs_diff"] < 1e-3  # fp32 export
    assert 20 < int8["psnr_db"] < onnx["psnr_db"]  # quantised: close, but not the fp32 graph
    assert ours["max_abs_diff"] < 0.2  # bf16: a coarse sanity bound, not a quality claim
    assert all(r["images_per_s"] > 0 for r in report["results"])


@pytest.mark.slow
@pytest.mark.timeout(1200)  # subprocesses with their own limits; more than the default
def test_gpu_check_script_runs_end_to_end_in_its_dry_run(tmp_path):
    """`benchmarks/gpu_check.sh` is what a session lent a GPU runs in one go; its dry run takes the
    same steps on the CPU at tiny sizes, so a broken flag or path shows here, not on borrowed time."""
    env = dict(os.environ, DRY_RUN="1", OUT=str(tmp_path / "out"), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    completed = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh")], capture_output=True, text=True,
                               env=env, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["cut_vs_cyclegan.md", "inference.md", "machine.txt", "tests.txt",
                                                     "train_step.md"]
    assert "torch " in (out / "machine.txt").read_text()
    tests = (out / "tests.txt").read_text()
    assert ("skipped" in tests) != torch.cuda.is_available() and "error" not in tests.lower()
    train = (out / "train_step.md").read_text()
    assert train.count("speed of ours relative to the baseline") == 3  # bf16, + channels-last, + compile
    # The compiled channels-last variant ran; on a CPU with contiguous batches, as the trainer compiles
    # there (cyclegan.training.trainer.compiled_channels_last_is_safe), at the CPU's own precision (bf16 only
    # where native: no test forces an emulated precision), and traced without inductor's kernels.
    assert f"| ours | {resolve_precision('auto', torch.device('cpu'))} | no | aot_eager |" in train
    assert len(table_rows((out / "inference.md").read_text())) == 6  # header, rule, 4 variants (int8 included)
    assert [row[0] for row in table_rows((out / "cut_vs_cyclegan.md").read_text())[2:]] == ["cyclegan", "cut", "fastcut"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a subprocess that trains; more than the default
def test_learning_suite_prints_one_row_per_task_and_seed(tmp_path):
    """`learning_suite.py` at tiny settings (2 iterations, one task, one seed): the table's shape, the
    summary line and the JSON records; the scores of so short a run mean nothing."""
    out = tmp_path / "suite.json"
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "learning_suite.py"), "--tasks", "zebra", "--seeds", "0", "--iters", "2",
         "--n", "8", "--n_test", "4", "--threads", "1", "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=500)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = table_rows(completed.stdout)
    assert len(rows) == 3 and all(len(row) == len(rows[0]) == 10 for row in rows)  # header, rule, one pair
    assert rows[0][:4] == ["task", "seed", "PSNR (dB)", "SSIM"] and rows[2][:2] == ["zebra", "0"]
    assert rows[2][7] in ("yes", "no") and float(rows[2][5]) == pytest.approx(float(rows[2][2]) - float(
        rows[2][4].split()[0]), abs=0.011)
    assert "task x seed pairs" in completed.stdout and "machine: " in completed.stdout
    report = json.loads(out.read_text())
    (record,) = report["settings"]["quick"]
    assert record["task"] == "zebra" and record["iters"] == 2 and record["wall_s"] > 0
    assert record["precision"] in ("fp32", "bf16") and rows[2][9] == record["precision"]
    assert record["margin_psnr"] == pytest.approx(record["psnr"] - record["baseline_psnr"])
    assert set(record["baselines"]) == {"doing nothing", "constant image", "colour transfer", "histogram matching"}
    # colour_branch_split.py on the same run: its "doing nothing" is the suite's baseline exactly (the same
    # pictures and scores), its whole generator the suite's score (which ran under the run's precision).
    split = split_scores(tmp_path / "work" / "zebra_seed0" / "runs" / "quick", tmp_path / "work" / "data" / "zebra_seed0")
    assert list(split) == ["whole generator", "colour branch alone", "doing nothing"]
    assert split["doing nothing"]["psnr"] == pytest.approx(record["baselines"]["doing nothing"]["psnr"], abs=1e-4)
    assert split["doing nothing"]["ssim"] == pytest.approx(record["baselines"]["doing nothing"]["ssim"], abs=1e-4)
    assert split["whole generator"]["psnr"] == pytest.approx(record["psnr"], abs=0.1)


def test_colour_branch_split_names_the_folder_without_truths(tmp_path):
    (tmp_path / "valA").mkdir()
    with pytest.raises(FileNotFoundError, match="valA_gt"):
        split_scores(tmp_path / "run", tmp_path)


def test_vs_reference_pure_parts_without_their_checkouts(tmp_path):
    """`vs_reference.py`'s parts that need neither the reference's nor CUT's checkout: the iteration
    plan, both sides' command lines, the loss-log parsing (the reference's, CUT's average), the time
    outside the steps, and the step clock the hook puts around a `models.create_model` model."""
    import math

    import vs_reference as vs

    plan = vs.plan_iterations(200, 200)
    assert (plan.iterations, plan.epochs, plan.epoch_size, plan.max_dataset_size, plan.save_epoch_freq) == (
        200, 1, 200, None, 1)
    assert vs.plan_iterations(2000, 200) == vs.Plan(2000, 10, 200, None, None)  # 10 epochs: saves at 5 and 10
    assert vs.plan_iterations(50, 200) == vs.Plan(50, 1, 50, 50, 1)
    assert vs.plan_iterations(300, 200).iterations == 300  # 2 epochs of 150

    root = tmp_path / "work"
    trains = vs.train_commands("cycle_gan", plan, tmp_path / "data", root, "py", tmp_path / "ref", "cyclegan")
    assert list(trains) == ["reference", "ours"]
    theirs, ours = trains["reference"], trains["ours"]
    assert theirs[:2] == ["py", str(tmp_path / "ref" / "train.py")] and ours[:2] == ["cyclegan", "train"]
    shared = vs.train_flags("cycle_gan", plan, tmp_path / "data", "x", root / "checkpoints")
    for flags, name in ((theirs[2:], "reference_cycle_gan"), (ours[2:], "ours_cycle_gan")):
        assert flags == [name if f == "x" else f for f in shared]  # the same flags, each side its own run
    joined = " ".join(shared)
    for expected in ("--netG resnet_6blocks --ngf 32 --ndf 32", "--load_size 72 --crop_size 64",
                     "--lambda_identity 0", "--n_epochs 1 --n_epochs_decay 0", "--save_epoch_freq 1"):
        assert expected in joined
    cut = vs.train_commands("fastcut", plan, tmp_path / "data", root, "py", tmp_path / "cut", "cyclegan")
    assert list(cut) == ["CUT", "ours"] and "--CUT_mode FastCUT" in " ".join(cut["ours"])
    assert cut["CUT"][-4:] == ["--gpu_ids", "-1", "--display_id", "0"]  # no CUDA assumed, no visdom server
    tests = vs.test_commands("cycle_gan", tmp_path / "data", root, "py", tmp_path / "ref", "cyclegan")
    assert "--lambda_identity" not in tests["reference"] and "--load_size 64 --crop_size 64" in " ".join(
        tests["reference"])
    assert tests["ours"][:2] == ["cyclegan", "test"]

    reference_log = """================ Training Loss (Sun Dec  6 08:02:38 2026) ================
[Rank 0] (epoch: 1, iters: 100, time: 0.671, data: 0.194) , D_A: 1.511, G_A: 2.334, cycle_A: 7.839, idt_A: 0.000

[Rank 0] (epoch: 1, iters: 200, time: 0.742, data: 0.002) , D_A: 1.076, G_A: 1.411, cycle_A: 7.227, idt_A: 0.000
(epoch: 2, iters: 100, time: 0.700, data: 0.001) G_A: 1.146 G_B: 0.889 D_B: nan
"""
    lines = vs.parse_loss_log(reference_log)
    assert [(line["epoch"], line["iters"], line["time"], line["data"]) for line in lines] == [
        (1, 100, 0.671, 0.194), (1, 200, 0.742, 0.002), (2, 100, 0.700, 0.001)]
    assert lines[0]["losses"] == {"D_A": 1.511, "G_A": 2.334, "cycle_A": 7.839, "idt_A": 0.0}
    assert math.isnan(lines[2]["losses"]["D_B"])
    assert vs.logged_step_time("reference", lines, 200) == 0.700  # the median of the logged iterations

    # CUT logs t_k = 0.995 t_(k-1) + 0.005 x_k from 0.1 s: a constant 0.45 s step is recovered from it.
    ema, cut_lines = 0.1, []
    for k in range(1, 301):
        ema = 0.995 * ema + 0.005 * 0.45
        if k % 100 == 0:
            cut_lines.append({"epoch": 1 + (k - 1) // 200, "iters": (k - 1) % 200 + 1, "time": ema, "data": 0.0})
    assert vs.logged_step_time("CUT", cut_lines, 200) == pytest.approx(0.45)
    assert vs.cut_step_from_ema(cut_lines[:1], 200) == pytest.approx(0.45)
    assert cut_lines[-1]["time"] < 0.4  # what the log shows is far from the step

    assert vs.outside_the_steps(100.0, 200, 0.4) == pytest.approx(20.0)
    steps = [(10.0, 10.5), (10.6, 11.1), (13.1, 13.6), (13.7, 14.2)]  # 2 epochs of 2; 2 s at the epoch's end
    found = vs.timeline(launched=2.0, finished=17.2, steps=steps, epoch_size=2)
    assert found["wall_s"] == pytest.approx(15.2) and found["iterations"] == 4
    assert found["step_mean_s"] == pytest.approx(0.5) and found["outside_s"] == pytest.approx(13.2)
    assert found["startup_s"] == pytest.approx(8.0) and found["end_s"] == pytest.approx(3.0)
    assert found["between_steps_s"] == pytest.approx(2.2) and found["epoch_ends_s"] == pytest.approx(2.0)
    assert found["startup_s"] + found["between_steps_s"] + found["end_s"] == pytest.approx(found["outside_s"])

    # The hook, as their train.py meets it: `from models import create_model`, then optimize_parameters.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text(
        "class Model:\n    def optimize_parameters(self):\n        return 'stepped'\n\n"
        "def create_model(opt):\n    return Model()\n")
    (tmp_path / "train.py").write_text(
        "from models import create_model\nmodel = create_model(None)\n"
        "assert [model.optimize_parameters() for _ in range(3)] == ['stepped'] * 3\n")
    times = tmp_path / "steps.json"
    env = vs.run_environment(times, threads=1, theirs=True)
    subprocess.run([sys.executable, str(tmp_path / "train.py")], env=env, cwd=tmp_path, check=True, timeout=60)
    record = json.loads(times.read_text())
    assert len(record["steps"]) == 3 and record["imported"] <= record["steps"][0][0] <= record["exited"]
    assert all(start <= end for start, end in record["steps"])


def test_outside_steps_clocks_are_exclusive_and_removed_afterwards():
    from outside_steps import clocked

    class Work:
        def outer(self):
            return self.inner() + 1

        def inner(self):
            time.sleep(0.01)
            return 1

    original = Work.outer
    with clocked(((Work, "outer", "outer"), (Work, "inner", "inner"))) as (seconds, calls):
        assert Work().outer() == 2 and Work().inner() == 1
    assert dict(calls) == {"outer": 1, "inner": 2}
    assert seconds["inner"] >= 0.02 and 0 <= seconds["outer"] < seconds["inner"]  # inner's time not counted twice
    assert Work.outer is original


@pytest.mark.slow
def test_outside_steps_benchmark_splits_a_run_with_and_without_validation(tmp_path):
    """`outside_steps.py` at tiny settings: a table per data layout, validation only where its folders
    are, and shares that add up to the run's wall time."""
    out = tmp_path / "outside.json"
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "outside_steps.py"), "--iters", "3", "--n", "3", "--n_test", "2", "--ngf", "4",
         "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "### val: outside the steps" in completed.stdout and "### noval: outside the steps" in completed.stdout
    layouts = json.loads(out.read_text())["layouts"]
    for name, result in layouts.items():
        phases = result["phases"]
        assert phases["steps"]["calls"] == 3 and result["iters"] == 3
        assert sum(p["s"] for p in phases.values()) == pytest.approx(result["fit_s"])
        assert result["outside_s"] == pytest.approx(result["fit_s"] - phases["steps"]["s"])
        assert ("validation (generator passes, scores)" in phases) == (name == "val")
    assert not (tmp_path / "work" / "data_noval" / "valA").exists() and (tmp_path / "work" / "data_val" / "valA").is_dir()


@pytest.mark.slow
def test_learning_suite_refuses_a_run_stopped_by_a_signal(tmp_path, monkeypatch):
    """A run that the trainer stopped on SIGTERM (it saves and returns) trained less than the fixed
    budget: the suite raises, naming the pair and the iterations, instead of writing its scores as a record."""
    import dataclasses as dc

    import learning_suite

    from cyclegan.data.synthetic_tasks import write_task_dataset

    data = write_task_dataset("tint", tmp_path / "data", n=4, size=32, seed=0, n_test=2)
    real_fit = learning_suite.TimedTrainer.fit

    def stopped_fit(self):
        return dc.replace(real_fit(self), stopped_by_signal="SIGTERM")  # as the trainer's handler leaves it

    monkeypatch.setattr(learning_suite.TimedTrainer, "fit", stopped_fit)
    pair = learning_suite.Pair(setting="quick", task="tint", seed=0, iters=2, size=32, threads=1,
                               dataroot=str(data), workdir=str(tmp_path / "work"))
    with pytest.raises(RuntimeError, match=r"tint seed 0: stopped by SIGTERM after 2 of 2 iterations; no record"):
        learning_suite.run_pair(pair)
