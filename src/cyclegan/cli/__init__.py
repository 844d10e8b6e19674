"""The ``cyclegan`` command: parses flags (the reference's names) and dispatches to library calls.

Subcommands: demo, train, test, translate, serve, eval, inspect, export, data, download, report. Each
lives in a small module here (``train_command``, ``inference_commands``, ``tool_commands``) as a thin
wrapper over an importable function (``train(config)``, ``run_test(...)``, ``evaluate_folders(...)``...);
``flags`` holds what they share.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cyclegan.cli.flags import IGNORED_REFERENCE_FLAGS, bare_weights_config, config_from_args, flags_from_args
from cyclegan.cli.inference_commands import add_serve_parser, add_test_parser, add_translate_parser
from cyclegan.cli.tool_commands import (
    add_data_parser,
    add_demo_parser,
    add_download_parser,
    add_eval_parser,
    add_export_parser,
    add_inspect_parser,
    add_report_parser,
)
from cyclegan.cli.train_command import add_train_parser, train_config_from_args
from cyclegan.core.checkpoint import CheckpointError
from cyclegan.core.download import DownloadError
from cyclegan.data import DatasetError
from cyclegan.training.trainer import TrainingDiverged


def build_parser() -> argparse.ArgumentParser:
    # A plain sentence: the module docstring is reST, which --help would print as it is.
    parser = argparse.ArgumentParser(
        prog="cyclegan",
        description="Image-to-image translation (CycleGAN, pix2pix, CUT / FastCUT, colorization): train, "
                    "translate, serve, export and evaluate, with the reference's flag names.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in (add_demo_parser, add_train_parser, add_test_parser, add_eval_parser, add_inspect_parser,
                add_export_parser, add_data_parser, add_download_parser, add_report_parser, add_translate_parser,
                add_serve_parser):
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.handler(args) or 0)
    except (CheckpointError, DatasetError, TrainingDiverged, DownloadError, FileNotFoundError, FileExistsError,
            ImportError, MemoryError,
            ValueError) as error:
        print(f"cyclegan {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

__all__ = [
    "IGNORED_REFERENCE_FLAGS",
    "bare_weights_config",
    "build_parser",
    "config_from_args",
    "flags_from_args",
    "main",
    "train_config_from_args",
]
