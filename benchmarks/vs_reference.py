"""Whole runs against the code users ran before: the reference's and CUT's own ``train.py`` / ``test.py``
beside ``cyclegan train`` / ``cyclegan test``, on the same generated data with the same flags.

    nice -n 19 .venv/bin/python benchmarks/vs_reference.py --reference /tmp/ref --cut /tmp/cut \\
        --model cycle_gan pix2pix cut fastcut --iters 200 --threads 2 --out vs_reference.json

``--reference``: a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (measured at commit 2a7afba);
``--cut``: one of taesungp/contrastive-unpaired-translation. Nothing of theirs is copied here: their
scripts run from their checkouts, with this Python (``--python``: it needs torch, torchvision and
``dominate``; the reference's ``util/visualizer.py`` also imports ``wandb`` at the top and uses it only
with ``--use_wandb``, so where wandb is not installed ``vs_reference_hook/stubs/wandb.py`` stands in).

What runs, per ``--model``, theirs first, then ours, one after the other:

- data: ``cyclegan data synthetic DIR --n 200 --size 64`` (unpaired: trainA/B, testA, testA_gt) and
  with ``--paired`` for pix2pix (train/ test/ of A|B files, the reference's aligned layout);
- the same flags on both sides: resnet_6blocks, ngf / ndf 32, 64 px crops of 72 px images
  (``--load_size 72 --crop_size 64``), batch 1; CycleGAN with λ_identity 0; pix2pix and CUT / FastCUT
  with their own defaults otherwise (CUT / FastCUT against CUT's code, ``--CUT_mode``). Everything else
  is each side's own default: their HTML pages (``--no_html`` turns the reference's / CUT's off), our
  validation, training page and TensorBoard log. CUT gets ``--display_id 0`` (no visdom server; its
  default would try to start one) and ``--gpu_ids -1`` without CUDA;
- iterations: the reference counts epochs, so ``--iters N`` becomes E = ⌈N / images⌉ epochs of
  S = ⌈N / E⌉ images (``--max_dataset_size S`` when S is below the data set's size), ``--n_epochs E
  --n_epochs_decay 0``, batch 1: E·S iterations on each side (N itself when it divides evenly).
  ``--save_epoch_freq E`` is passed when E is not a multiple of the reference's default 5, so that the
  last epoch leaves a checkpoint for ``test.py``;
- then each side's test script on the test split (``--num_test`` above its size; theirs at
  ``--load_size 64 --crop_size 64``, i.e. the images as they are, as ours by default), and both
  sides' ``fake_B`` scored with ``cyclegan.metrics`` (PSNR / SSIM against testA_gt, for pix2pix
  against the B halves) beside the trivial baselines on the same images.

CUT's ``train.py`` wraps its networks in ``DataParallel`` even on a CPU, so its CPU checkpoints carry
a ``module.`` prefix that its own ``test.py`` cannot load; the benchmark strips the prefix from the
saved files (their code is left as it is) before testing.

Timing. The wall time of each run is taken here around the subprocess (interpreter start to exit).
Each step's own start and end come from ``vs_reference_hook/sitecustomize.py``, put on PYTHONPATH:
it wraps their ``optimize_parameters`` and our ``training_step`` with a clock, the same work on both
sides, without editing either. From those: time per iteration (median and mean), and the time outside
the steps = wall − iterations × mean step time, split into start-up (launch to the first step),
between steps (data, logging, pages, checkpoints, epoch ends with our validation) and the end (last
step to exit: final checkpoints). Each side's own ``loss_log.txt`` figure is printed beside it, but
they measure different things: the reference's ``time:`` is one iteration's compute (with the page's
images when one is due), CUT's an exponential average (weight 0.995 from 0.1 s, undone here between
the first and last line), ours the wall time per image over windows of a second or more (data
loading included). With print_freq 100 a short run logs few lines.

The reference truncates a folder to ``--max_dataset_size`` before sorting it and we after, so below
the data set's size the two sides may train on different subsets; the scores of short runs say
little either way.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere
from common import machine_description, markdown_table, write_json  # noqa: E402

from cyclegan.metrics.baselines import dataset_baselines  # noqa: E402
from cyclegan.metrics.evaluate import evaluate_folders  # noqa: E402

HOOK = Path(__file__).resolve().parent / "vs_reference_hook"
MODELS = ("cycle_gan", "pix2pix", "cut", "fastcut")
CUT_MODES = {"cut": "CUT", "fastcut": "FastCUT"}
NETWORK_FLAGS = ["--netG", "resnet_6blocks", "--ngf", "32", "--ndf", "32"]
TRAIN_SIZE_FLAGS = ["--load_size", "72", "--crop_size", "64"]
TEST_SIZE_FLAGS = ["--load_size", "64", "--crop_size", "64"]  # theirs; ours tests at the images' own size
REFERENCE_SAVE_EPOCH_FREQ = 5
NUM_TEST = 100_000  # above any test split here: every test image
CUT_EMA_DECAY, CUT_EMA_START_S = 0.995, 0.1  # CUT's train.py: optimize_time = 0.995 · it + 0.005 · step

LOSS_LINE = re.compile(r"\(epoch: (?P<epoch>\d+), iters: (?P<iters>\d+), time: (?P<time>[\d.]+), "
                       r"data: (?P<data>[\d.]+)\)\s*,?\s*(?P<losses>.*)")
LOSS_TERM = re.compile(r"(\w+): (-?(?:[\d.]+|nan|inf))")


# --- the plan and the command lines (pure) ---------------------------------------------------------


@dataclass
class Plan:
    """How N iterations are expressed in epochs, for the reference's epoch-counting train.py."""

    iterations: int
    epochs: int
    epoch_size: int
    max_dataset_size: int | None
    save_epoch_freq: int | None


