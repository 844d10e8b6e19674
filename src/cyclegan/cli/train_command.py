"""``cyclegan train``."""

from __future__ import annotations

import argparse
import logging

from cyclegan.cli.flags import add_dataclass_flags, add_ignored_reference_flags, as_flags, config_from_args
from cyclegan.config import (
    PRESETS,
    TrainConfig,
)
from cyclegan.core.checkpoint import CHECKPOINT_SUFFIX
from cyclegan.recipes import MODELS
from cyclegan.training.trainer import Trainer
from cyclegan.training.tune import tune

log = logging.getLogger("cyclegan")


# --- train --------------------------------------------------------------------------------------


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a recipe: cycle_gan on <dataroot>/trainA and trainB, pix2pix on <dataroot>/train (A|B)")
    for klass in TrainConfig.sections().values():
        add_dataclass_flags(parser, klass, skip=("no_dropout",))
    # SUPPRESS: an absent flag must not override the CycleGAN default (no dropout) with False.
    parser.add_argument("--no_dropout", action="store_true", default=argparse.SUPPRESS,
                        help="no dropout in the generators (the CycleGAN default)")
    parser.add_argument("--dropout", action="store_true", help="use dropout in the generators")
    parser.add_argument("--continue_train", action="store_true", help="resume the run (error if it has no checkpoint)")
    parser.add_argument(
        "--resume", choices=("auto", "never", "required"), default="auto",
        help="auto (default): resume when the run folder has a checkpoint; never: refuse to reuse the folder",
    )
    parser.add_argument("--epoch", default="latest", help="with --continue_train: which checkpoint to resume")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="quick: settings for small, short CPU runs (64 px, resnet_6blocks, ngf/ndf 16, batch 4, "
                             "500 iterations, the LR decaying over the second half; for cycle_gan also "
                             f"{as_flags(MODELS.get('cycle_gan').preset_defaults['quick'])}; for cut in CUT mode "
                             f"{as_flags(MODELS.get('cut').preset_defaults['quick'])}); explicit flags "
                             "override it. Default: the reference's")
    parser.add_argument("--tune", action="store_true",
                        help="time a few steps of candidate settings (precision fp32 / native bf16, channels_last, "
                             "threads) on this run and train with the fastest that keeps the losses; the choice is "
                             "cached per CPU model / GPU and config in ~/.cache/cyclegan/tune.json")
    parser.add_argument("--retune", action="store_true", help="with --tune: measure again, ignoring the cache")
    add_ignored_reference_flags(parser)
    parser.set_defaults(handler=run_train)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The reference's defaults, a preset's overrides, then the flags given (a preset's run bounded by
    ``max_iters`` has the trainer fit its epochs so that the learning rate decays over its second half)."""
    return config_from_args(args, preset=getattr(args, "preset", None))


def run_train(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    if not config.data.dataroot:
        raise SystemExit("cyclegan train: --dataroot is required (a folder with trainA/ and trainB/, or train/ "
                         "of A|B pairs for --model pix2pix)")
    if args.tune or args.retune:
        config, _, line = tune(config, refresh=args.retune)
        print(line, flush=True)
    resume = "required" if args.continue_train else args.resume
    run_dir = config.run_dir
    if resume == "never" and any(run_dir.glob(f"*{CHECKPOINT_SUFFIX}")):
        raise SystemExit(f"cyclegan train: {run_dir} already holds checkpoints; pick another --name or --resume auto")
    if resume == "auto" and any(run_dir.glob(f"*{CHECKPOINT_SUFFIX}")):
        log.info("run folder %s exists: resuming it (--resume never to refuse)", run_dir)
    trainer = Trainer(config, resume=resume, resume_label=args.epoch)
    result = trainer.fit()
    if trainer.dist.is_main:
        print(f"run folder: {result.run_dir}")
        print(f"training page: {result.run_dir / 'web' / 'index.html'}")
    return 0
