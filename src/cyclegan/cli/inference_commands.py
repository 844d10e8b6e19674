"""``cyclegan test``, ``translate`` and ``serve``: a run's (or a published model's) networks on images,
folders and videos."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cyclegan.cli.flags import (
    add_bare_weights_flags,
    add_ignored_reference_flags,
    add_model_source_flags,
    bare_weights_config,
    print_scores,
)
from cyclegan.cli.help_texts import HELP
from cyclegan.core.runtime import resolve_device
from cyclegan.deploy.fastest import BACKEND_CHOICES, PRECISION_CHOICES
from cyclegan.inference.paths import translate_paths
from cyclegan.inference.pretrained import fetch_pretrained
from cyclegan.inference.serve import serve
from cyclegan.inference.test_run import run_test
from cyclegan.inference.tiling import STATS_MODES
from cyclegan.inference.translator import Translator

log = logging.getLogger("cyclegan")


# --- test ---------------------------------------------------------------------------------------


def add_test_parser(subparsers) -> None:
    parser = subparsers.add_parser("test", help="translate a folder with a trained run (or reference weights)")
    parser.add_argument("--dataroot", required=True, help="the data set: <dataroot>/testA, testB (or test/ of A|B files)")
    parser.add_argument("--name", required=True, help="the run (or a folder of reference weights) to translate with")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--results_dir", default="./results",
                        help="the images and page go to <results_dir>/<name>/<phase>_<epoch>/")
    parser.add_argument("--dataset_mode", default=None,
                        help="unaligned (cycle_gan) | aligned (pix2pix: <dataroot>/<phase>/ of A|B files) | single")
    parser.add_argument("--phase", default="test", help="which folders to translate: <phase>A / <phase>B, or <phase>/")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest, best, or an epoch number")
    parser.add_argument("--num_test", type=int, default=None, help="translate at most this many images per folder")
    parser.add_argument("--direction", default=None, choices=("AtoB", "BtoA"),
                        help="which half of an A|B file is the input (default: the run's)")
    parser.add_argument("--eval", action="store_true",
                        help="eval mode (running batch-norm statistics, no dropout); without it networks run in train "
                             "mode as in the reference's test.py (no difference for instance norm without dropout)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the dropout masks of train-mode testing")
    parser.add_argument("--device", default="auto", help=HELP["device"])
    parser.add_argument("--preprocess", default="none", help="none (default): keep each image's own size")
    parser.add_argument("--load_size", type=int, default=256, help="with --preprocess: scale images to this size")
    parser.add_argument("--crop_size", type=int, default=256, help="with --preprocess: then crop to this size")
    add_bare_weights_flags(parser)
    parser.add_argument("--no_flip", action="store_true",
                        help="accepted for the reference's command lines (test never flips)")
    parser.add_argument("--serial_batches", action="store_true",
                        help="accepted for the reference's command lines (test reads the images in order)")
    parser.add_argument("--batch_size", type=int, default=1, help="images of the same size translated together")
    parser.add_argument("--num_threads", type=int, default=0,
                        help="accepted for the reference's command lines (test reads in the main process)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the scores")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="torch",
                        help="torch (the reference's path); onnxruntime / openvino: the generators exported once to "
                             "ONNX beside the checkpoint; auto: the fastest that agrees with fp32 (≥ 40 dB), measured "
                             "on the first batch and cached per machine")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="onnxruntime backend: int8 graphs calibrated on <dataroot>/trainA|B crops "
                             "(fast on AVX2 CPUs without native bf16)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                        help="fp32: exact; bf16: autocast (torch) or the inference precision (openvino), fast where "
                             "the CPU or GPU computes bf16 natively; auto: as --backend auto")
    add_ignored_reference_flags(parser)
    parser.set_defaults(handler=run_test_command)


def run_test_command(args: argparse.Namespace) -> int:
    flags = bare_weights_config(args)
    summary = run_test(
        dataroot=args.dataroot, name=args.name, checkpoints_dir=args.checkpoints_dir, results_dir=args.results_dir,
        model=args.model, model_suffix=args.model_suffix, dataset_mode=args.dataset_mode, phase=args.phase,
        epoch=args.epoch, num_test=args.num_test, direction=args.direction, device=args.device, flags=flags,
        preprocess=args.preprocess, load_size=args.load_size, crop_size=args.crop_size,
        backend=args.backend, batch_size=args.batch_size, precision=args.precision, eval_mode=args.eval,
        seed=args.seed, quantize=args.quantize,
    )
    print(f"translated {summary.count} image(s) into {summary.images_dir}")
    print(f"results page: {summary.page}")
    if summary.scores:
        print_scores(summary.scores, args.format, label="fake_B", max_rows=10)
    return 0




# --- translate, serve ----------------------------------------------------------------------------


def translator_from_args(args: argparse.Namespace, direction: str = "AtoB") -> Translator:
    """The :class:`Translator` the flags name, for ``direction``."""
    options = {key: getattr(args, key) for key in ("tile", "tile_overlap", "stats", "precision", "backend")
               if hasattr(args, key)}
    if args.pretrained is not None:
        published = fetch_pretrained(args.pretrained)
        run_dir, model, flags = published.run_dir, published.model, published.flags
    else:
        run_dir, model, flags = Path(args.checkpoints_dir) / args.name, args.model, bare_weights_config(args)
    if model == "test" and args.model_suffix:
        raise ValueError("--model_suffix is for `cyclegan test`; translate reads <epoch>_net_G.pth")
    return Translator.from_run(run_dir, args.epoch, direction, flags=flags, model=model,
                               device=resolve_device(args.device), **options)


def add_speed_flags(parser: argparse.ArgumentParser) -> None:
    """The path every network call takes; ``auto`` measures the paths once on the first input and keeps
    the fastest whose output agrees with fp32 (cached per machine, like ``train --tune``)."""
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="auto: the fastest that agrees with fp32 (≥ 40 dB); fp32: exact; bf16: autocast "
                             "(fast where the CPU or GPU computes bf16 natively)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="auto: measure torch, onnxruntime and openvino on the first input and keep the fastest "
                             "that agrees with fp32; one line says what was chosen and why")


def add_translate_parser(subparsers) -> None:
    parser = subparsers.add_parser("translate", help="translate your own images, folders, globs or videos")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder, glob or video")
    add_model_source_flags(parser)
    parser.add_argument("--out", required=True, help="output folder: <stem>_fake_B.<ext> (BtoA: _fake_A)")
    parser.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"),
                        help="AtoB: the run's A→B network (G_A, or G of a one-direction recipe); BtoA: G_B")
    parser.add_argument("--tile", type=int, default=None,
                        help="kept tile side in px (default: whole image, tiled only when it would not fit in "
                             "memory; 0: never tile)")
    parser.add_argument("--tile_overlap", type=int, default=None,
                        help="context margin per tile side in px (default: the generator's receptive-field reach)")
    parser.add_argument("--stats", choices=STATS_MODES, default="exact",
                        help="how tiles share norm statistics (exact: streamed layer by layer, equal to whole)")
    parser.add_argument("--batch_size", type=int, default=4, help="video frames per batch")
    parser.add_argument("--max_frames", type=int, default=None, help="video: translate at most this many frames")
    parser.add_argument("--start", type=float, default=0.0, help="video: start at this many seconds")
    parser.add_argument("--duration", type=float, default=None, help="video: this many seconds")
    add_speed_flags(parser)
    parser.set_defaults(handler=run_translate_command)


def run_translate_command(args: argparse.Namespace) -> int:
    translator = translator_from_args(args, args.direction)
    summary = translate_paths(translator, args.inputs, args.out, batch_size=args.batch_size,
                              max_frames=args.max_frames, start=args.start, duration=args.duration)
    for path in summary.written:
        print(path)
    for path, reason in summary.failed:
        print(f"cyclegan translate: skipped {path}: {reason}", file=sys.stderr)
    print(f"translated {len(summary.written)} file(s) into {args.out}" +
          (f"; {len(summary.failed)} could not be read" if summary.failed else ""))
    return 0 if summary.written or not summary.failed else 2


def add_serve_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="a web page (Gradio) to try a model: pip install 'cyclegan[web]'")
    add_model_source_flags(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--tile", type=int, default=None, help="as for translate")
    add_speed_flags(parser)
    parser.set_defaults(handler=run_serve_command)


def run_serve_command(args: argparse.Namespace) -> int:
    serve(lambda direction: translator_from_args(args, direction), host=args.host, port=args.port)
    return 0