def plan_iterations(iters: int, images: int) -> Plan:
    epochs = math.ceil(iters / images)
    epoch_size = math.ceil(iters / epochs)
    return Plan(iterations=epochs * epoch_size, epochs=epochs, epoch_size=epoch_size,
                max_dataset_size=epoch_size if epoch_size < images else None,
                save_epoch_freq=None if epochs % REFERENCE_SAVE_EPOCH_FREQ == 0 else epochs)


def their_side(model: str) -> str:
    return "CUT" if model in CUT_MODES else "reference"


def model_flags(model: str, train: bool = True) -> list[str]:
    if model in CUT_MODES:
        return ["--model", "cut", "--CUT_mode", CUT_MODES[model]]
    return ["--model", model] + (["--lambda_identity", "0"] if train and model == "cycle_gan" else [])


def train_flags(model: str, plan: Plan, dataroot: Path, name: str, checkpoints_dir: Path) -> list[str]:
    """The flags both sides' train commands share."""
    flags = ["--dataroot", str(dataroot), "--name", name, "--checkpoints_dir", str(checkpoints_dir),
             *model_flags(model), *NETWORK_FLAGS, *TRAIN_SIZE_FLAGS,
             "--n_epochs", str(plan.epochs), "--n_epochs_decay", "0"]
    if plan.max_dataset_size is not None:
        flags += ["--max_dataset_size", str(plan.max_dataset_size)]
    if plan.save_epoch_freq is not None:
        flags += ["--save_epoch_freq", str(plan.save_epoch_freq)]
    return flags


def their_extra_flags(model: str, train: bool, cuda: bool, no_html: bool) -> list[str]:
    flags = []
    if model in CUT_MODES:  # CUT: --gpu_ids 0 by default (fails without CUDA); a random visdom id
        flags += ["--gpu_ids", "0" if cuda else "-1"] + (["--display_id", "0"] if train else [])
    if train and no_html:
        flags.append("--no_html")
    return flags


def train_commands(model: str, plan: Plan, dataroot: Path, work: Path, python: str, checkout: Path,
                   cyclegan: str, cuda: bool = False, no_html: bool = False) -> dict[str, list[str]]:
    """Both sides' train command lines, theirs first."""
    side = their_side(model)
    theirs = [python, str(checkout / "train.py"),
              *train_flags(model, plan, dataroot, f"{side}_{model}", work / "checkpoints"),
              *their_extra_flags(model, True, cuda, no_html)]
    ours = [cyclegan, "train", *train_flags(model, plan, dataroot, f"ours_{model}", work / "checkpoints")]
    return {side: theirs, "ours": ours}


def test_commands(model: str, dataroot: Path, work: Path, python: str, checkout: Path, cyclegan: str,
                  cuda: bool = False) -> dict[str, list[str]]:
    side = their_side(model)
    place = ["--checkpoints_dir", str(work / "checkpoints"), "--results_dir", str(work / "results"),
             "--num_test", str(NUM_TEST)]
    theirs = [python, str(checkout / "test.py"), "--dataroot", str(dataroot), "--name", f"{side}_{model}", *place,
              *model_flags(model, train=False), *NETWORK_FLAGS,
              *TEST_SIZE_FLAGS, *their_extra_flags(model, False, cuda, False)]
    ours = [cyclegan, "test", "--dataroot", str(dataroot), "--name", f"ours_{model}", *place]
    return {side: theirs, "ours": ours}


