"""Learning suite: a named setting trained on every task with a known answer, beside the trivial baselines.

The learning issue: a preset tuned on two tasks must also learn mappings it was never tuned on. For
each setting, each task and each seed, one run of ``--iters`` iterations (default 2,000, 64 px) on
the task's data (drawn with that seed too), then its final G_A(valA) (CUT: G(valA)) scored against
valA_gt (PSNR, SSIM) and against the best trivial baseline on the same images
(:mod:`cyclegan.metrics.baselines`: doing nothing, a constant image, colour transfer, histogram
matching). Printed per setting: a markdown table (task, seed, PSNR / SSIM, the margins, whether the
pair meets the goal, wall time) and a summary line. A pair meets the goal with a PSNR margin of at
least +1 dB and an SSIM margin of at least 0, or an SSIM within 0.02 of doing nothing's (where doing
nothing keeps the structure, as on maps near the identity).

Tasks: the family of :mod:`cyclegan.data.synthetic_tasks` (``cyclegan data synthetic --task NAME``)
and ``photos`` (learning_curves.py's photographs under a colour look; needs scikit-image, skipped
with a note without it). Settings: learning_curves.py's variants (``quick``, ``reference``, ``cut``,
``fastcut``, or ``NAME=JSON`` overrides; its ``variant_config`` builds them), so

    .venv/bin/python benchmarks/learning_suite.py --settings quick cut reference --jobs 2 --threads 1

gives the issue's table: what the presets add over the reference's settings, CUT's preset beside
CycleGAN's. ``--jobs N`` runs N trainings side by side (one process each, ``--threads`` torch threads
each): the scores do not depend on it, the wall times do.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, markdown_table  # noqa: E402
from learning_curves import TimedTrainer, variant_config, write_photo_task  # noqa: E402

from cyclegan.data.synthetic_tasks import SYNTHETIC_TASKS, write_task_dataset  # noqa: E402
from cyclegan.metrics.baselines import dataset_baselines  # noqa: E402

PHOTOS = "photos"
GOAL_PSNR_MARGIN = 1.0  # dB over the best trivial baseline (the learning issue's goal)
GOAL_SSIM_SLACK = 0.02  # an SSIM this close to doing nothing's still counts: it kept the structure


@dataclasses.dataclass(frozen=True)
class Pair:
    """One training of the suite: a setting on a task's data for one seed."""

    setting: str  # "quick", "cut", ... or "NAME=JSON"
    task: str
    seed: int
    iters: int
    size: int
    threads: int
    dataroot: str
    workdir: str


def meets_goal(margin_psnr: float, margin_ssim: float, ssim: float, nothing_ssim: float) -> bool:
    """The issue's goal for one pair: >= +1 dB PSNR over the best baseline, and an SSIM margin >= 0
    or an SSIM within 0.02 of doing nothing's."""
    return margin_psnr >= GOAL_PSNR_MARGIN and (margin_ssim >= 0 or ssim >= nothing_ssim - GOAL_SSIM_SLACK)


def write_task(task: str, root: Path, n: int, n_test: int, size: int, seed: int) -> Path:
    """The task's unpaired data with valA_gt (photos: learning_curves.py's writer)."""
    if not (root / "trainA").is_dir():
        if task == PHOTOS:
            write_photo_task(root, n=n, n_test=n_test, size=size, seed=seed)
        else:
            write_task_dataset(task, root, n=n, size=size, seed=seed, n_test=n_test)
    return root


def final_scores(trainer: TimedTrainer, validation: list[dict[str, float]]) -> dict[str, float]:
    """The trained model's validation scores at its last iteration: the last record when it was taken
    there, else a fresh pass (a run that stops inside an epoch is not validated at its end)."""
    if validation and validation[-1]["iter"] == trainer.progress.total_iters:
        return validation[-1]
    assert trainer.validator is not None, "the task has no validation folders"
    # The averaged weights where the run keeps an average, as the trainer validates.
    with trainer.average.swapped_in(trainer.model.nets) if trainer.average else contextlib.nullcontext():
        return trainer.validator.score(trainer.model, trainer.device, trainer.precision)


