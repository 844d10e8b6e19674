"""The one object that owns a training run: device, precision, data order, loop, checkpoints, logs.

The recipe (``cyclegan.recipes``) only defines networks, losses and one step; everything that
makes a run survivable and observable lives here:

- every RNG, counter, optimizer, scheduler, scaler and image pool goes into each checkpoint, and
  data order is a pure function of (seed, epoch, position), so a resumed run continues exactly;
- SIGINT / SIGTERM finish the current step, save and exit cleanly; SIGHUP (a closed SSH session)
  keeps training with the terminal output sent to /dev/null and the log files still written;
- ``loss_log.txt`` (the reference's format), TensorBoard events, a progress bar and the training
  page ``web/index.html`` with image grids and loss curves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from cyclegan.config import CONFIG_FILENAME, TrainConfig, fit_epochs_to_iterations
from cyclegan.core.checkpoint import (
    CHECKPOINT_SUFFIX,
    CheckpointError,
    atomic_write,
    copy_checkpoint,
    load_latest_good,
    save_checkpoint,
    tensor_checksum,
)
from cyclegan.core.precision import Precision
from cyclegan.core.runtime import resolve_device, rng_state, seed_everything, set_rng_state
from cyclegan.data import create_dataloader, create_dataset
from cyclegan.data.datasets import EpochSampler
from cyclegan.networks import enable_gradient_checkpointing
from cyclegan.networks.compat import strip_module_prefix
from cyclegan.recipes import create_model
from cyclegan.training.averaging import WeightAverage
from cyclegan.training.distributed import DistributedContext, convert_sync_batchnorm
from cyclegan.training.logs import RunLogger, kept_lines
from cyclegan.training.placement import (
    batch_to_device,
    channels_last_weights,
    check_crop_size,
    compiled_channels_last_is_safe,
)
from cyclegan.training.records import (
    ArchitectureMismatch,
    Progress,
    QuietLogger,
    TrainingDiverged,
    TrainResult,
    interval_mean,
)
from cyclegan.training.schedulers import build_scheduler, is_plateau, step_scheduler
from cyclegan.training.signals import stop_requests
from cyclegan.training.validation import Validator, closing_verdict

log = logging.getLogger("cyclegan.train")

LATEST = "latest"


class Trainer:
    """Build everything from a TrainConfig, optionally resume, and run ``fit``."""

    def __init__(self, config: TrainConfig, resume: str = "auto", resume_label: str = LATEST) -> None:
        if resume not in ("auto", "never", "required"):
            raise ValueError(f"resume must be auto, never or required, got {resume!r}")
        self.config = config
        self.run_dir = config.run_dir
        device = resolve_device(config.runtime.device)
        self.dist = DistributedContext.from_environment(device)
        self.device = self.dist.device_for(device)
        self.precision = Precision(config.runtime.precision, self.device)
        if config.runtime.compile and config.runtime.channels_last and not compiled_channels_last_is_safe(self.device):
            log.warning("--channels_last ignored with --compile on a CPU: torch's CPU compiler produced NaN losses "
                        "and heap corruption with channels-last batches")
            config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, channels_last=False))
            self.config = config
        if config.runtime.torch_threads > 0:
            torch.set_num_threads(config.runtime.torch_threads)
        self.seed = config.runtime.seed if config.runtime.seed is not None else 0
        # The weights start equal on every rank anyway (DDP broadcasts rank 0's); a seed per rank
        # gives each its own dropout masks.
        seed_everything(self.seed + self.dist.rank, config.runtime.deterministic)
        self.stop_signal: str | None = None
        self.progress = Progress(epoch=config.optim.epoch_count)

        existing = None
        if resume != "never" and self.run_dir.is_dir():
            existing = load_latest_good(self.run_dir, preferred=resume_label)
        if resume == "required" and existing is None:
            raise CheckpointError(f"--continue_train: no checkpoint to resume in {self.run_dir}")
        if existing is not None:
            self._check_same_architecture(existing[1]["config"], existing[0])

        self.model = create_model(config, is_train=True)
        check_crop_size(config, self.model.size_multiple)
        self.dataset = create_dataset(config.data, seed=self.seed)
        if config.optim.schedule_over_max_iters and config.optim.max_iters:
            # A run bounded by max_iters (the presets): epochs from the data set's size, so the learning
            # rate decays over the second half of the run.
            optim = fit_epochs_to_iterations(config.optim, len(self.dataset), config.data.batch_size)
            config = self.config = dataclasses.replace(config, optim=optim)
        skipped = self.dataset.skipped_non_images + self.dataset.skipped_bad
        if skipped:
            log.warning("skipped %d non-image file(s) and %d unreadable image(s) in %s",
                        self.dataset.skipped_non_images, self.dataset.skipped_bad, config.data.dataroot)
        self.sampler = EpochSampler(len(self.dataset), seed=self.seed, shuffle=not config.data.serial_batches,
                                    rank=self.dist.rank, world_size=self.dist.world_size)
        self.loader = create_dataloader(self.dataset, config.data, sampler=self.sampler)
        self.validator = Validator(config, self.seed) if Validator.available(config) else None

        self._prepare_networks()
        self._first_batch_lines: list[logging.LogRecord] = []  # for train.log, which fit() opens
        if self.model.needs_first_batch:
            with kept_lines() as self._first_batch_lines:
                self.model.data_dependent_init(self._first_batch(), self.precision, fresh=existing is None)
        self.model.build_optimizers()
        self.average = None
        if config.optim.ema_decay:  # 0: off; WeightAverage refuses a value outside (0, 1)
            averaged = [name for t in self.model.directions for name in (t.net, t.back) if name]
            self.average = WeightAverage(self.model.nets, averaged, config.optim.ema_decay)
        mode = self.validator.mode if self.validator else "min"
        self.schedulers = {name: build_scheduler(optimizer, config.optim, mode)
                           for name, optimizer in self.model.optimizers.items()}
        if config.optim.lr_policy == "plateau" and self.validator is None:
            raise ValueError(
                f"--lr_policy plateau needs a validation score: add {Validator.expected_folders(config)} "
                f"(images held out from training), or pick linear / step / cosine"
            )
        self.resumed_from: Path | None = None
        self._written: tuple[tuple[int, ...], Path] | None = None  # the last save: its state's key, its path
        if existing is not None:
            self._restore(*existing)
        # After the restore: DDP broadcasts rank 0's weights when it wraps them.
        self.model.wrap_step_modules(self._step_wrapper())

    def _first_batch(self) -> dict[str, Any]:
        """The first batch of the run's first epoch (at least the recipe's ``first_batch_images``),
        read without touching any RNG or the loader: the same on every rank."""
        first = EpochSampler(len(self.dataset), seed=self.seed, shuffle=self.sampler.shuffle, epoch=self.progress.epoch)
        count = max(self.config.data.batch_size, self.model.first_batch_images)
        indices = list(first)[:count]
        return batch_to_device(default_collate([self.dataset[index] for index in indices]), self.config, self.device)

    def _prepare_networks(self) -> None:
        """Device, memory format, SyncBatchNorm, gradient checkpointing: decided once, here."""
        runtime = self.config.runtime
        for name, net in list(self.model.nets.items()):
            if self.config.model.norm == "syncbatch":
                self.model.nets[name] = convert_sync_batchnorm(net, self.dist, self.device)
            if runtime.gradient_checkpointing and name in self.model.generator_names:
                enable_gradient_checkpointing(net)
        self.model.rebuild_step_modules()
        self.model.to(self.device)
        if runtime.channels_last and channels_last_weights(self.device):
            self.model.to(memory_format=torch.channels_last)

    def _step_wrapper(self):
        """DDP around each step module (when distributed), then torch.compile (when asked)."""
        ddp = self.dist.wrapper(self.device)
        if not self.config.runtime.compile:
            return ddp

        def compiled(module: nn.Module) -> nn.Module:
            import torch._dynamo

            # A missing compiler backend (no C++ toolchain, unsupported op) falls back to eager
            # with a warning instead of failing the run.
            torch._dynamo.config.suppress_errors = True
            try:
                return torch.compile(ddp(module))
            except Exception as error:  # compile itself is lazy; this catches a missing backend early
                log.warning("torch.compile unavailable (%s); running eager", error)
                return ddp(module)

        return compiled

    # --- checkpoints ------------------------------------------------------------------------

    def _check_same_architecture(self, saved: dict[str, Any], path: Path) -> None:
        saved_config = TrainConfig.from_dict(saved)
        ours, theirs = self.config.model.arch_fields, saved_config.model.arch_fields
        for key in ("input_nc", "output_nc"):
            ours[key], theirs[key] = getattr(self.config.data, key), getattr(saved_config.data, key)
        differences = [f"--{k}: saved {theirs[k]!r}, now {ours[k]!r}" for k in ours if ours[k] != theirs[k]]
        if differences:
            raise ArchitectureMismatch(
                f"cannot resume {path}: the architecture differs from the saved run:\n  " + "\n  ".join(differences)
                + "\nuse the saved flags (they are in config.json), or a new --name to start a fresh run"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "nets": {name: strip_module_prefix(net.state_dict()) for name, net in self.model.nets.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.model.optimizers.items()},
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
            "scaler": self.precision.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "ema": self.average.state_dict() if self.average else None,
            # RNGs and image pools differ per rank: all of them, in rank order.
            "ranks": self.dist.gather({"rng": rng_state(), "model_extra": self.model.extra_state()}),
        }

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        for name, net in self.model.nets.items():
            net.load_state_dict(state["nets"][name], strict=True)
        for name, opt in self.model.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.precision.load_state_dict(state.get("scaler") or {})
        if self.average is not None:
            if state.get("ema"):
                self.average.load_state_dict(state["ema"])
            else:
                log.info("%s kept no weight average; --ema_decay starts one from its weights", path.name)
        self.progress = Progress(**state["progress"])
        ranks = state["ranks"]
        # Same world size: each rank continues exactly. Another: rank r takes saved rank r mod n
        # (the global batch differs anyway, so the run cannot be bitwise the same).
        mine = ranks[self.dist.rank % len(ranks)]
        set_rng_state(mine["rng"])
        self.model.load_extra_state(mine.get("model_extra", {}))
        if len(ranks) != self.dist.world_size:
            log.info("resuming a %d-process run on %d process(es)", len(ranks), self.dist.world_size)
        self.resumed_from = path

    @staticmethod
    @contextlib.contextmanager
    def _writing(path: Path):
        """Turn a failed write (full disk, read-only folder) into one clear message; files stay whole."""
        try:
            yield
        except OSError as error:
            raise CheckpointError(
                f"could not write {path} ({error.strerror or error}); the files already in {path.parent} are "
                f"intact (writes are atomic). Free space or fix the folder, then resume with --continue_train"
            ) from error

    def save(self, label: str = LATEST) -> Path:
        """Collective in a distributed run: every rank calls it, rank 0 alone writes. The state saved last,
        saved again (an epoch's and ``best``, the last epoch's and ``latest``) is copied, not serialised."""
        path, p, written = self.run_dir / f"{label}{CHECKPOINT_SUFFIX}", self.progress, self._written
        # Steps (skipped ones too), epoch ends and validations move these; nothing else changes the state.
        key = (p.total_iters, p.epoch, p.items_in_epoch, len(p.validation), p.nonfinite_skipped)
        # Rank 0 alone sees the file; every rank takes the same branch (state_dict() gathers from all).
        copy = self.dist.all_true(written is not None and written[0] == key
                                  and (not self.dist.is_main or written[1].is_file()), self.device)
        if copy and written[1] == path:
            return path  # already there
        state = None if copy else self.state_dict()
        failure: CheckpointError | None = None
        if self.dist.is_main:
            try:
                with self._writing(path):
                    copy_checkpoint(written[1], path) if copy else save_checkpoint(path, state)
            except CheckpointError as error:
                failure = error
        if not self.dist.all_true(failure is None, self.device):  # no rank may run on alone
            raise failure or CheckpointError(f"rank 0 could not write {path}; see its log")
        self._written = (key, path)
        return path

    def _prune_epoch_checkpoints(self) -> None:
        keep = self.config.runtime.keep_last
        if not keep or not self.dist.is_main:
            return
        numbered = sorted(
            (p for p in self.run_dir.glob(f"*{CHECKPOINT_SUFFIX}") if p.stem.isdigit()), key=lambda p: int(p.stem)
        )
        for old in numbered[:-keep]:
            old.unlink(missing_ok=True)

    # --- signals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self):
        def request_stop(name: str) -> None:
            if self.stop_signal is not None and name == "SIGINT":
                raise KeyboardInterrupt  # a second Ctrl-C: stop now (checkpoints are atomic)
            self.stop_signal = name
            log.info("%s received: finishing the current step, then saving", name)

        with stop_requests(request_stop, self.run_dir / "loss_log.txt"):
            yield

    # --- the loop ---------------------------------------------------------------------------

    @property
    def last_epoch(self) -> int:
        # As the reference: epochs epoch_count .. n_epochs + n_epochs_decay.
        return self.config.optim.n_epochs + self.config.optim.n_epochs_decay

    def _done(self) -> bool:
        max_iters = self.config.optim.max_iters
        return self.progress.epoch > self.last_epoch or (max_iters is not None and self.progress.total_iters >= max_iters)

    def fit(self) -> TrainResult:
        config, progress = self.config, self.progress
        if self.dist.is_main:  # rank 0 alone writes files
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with self._writing(self.run_dir / CONFIG_FILENAME):
                atomic_write(self.run_dir / CONFIG_FILENAME, config.to_json())
            logger = RunLogger(self.run_dir, config, total_epochs=self.last_epoch,
                               resumed=self.resumed_from is not None, progress_losses=self.model.progress_losses,
                               title=f"{self.model.title} training: {config.runtime.name}",
                               visual_names=self.model.visual_names)
            logger.write_earlier(self._first_batch_lines)
            self._first_batch_lines = []
        else:
            logger = QuietLogger()
        if self.resumed_from is not None:
            logger.info(
                f"resuming {self.resumed_from.name}: epoch {progress.epoch}, {progress.items_in_epoch} images into it, "
                f"{progress.total_iters} iterations done"
            )
        self.last_save_time = time.monotonic()
        self.nonfinite_in_a_row = 0
        self.last_losses: dict[str, float] = {}
        try:
            with self._signal_handlers():
                try:
                    while not self._done() and not self._agree_to_stop():
                        if self._run_epoch(logger):
                            self._end_epoch(logger)
                finally:
                    logger.close_bar()
                checkpoint = self.save(LATEST)
                logger.update_plot(progress.history, force=True)
            if self.stop_signal is not None:
                logger.info(
                    f"stopped by {self.stop_signal} at epoch {progress.epoch}, iteration {progress.total_iters}; "
                    f"saved {checkpoint}. Resume with: cyclegan train --name {config.runtime.name} "
                    f"--checkpoints_dir {config.runtime.checkpoints_dir} --continue_train"
                )
            else:
                logger.info(f"training finished: {progress.total_iters} iterations; checkpoint {checkpoint}")
                # Last: the final margins, and whether the run ended below a trivial baseline (the learning issue).
                last = progress.validation[-1] if progress.validation else None
                for line in closing_verdict(last, self.validator and self.validator.baselines, config.model.model,
                                            progress.total_iters):
                    logger.info(line)
            if self.dist.enabled:
                self._check_ranks_agree(logger)
        finally:
            logger.close()
        # Only after a clean end: a rank that failed must not wait in a barrier the others never
        # reach (torchrun stops them instead).
        if self.dist.enabled:
            # Drop the DDP wrappers (they hold the process group) before destroying it; a gloo group
            # that outlives its destruction is torn down at interpreter exit and aborts.
            self.model.rebuild_step_modules()
            gc.collect()
            self.dist.shutdown()
        return TrainResult(self.run_dir, progress, self.stop_signal, self.last_losses, checkpoint)

    def _run_epoch(self, logger) -> bool:
        """Train from the current position; True when the epoch ran to its end."""
        progress = self.progress
        self.sampler.set_epoch(progress.epoch, start=progress.items_in_epoch)
        logger.start_epoch(progress.epoch, len(self.dataset), progress.items_in_epoch)
        data_start = time.perf_counter()
        for batch in self.loader:
            data_time = time.perf_counter() - data_start
            self._train_step(batch_to_device(batch, self.config, self.device), data_time, logger)
            epoch_finished = progress.items_in_epoch >= len(self.dataset)
            if self._agree_to_stop() or (self._done() and not epoch_finished):
                return False  # else the loop ends by itself and the epoch's end is processed
            data_start = time.perf_counter()
        return True

    def _agree_to_stop(self) -> bool:
        """Whether any rank got SIGINT / SIGTERM: every rank stops after the same step.

        Decisions follow only the agreed answer: a signal that lands just after the agreement is
        picked up at the next one, never acted on by one rank alone (that would deadlock the rest).
        """
        stop = self.dist.any_true(self.stop_signal is not None, self.device)
        if stop and self.stop_signal is None:
            self.stop_signal = "SIGTERM (another rank)"
        return stop

    def _train_step(self, batch: dict[str, Any], data_time: float, logger) -> None:
        config, progress = self.config, self.progress
        step_start = time.perf_counter()
        result = self.model.training_step(batch, self.precision,
                                          all_ranks=lambda flag: self.dist.all_true(flag, self.device))
        losses = result.losses
        if result.skipped:
            self._count_nonfinite(losses, logger)
        else:
            self.nonfinite_in_a_row = 0
            if self.average is not None:
                self.average.update(self.model.nets)
        n = batch["A"].shape[0] * self.dist.world_size  # every rank takes a batch of the same size
        before = progress.images_seen
        progress.total_iters += 1
        progress.items_in_epoch += n
        progress.images_seen += n
        self.last_losses = self.dist.mean({k: float(v) for k, v in losses.items()}, self.device)
        logger.step(progress, self.last_losses, n, time.perf_counter() - step_start, data_time)
        if not result.skipped:  # a skipped step's NaN must not poison the mean
            for name, value in self.last_losses.items():
                progress.interval_sums[name] = progress.interval_sums.get(name, 0.0) + value
            progress.interval_steps += 1

        def crossed(freq: int) -> bool:  # frequencies count images, as the reference's do
            return freq > 0 and progress.images_seen // freq > before // freq

        if crossed(config.runtime.print_freq):
            fraction = progress.items_in_epoch / len(self.dataset)
            mean = interval_mean(progress) or self.last_losses
            progress.history.append({"iter": progress.total_iters, "epoch": progress.epoch - 1 + fraction, **mean})
            logger.print_losses(progress, mean, data_time)
        if crossed(config.runtime.display_freq):
            logger.display(progress, self.model.current_visuals())
        every = config.runtime.checkpoint_every
        timed_out = every is not None and time.monotonic() - self.last_save_time >= every
        if crossed(config.runtime.save_latest_freq) or self.dist.any_true(timed_out, self.device):
            path = self.save(LATEST)
            self.last_save_time = time.monotonic()
            logger.info(f"saved {path.name} (epoch {progress.epoch}, iters {progress.total_iters})")

    def _count_nonfinite(self, losses: dict[str, torch.Tensor], logger) -> None:
        self.progress.nonfinite_skipped += 1
        self.nonfinite_in_a_row += 1
        bad = ", ".join(k for k, v in losses.items() if not math.isfinite(float(v)))
        logger.info(f"non-finite loss ({bad}) at iteration {self.progress.total_iters + 1}: update skipped "
                    f"({self.nonfinite_in_a_row} in a row, {self.progress.nonfinite_skipped} in all)")
        limit = self.config.runtime.max_nonfinite_steps
        if self.nonfinite_in_a_row >= limit:
            path = self.save(LATEST)
            raise TrainingDiverged(
                f"{self.nonfinite_in_a_row} non-finite steps in a row ({bad}): training stopped instead of "
                f"learning from NaNs. The last good weights are saved in {path}. Lower --lr, check the data or "
                f"use --precision fp32, then resume with --continue_train"
            )

    def _check_ranks_agree(self, logger) -> None:
        """DDP keeps the replicas' weights equal; verify it once at the end instead of trusting it. Only
        the parameters: batch norm's running statistics are each rank's own (DDP copies rank 0's into
        every forward pass, and the last step's update stays local), and rank 0 saves them."""
        weights = {f"{name}.{key}": tensor.detach().cpu() for name, net in self.model.nets.items()
                   for key, tensor in net.named_parameters()}
        digests = self.dist.gather(tensor_checksum(weights))
        if len(set(digests)) == 1:
            logger.info(f"weights identical on all {self.dist.world_size} ranks")
        else:
            log.warning("weights differ between ranks: %s", digests)

    def _end_epoch(self, logger) -> None:
        progress, runtime, epoch = self.progress, self.config.runtime, self.progress.epoch
        due = self.validator is not None and epoch % max(runtime.eval_freq, 1) == 0
        objective, improved = self._validate(logger) if due else (None, False)
        for scheduler in self.schedulers.values():
            if objective is not None or not is_plateau(scheduler):  # plateau waits for a fresh score
                step_scheduler(scheduler, objective)
        lr = next(iter(self.model.optimizers.values())).param_groups[0]["lr"]  # every optimizer follows one schedule
        logger.scalars({"lr": lr}, progress.total_iters)
        logger.display(progress, self.model.current_visuals())
        logger.update_plot(progress.history)
        progress.epoch += 1
        progress.items_in_epoch = 0
        if runtime.save_epoch_freq > 0 and epoch % runtime.save_epoch_freq == 0:
            path = self.save(str(epoch))
            self._prune_epoch_checkpoints()
            logger.info(f"saved {path.name} at the end of epoch {epoch}; learning rate now {lr:.7f}")
        if improved:  # after the epoch's own checkpoint: the same state, copied instead of serialised again
            self.save("best")
            logger.info(f"new best {self.validator.objective} {objective:.4f}: saved best{CHECKPOINT_SUFFIX}")

    def _validate(self, logger) -> tuple[float, bool]:
        """Score the held-out set, log it everywhere; returns the objective and whether it is a new best."""
        progress, validator = self.progress, self.validator
        with self.average.swapped_in(self.model.nets) if self.average else contextlib.nullcontext():
            scores = validator.score(self.model, self.device, self.precision)
        progress.validation.append({"epoch": progress.epoch, "iter": progress.total_iters, **scores})
        logger.validation(progress.validation, progress.total_iters)
        logger.info(f"epoch {progress.epoch} validation: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        objective = scores[validator.objective]
        if improved := validator.improved(objective, progress.best_score):
            progress.best_score = objective
        return objective, improved


def train(config: TrainConfig, resume: str = "auto") -> TrainResult:
    """Train from a config (the Python API behind ``cyclegan train``)."""
    return Trainer(config, resume=resume).fit()


__all__ = ["Progress", "TrainResult", "Trainer", "channels_last_weights", "train"]