# --- what the runs leave (pure) ----------------------------------------------------------------------


def parse_loss_log(text: str) -> list[dict[str, Any]]:
    """The ``(epoch: E, iters: I, time: T, data: D) name: value ...`` lines of a loss_log.txt (the
    reference's, CUT's and ours; the reference's newer lines start with ``[Rank 0]``)."""
    lines = []
    for line in text.splitlines():
        match = LOSS_LINE.search(line)
        if match:
            lines.append({"epoch": int(match["epoch"]), "iters": int(match["iters"]), "time": float(match["time"]),
                          "data": float(match["data"]),
                          "losses": {k: float(v) for k, v in LOSS_TERM.findall(match["losses"])}})
    return lines


def cut_step_from_ema(lines: list[dict[str, Any]], epoch_size: int) -> float | None:
    """The mean step time behind CUT's logged ``time:``, an average t_k = 0.995 t_(k-1) + 0.005 x_k from
    t_0 = 0.1 s: between two lines m iterations apart, x̄ = (t_b − 0.995^m t_a) / (1 − 0.995^m).
    With one line, from t_0 (the first step then counts CUT's set-up too)."""
    points = [((line["epoch"] - 1) * epoch_size + line["iters"], line["time"]) for line in lines]
    if not points:
        return None
    (a, t_a), (b, t_b) = (points[0], points[-1]) if len(points) > 1 else ((0, CUT_EMA_START_S), points[0])
    if b <= a:
        return None
    weight = CUT_EMA_DECAY ** (b - a)
    return (t_b - weight * t_a) / (1 - weight)


def logged_step_time(side: str, lines: list[dict[str, Any]], epoch_size: int) -> float | None:
    if side == "CUT":
        return cut_step_from_ema(lines, epoch_size)
    return statistics.median(line["time"] for line in lines) if lines else None


def outside_the_steps(wall_s: float, iterations: int, step_s: float) -> float:
    return wall_s - iterations * step_s


def timeline(launched: float, finished: float, steps: list[tuple[float, float]], epoch_size: int) -> dict[str, Any]:
    """Wall time, steps and where the rest went, from the hook's step clock and the launch / exit times.

    The gap after every ``epoch_size``-th step (but the last) is an epoch's end: scheduler, pages,
    checkpoints and, in ours, validation."""
    durations = [end - start for start, end in steps]
    gaps = [steps[i + 1][0] - steps[i][1] for i in range(len(steps) - 1)]
    wall = finished - launched
    mean = statistics.fmean(durations) if durations else float("nan")
    return {
        "wall_s": wall,
        "iterations": len(steps),
        "step_median_s": statistics.median(durations) if durations else float("nan"),
        "step_mean_s": mean,
        "steps_s": sum(durations),
        "outside_s": outside_the_steps(wall, len(steps), mean) if durations else wall,
        "startup_s": (steps[0][0] - launched) if steps else wall,
        "between_steps_s": sum(gaps),
        "epoch_ends_s": sum(gap for i, gap in enumerate(gaps) if (i + 1) % epoch_size == 0),
        "largest_gaps_s": sorted(gaps, reverse=True)[:3],
        "end_s": (finished - steps[-1][1]) if steps else 0.0,
    }


# --- running -----------------------------------------------------------------------------------------


def run_environment(times_file: Path | None, threads: int | None, theirs: bool) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(HOOK)]
    if theirs and importlib.util.find_spec("wandb") is None:
        paths.append(str(HOOK / "stubs"))
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("VS_REFERENCE_TIMES", None)
    if times_file is not None:
        env["VS_REFERENCE_TIMES"] = str(times_file)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_logged(command: list[str], env: dict[str, str], log: Path, cwd: Path, timeout: float | None) -> tuple[float, float]:
    """Run to the end, output to ``log``; (launched, finished) on perf_counter's clock."""
    with open(log, "w") as handle:
        handle.write(" ".join(command) + "\n\n")
        handle.flush()
        launched = time.perf_counter()
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=timeout)
        finished = time.perf_counter()
    if completed.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{command[1]} exited with {completed.returncode}; the end of {log}:\n{tail}")
    return launched, finished