def run_pair(pair: Pair) -> dict[str, Any]:
    """Train one pair and score it against the trivial baselines; a JSON-ready record."""
    torch.set_num_threads(pair.threads)
    name, _, raw = pair.setting.partition("=")
    dataroot = Path(pair.dataroot)
    images = len(list((dataroot / "trainA").glob("*.png")))
    # Runs go to <workdir>/<task>_seed<seed>/runs/<setting>.
    config = variant_config(name, json.loads(raw) if raw else {}, dataroot,
                            Path(pair.workdir) / f"{pair.task}_seed{pair.seed}", pair.iters, images, pair.seed)
    # The suite's image size (64 px by default: the presets' crop), loaded 9/8 larger as the presets do.
    config.data = dataclasses.replace(config.data, load_size=pair.size * 9 // 8, crop_size=pair.size)
    config.runtime = dataclasses.replace(config.runtime, torch_threads=pair.threads)
    started = time.perf_counter()
    # The trainer's own lines (validation every epoch) go to its train.log, not between the tables.
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = TimedTrainer(config, resume="never")
        result = trainer.fit()
        if result.stopped_by_signal is not None:  # a half-trained run is no record of the fixed budget
            raise RuntimeError(f"{pair.task} seed {pair.seed}: stopped by {result.stopped_by_signal} after "
                               f"{result.progress.total_iters} of {pair.iters} iterations; no record written")
        scores = final_scores(trainer, result.progress.validation)
    wall = time.perf_counter() - started
    found = dataset_baselines(dataroot, "val")
    assert found is not None, f"{dataroot} holds no valA_gt"
    baselines = found["baselines"]
    best = {m: max(baselines, key=lambda b, m=m: baselines[b][m]) for m in ("psnr", "ssim")}
    record: dict[str, Any] = {"setting": pair.setting, "task": pair.task, "seed": pair.seed,
                              "iters": result.progress.total_iters, "psnr": scores["val_psnr"],
                              "ssim": scores["val_ssim"], "wall_s": wall, "precision": trainer.precision.name,
                              "baselines": baselines}
    for metric in ("psnr", "ssim"):
        record[f"best_baseline_{metric}"] = best[metric]
        record[f"baseline_{metric}"] = baselines[best[metric]][metric]
        record[f"margin_{metric}"] = record[metric] - record[f"baseline_{metric}"]
    record["goal"] = meets_goal(record["margin_psnr"], record["margin_ssim"], record["ssim"],
                                baselines["doing nothing"]["ssim"])
    return record


def progress_line(record: dict[str, Any]) -> str:
    """One finished pair, for stderr while the rest run (a suite takes hours)."""
    return (f"[{record['setting']}] {record['task']} seed {record['seed']}: {record['psnr']:.2f} dB / "
            f"{record['ssim']:.3f}, margin {record['margin_psnr']:+.2f} / {record['margin_ssim']:+.3f}, "
            f"goal {'yes' if record['goal'] else 'no'}, {record['wall_s']:.0f} s, {record['precision']}")


def run_pairs(pairs: list[Pair], jobs: int) -> list[dict[str, Any]]:
    """Every pair, ``jobs`` at a time (each in its own process); the records in the order given."""
    if jobs <= 1:
        records = []
        for pair in pairs:
            records.append(run_pair(pair))
            print(progress_line(records[-1]), file=sys.stderr, flush=True)
        return records
    # Spawned workers: a forked child would inherit this process's torch threads and state.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_pair, pair): index for index, pair in enumerate(pairs)}
        records: list[dict[str, Any] | None] = [None] * len(pairs)
        for future in as_completed(futures):
            records[futures[future]] = future.result()
            print(progress_line(future.result()), file=sys.stderr, flush=True)
    return [record for record in records if record is not None]


def format_table(records: list[dict[str, Any]]) -> str:
    header = ["task", "seed", "PSNR (dB)", "SSIM", "best baseline PSNR / SSIM", "margin PSNR (dB)", "margin SSIM",
              "goal", "wall (s)", "precision"]
    rows = [[r["task"], r["seed"], f"{r['psnr']:.2f}", f"{r['ssim']:.3f}",
             f"{r['baseline_psnr']:.2f} ({r['best_baseline_psnr']}) / {r['baseline_ssim']:.3f} "
             f"({r['best_baseline_ssim']})", f"{r['margin_psnr']:+.2f}", f"{r['margin_ssim']:+.3f}",
             "yes" if r["goal"] else "no", f"{r['wall_s']:.0f}", r["precision"]] for r in records]
    return markdown_table(header, rows)


def summary_line(records: list[dict[str, Any]]) -> str:
    met = sum(r["goal"] for r in records)
    share = met / len(records) if records else 0.0
    return (f"goal (>= +{GOAL_PSNR_MARGIN:g} dB PSNR and >= 0 SSIM over the best trivial baseline, or SSIM within "
            f"{GOAL_SSIM_SLACK:g} of doing nothing) met on {met} of {len(records)} task x seed pairs ({share:.0%})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["quick"],
                        help="learning_curves.py variants: quick, reference, cut, fastcut, or NAME=JSON overrides")
    parser.add_argument("--tasks", nargs="+", default=[*SYNTHETIC_TASKS.names(), PHOTOS],
                        help=f"default: every task ({', '.join(SYNTHETIC_TASKS.names())}) and {PHOTOS}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--iters", type=int, default=2000, help="training iterations per run (a fixed budget)")
    parser.add_argument("--size", type=int, default=64, help="image side (loaded 9/8 larger, cropped to it)")
    parser.add_argument("--n", type=int, default=200, help="training images per domain")
    parser.add_argument("--n_test", type=int, default=20, help="validation (and test) images per domain")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    parser.add_argument("--out", default=None, help="write the records as JSON to this file")
    parser.add_argument("--workdir", default=None, help="data and runs (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    for task in args.tasks:
        if task != PHOTOS:
            SYNTHETIC_TASKS.get(task)  # an unknown name: a ValueError listing the known ones
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="learning_suite_") as scratch:
        workdir = Path(args.workdir or scratch)
        tasks, skipped = list(args.tasks), []
        if PHOTOS in tasks and importlib.util.find_spec("skimage") is None:  # optional: only the photographs
            tasks.remove(PHOTOS)
            skipped.append(f"{PHOTOS} (needs scikit-image: pip install scikit-image)")
        roots = {(task, seed): str(write_task(task, workdir / "data" / f"{task}_seed{seed}", args.n, args.n_test,
                                              args.size, seed)) for task in tasks for seed in args.seeds}
        print("## Learning suite\n")
        print(f"- machine: {machine_description(torch.device('cpu'), args.threads)}; {args.jobs} run(s) side by side")
        print(f"- {args.iters} iterations, {args.size} px, {args.n} training images per domain, scored on "
              f"{args.n_test} valA images; seeds {', '.join(map(str, args.seeds))}")
        if skipped:
            print(f"- skipped: {'; '.join(skipped)}")
        sys.stdout.flush()
        report: dict[str, Any] = {"machine": machine_description(torch.device("cpu"), args.threads),
                                  "iters": args.iters, "size": args.size, "jobs": args.jobs, "skipped": skipped,
                                  "settings": {}}
        for setting in args.settings:
            pairs = [Pair(setting, task, seed, args.iters, args.size, args.threads, roots[(task, seed)], str(workdir))
                     for task in tasks for seed in args.seeds]
            records = run_pairs(pairs, args.jobs)
            print(f"\n### {setting}\n")
            print(format_table(records))
            print(f"\n{summary_line(records)}")
            sys.stdout.flush()
            report["settings"][setting] = records
            if args.out:
                Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
