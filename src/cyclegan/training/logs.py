"""Where a run reports: Python logging, a tqdm progress bar, ``loss_log.txt``, TensorBoard, the page.

TensorBoard and the page are optional sinks created lazily by the trainer; nothing here starts a
server or touches the network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cyclegan.config import TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.report import TrainingPage

log = logging.getLogger("cyclegan.train")

# The page's plots together take at most this share of the run's wall time (each plot an equal part,
# by its measured drawing time), and are always drawn at the end: a redraw costs a good part of a
# second, which a fixed interval made short epochs (the demo's) pay every few seconds, and a slow
# machine more than a fast one.
PLOT_SHARE = 0.01
PLOTS = ("loss", "validation")


def format_loss_line(epoch: int, iters: int, compute_s: float, data_s: float, losses: dict[str, float]) -> str:
    """The reference's loss_log.txt line, so its log parsers keep working."""
    message = f"(epoch: {epoch}, iters: {iters}, time: {compute_s:.3f}, data: {data_s:.3f}) "
    return message + " ".join(f"{name}: {value:.3f}" for name, value in losses.items())


def _log_at_info() -> int:
    """Let the run log pass INFO lines even where the console is quieter; returns the level to restore."""
    previous = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    return previous


@contextlib.contextmanager
def kept_lines() -> Iterator[list[logging.LogRecord]]:
    """The run log's INFO lines and above inside the block (what the first batch chose: colour starts, loss
    weights), for ``RunLogger.write_earlier``: train.log opens later, in ``Trainer.fit``."""
    records: list[logging.LogRecord] = []
    keeper = logging.handlers.BufferingHandler(capacity=sys.maxsize)  # never flushes by itself
    keeper.setLevel(logging.INFO)
    previous = _log_at_info()
    log.addHandler(keeper)
    try:
        yield records
    finally:
        log.removeHandler(keeper)
        log.setLevel(previous)
        records.extend(keeper.buffer)
        keeper.close()