def strip_data_parallel_prefix(run_dir: Path) -> int:
    """CUT's CPU checkpoints: drop DataParallel's ``module.`` so that its test.py can load them."""
    changed = 0
    for path in run_dir.glob("*.pth"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if any(key.startswith("module.") for key in state):
            torch.save({key.removeprefix("module."): value for key, value in state.items()}, path)
            changed += 1
    return changed


def write_data(root: Path, images: int, paired: bool, cyclegan: str) -> Path:
    out = root / f"{'paired' if paired else 'unpaired'}_{images}"
    if not (out / ("train" if paired else "trainA")).is_dir():
        subprocess.run([cyclegan, "data", "synthetic", str(out), "--n", str(images), "--size", "64"]
                       + (["--paired"] if paired else []), check=True, capture_output=True)
    return out


def split_pairs(paired: Path, out: Path) -> Path:
    """The A|B files as trainA / trainB / testA / testA_gt: ground truth and baselines for pix2pix."""
    for split, folders in (("train", ("trainA", "trainB")), ("test", ("testA", "testA_gt"))):
        for folder in folders:
            (out / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((paired / split).glob("*.png")):
            image = Image.open(path)
            half = image.width // 2
            image.crop((0, 0, half, image.height)).save(out / folders[0] / path.name)
            image.crop((half, 0, image.width, image.height)).save(out / folders[1] / path.name)
    return out


def results_images(work: Path, name: str) -> tuple[Path, str | None]:
    """The translations to score and their label: ``images/`` of ``<stem>_fake_B.png`` files (the
    reference's and ours), or CUT's ``images/fake_B/<stem>.png``."""
    found = sorted((work / "results" / name).glob("*/images"))
    if not found:
        raise FileNotFoundError(f"no results/{name}/*/images under {work}")
    return (found[0] / "fake_B", None) if (found[0] / "fake_B").is_dir() else (found[0], "fake_B")


def run_model(model: str, args: argparse.Namespace, work: Path, data: dict[str, Path]) -> dict[str, Any]:
    side = their_side(model)
    checkout = Path(args.cut if side == "CUT" else args.reference).resolve()
    dataroot = data["paired" if model == "pix2pix" else "unpaired"]
    truth = data["halves"] / "testA_gt" if model == "pix2pix" else dataroot / "testA_gt"
    plan = plan_iterations(args.iters, args.n)
    cuda = torch.cuda.is_available()
    trains = train_commands(model, plan, dataroot, work, args.python, checkout, args.cyclegan, cuda, args.no_html)
    tests = test_commands(model, dataroot, work, args.python, checkout, args.cyclegan, cuda)
    results: dict[str, Any] = {}
    for who in (side, "ours"):
        name = f"{who}_{model}"
        times_file = work / f"{name}.steps.json"
        env = run_environment(times_file, args.threads, theirs=who != "ours")
        print(f"- {model}: training {who} ...", flush=True)
        launched, finished = run_logged(trains[who], env, work / f"{name}.train.log", work, args.timeout)
        record = json.loads(times_file.read_text())
        found = timeline(launched, finished, record["steps"], plan.epoch_size)
        run_dir = work / "checkpoints" / name
        lines = parse_loss_log((run_dir / "loss_log.txt").read_text())
        if who == "CUT" and not cuda:
            strip_data_parallel_prefix(run_dir)
        test_launched, test_finished = run_logged(tests[who], run_environment(None, args.threads, who != "ours"),
                                                  work / f"{name}.test.log", work, args.timeout)
        fakes, label = results_images(work, name)
        scores = evaluate_folders(fakes, truth, metrics=("psnr", "ssim"), fake_label=label)
        results[who] = {**found, "logged_step_s": logged_step_time(who, lines, plan.epoch_size),
                        "logged_lines": len(lines),
                        "logged_data_s": statistics.median(line["data"] for line in lines) if lines else None,
                        "test_wall_s": test_finished - test_launched, "psnr": scores["psnr"], "ssim": scores["ssim"],
                        "scored": scores["count"]}
    baselines = dataset_baselines(data["halves"] if model == "pix2pix" else dataroot, "test")
    theirs, ours = results[side], results["ours"]
    ratios = {key: ours[key] / theirs[key] for key in ("wall_s", "step_median_s", "step_mean_s", "outside_s",
                                                        "test_wall_s") if theirs[key]}
    return {"model": model, "theirs": side, "plan": asdict(plan), "sides": results, "ratios": ratios,
            "baselines": baselines["baselines"] if baselines else {},
            "commands": {"train": trains, "test": tests}}


# --- output --------------------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_model(report: dict[str, Any]) -> str:
    model, sides, ratios = report["model"], report["sides"], report["ratios"]
    plan = report["plan"]
    lines = [f"### {model}: {report['theirs']}'s code against ours, {plan['iterations']} iterations "
             f"({plan['epochs']} epoch(s) of {plan['epoch_size']} images)", ""]
    rows = []
    for who, r in sides.items():
        rows.append([who, _s(r["wall_s"]), r["iterations"], _s(1000 * r["step_median_s"]), _s(1000 * r["step_mean_s"]),
                     _s(None if r["logged_step_s"] is None else 1000 * r["logged_step_s"]) + f" ({r['logged_lines']})",
                     _s(r["outside_s"]), f"{100 * r['outside_s'] / r['wall_s']:.1f} %", _s(r["test_wall_s"]),
                     f"{r['psnr']:.2f}", f"{r['ssim']:.3f}"])
    rows.append(["ours / theirs", f"{ratios.get('wall_s', float('nan')):.2f}×", "",
                 f"{ratios.get('step_median_s', float('nan')):.2f}×", f"{ratios.get('step_mean_s', float('nan')):.2f}×",
                 "", f"{ratios.get('outside_s', float('nan')):.2f}×", "", f"{ratios.get('test_wall_s', float('nan')):.2f}×",
                 "", ""])
    lines.append(markdown_table(["side", "train wall s", "iterations", "ms / iter (median)", "ms / iter (mean)",
                                 "log's time: ms (lines)", "outside the steps s", "outside %", "test wall s",
                                 "PSNR dB", "SSIM"], rows))
    lines += ["", "Outside the steps:", ""]
    lines.append(markdown_table(
        ["side", "start-up s", "between steps s", "of which epoch ends s", "3 largest gaps s", "end s",
         "log's data: ms"],
        [[who, _s(r["startup_s"], 2), _s(r["between_steps_s"], 2), _s(r["epoch_ends_s"], 2),
          ", ".join(f"{g:.2f}" for g in r["largest_gaps_s"]), _s(r["end_s"], 2),
          _s(None if r["logged_data_s"] is None else 1000 * r["logged_data_s"])] for who, r in sides.items()]))
    if report["baselines"]:
        lines += ["", "Trivial baselines on the same test images (PSNR dB / SSIM): " + ", ".join(
            f"{name} {s['psnr']:.2f} / {s['ssim']:.3f}" for name, s in report["baselines"].items())]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=None, help="checkout of junyanz/pytorch-CycleGAN-and-pix2pix")
    parser.add_argument("--cut", default=None, help="checkout of taesungp/contrastive-unpaired-translation")
    parser.add_argument("--model", nargs="+", choices=MODELS, default=["cycle_gan"])
    parser.add_argument("--iters", type=int, default=2000, help="training iterations on each side (batch 1)")
    parser.add_argument("--n", type=int, default=200, help="training images per domain in the generated data")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every run (default: inherited)")
    parser.add_argument("--no_html", action="store_true", help="pass --no_html to their train.py")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs their scripts")
    parser.add_argument("--cyclegan", default=str(Path(sys.executable).parent / "cyclegan"), help="our command")
    parser.add_argument("--workdir", default="./vs_reference_runs", help="data, runs, results and logs")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed to each train / test run")
    parser.add_argument("--out", default=None, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if any(model in CUT_MODES for model in args.model) and not args.cut:
        parser.error("--model cut / fastcut need --cut DIR")
    if any(model not in CUT_MODES for model in args.model) and not args.reference:
        parser.error("--model cycle_gan / pix2pix need --reference DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    threads = args.threads or torch.get_num_threads()
    machine = machine_description(torch.device("cpu"), threads)
    if torch.cuda.is_available():
        machine += f"; both sides on {machine_description(torch.device('cuda'), threads)}"
    print(f"## Whole runs against the reference's own code\n\n- machine: {machine}\n")
    data = {"unpaired": write_data(work / "data", args.n, False, args.cyclegan)}
    if "pix2pix" in args.model:
        data["paired"] = write_data(work / "data", args.n, True, args.cyclegan)
        data["halves"] = split_pairs(data["paired"], work / "data" / "paired_halves")
    reports = []
    for model in args.model:
        reports.append(run_model(model, args, work, data))
        print("\n" + format_model(reports[-1]) + "\n", flush=True)
        write_json(args.out, {"machine": machine, "threads": threads, "iters": args.iters, "models": reports})
    return 0


if __name__ == "__main__":
    sys.exit(main())
