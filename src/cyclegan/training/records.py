"""What a training run counts and reports: its progress, its result, and the errors that stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Progress:
    """Counters that say where a run is; saved in every checkpoint."""

    epoch: int = 1
    items_in_epoch: int = 0  # samples of the current epoch already trained on
    total_iters: int = 0  # optimisation steps
    images_seen: int = 0  # samples, as the reference's total_iters (which it counts in images)
    nonfinite_skipped: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)  # one record per validated epoch
    best_score: float | None = None
    # Each loss summed over the finite steps since the last --print_freq line, and their count:
    # the log and the curves show the interval's mean, not one noisy step. Saved with the rest, so
    # a resumed run prints the same numbers.
    interval_sums: dict[str, float] = field(default_factory=dict)
    interval_steps: int = 0


def interval_mean(progress: Progress) -> dict[str, float]:
    """The mean of each loss since the last printed line (empty when no step counted); resets."""
    steps, sums = progress.interval_steps, progress.interval_sums
    mean = {name: total / steps for name, total in sums.items()} if steps else {}
    progress.interval_sums, progress.interval_steps = {}, 0
    return mean


@dataclass
class TrainResult:
    run_dir: Path
    progress: Progress
    stopped_by_signal: str | None
    last_losses: dict[str, float]
    checkpoint: Path | None


class ArchitectureMismatch(ValueError):
    pass


class QuietLogger:
    """The logger of ranks other than 0: they train, but write nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class TrainingDiverged(RuntimeError):
    """Too many non-finite steps in a row; the last good weights were saved."""


__all__ = ["ArchitectureMismatch", "Progress", "QuietLogger", "TrainResult", "TrainingDiverged", "interval_mean"]