class RunLogger:
    def __init__(self, run_dir: Path, config: TrainConfig, total_epochs: int, resumed: bool,
                 progress_losses: tuple[str, ...] = (), title: str = "training",
                 visual_names: tuple[str, ...] = ()) -> None:
        """``progress_losses``: the loss terms the progress bar shows; ``visual_names``: the training
        page's columns (both the recipe's choice)."""
        self.run_dir = run_dir
        self.progress_losses = progress_losses
        self.config = config
        self.total_epochs = total_epochs
        self.loss_log = run_dir / "loss_log.txt"
        with open(self.loss_log, "a") as handle:
            stamp = time.strftime("%c")
            handle.write(f"================ Training Loss ({'resumed' if resumed else 'started'} {stamp}) ================\n")
        self._file_handler = logging.FileHandler(run_dir / "train.log")
        self._file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._file_handler)
        # The file log records INFO even when the console (root logger) is quieter.
        self._previous_level = _log_at_info()
        self.writer = None
        if config.runtime.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.page = TrainingPage(run_dir, title=title, visual_names=visual_names)
        self.bar = None
        self._images_since, self._time_since = 0, time.perf_counter()
        self._rate = 0.0
        self._started = time.monotonic()
        self._plot_spent = dict.fromkeys(PLOTS, 0.0)  # plot -> seconds spent drawing it so far
        self._plot_cost = dict.fromkeys(PLOTS, 0.0)  # plot -> its last drawing time
        self._pending_validation: list[dict[str, float]] | None = None

    def write_earlier(self, records: list[logging.LogRecord]) -> None:
        """Lines logged before this logger opened train.log (``kept_lines``), into it alone: the console
        showed them when they were logged."""
        for record in records:
            self._file_handler.handle(record)

    def info(self, message: str) -> None:
        log.info(message)
        if self.bar is not None:
            self.bar.write(message)

    def start_epoch(self, epoch: int, items: int, start: int) -> None:
        from tqdm.auto import tqdm

        self.close_bar()
        self.bar = tqdm(
            total=items,
            initial=start,
            desc=f"epoch {epoch}/{self.total_epochs}",
            unit="img",
            dynamic_ncols=True,
            disable=not self.config.runtime.progress_bar,
            leave=False,
        )

    def step(self, progress, losses: dict[str, float], images: int, compute_s: float, data_s: float) -> None:
        self._images_since += images
        now = time.perf_counter()
        if now - self._time_since >= 1.0:
            self._rate = self._images_since / (now - self._time_since)
            self._images_since, self._time_since = 0, now
        if self.bar is not None:
            self.bar.update(images)
            shown = {k: f"{losses[k]:.3f}" for k in self.progress_losses if k in losses}
            self.bar.set_postfix(it=progress.total_iters, img_s=f"{self._rate:.1f}", **shown, refresh=False)

    def print_losses(self, progress, losses: dict[str, float], data_s: float) -> None:
        compute = 1.0 / self._rate if self._rate else 0.0
        line = format_loss_line(progress.epoch, progress.items_in_epoch, compute, data_s, losses)
        with open(self.loss_log, "a") as handle:
            handle.write(line + "\n")
        log.debug(line)
        self.scalars(losses, progress.total_iters, prefix="loss")
        if self._rate:
            self.scalars({"images_per_second": self._rate}, progress.total_iters, prefix="speed")

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}" if prefix else name, value, step)

    def display(self, progress, visuals: dict[str, torch.Tensor]) -> None:
        if not visuals:
            return
        # A skipped (non-finite) step leaves NaNs in its images: show them black, not as garbage.
        visuals = {name: images.nan_to_num(0.0) for name, images in visuals.items()}
        self.page.add_epoch(progress.epoch, progress.total_iters, visuals)
        if self.writer is not None:
            from torchvision.utils import make_grid

            for name, images in visuals.items():
                grid = make_grid(images[:4].float().clamp(-1, 1) * 0.5 + 0.5, nrow=4)
                self.writer.add_image(f"images/{name}", grid, progress.total_iters)

    def _due(self, plot: str, force: bool) -> bool:
        """Whether drawing ``plot`` now keeps it within its share of the time so far (a first drawing
        is always due: its cost is not known yet)."""
        budget = PLOT_SHARE / len(PLOTS) * (time.monotonic() - self._started)
        return force or self._plot_spent[plot] + self._plot_cost[plot] <= budget

    def _draw(self, plot: str, draw, *args) -> None:
        start = time.monotonic()
        draw(*args)
        self._plot_cost[plot] = time.monotonic() - start
        self._plot_spent[plot] += self._plot_cost[plot]

    def validation(self, records: list[dict[str, float]], step: int) -> None:
        """Validation scores: ``val_scores.json`` (atomic), TensorBoard, the page's validation plot."""
        atomic_write(self.run_dir / "val_scores.json", json.dumps(records, indent=1) + "\n")
        latest = {k: v for k, v in records[-1].items() if k not in ("epoch", "iter")}
        self.scalars(latest, step, prefix="val")
        self._pending_validation = list(records)
        if self._due("validation", force=False):
            self._draw("validation", self.page.update_validation, self._pending_validation)
            self._pending_validation = None

    def update_plot(self, history: list[dict[str, Any]], force: bool = False) -> None:
        """Redraw the loss plot (within its share of the time, ``PLOT_SHARE``, unless ``force``) and any
        validation plot still pending, then rewrite the page."""
        if history and self._due("loss", force):
            self._draw("loss", self.page.update_loss_plot, history)
        if self._pending_validation is not None and self._due("validation", force):
            self._draw("validation", self.page.update_validation, self._pending_validation)
            self._pending_validation = None
        self.page.write()

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()
        log.removeHandler(self._file_handler)
        log.setLevel(self._previous_level)
        self._file_handler.close()
