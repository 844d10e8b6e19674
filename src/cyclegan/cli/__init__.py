"""The ``cyclegan`` command: parses flags (the reference's names) and dispatches to library calls.

Subcommands: train, test, translate, serve, demo, eval, inspect, export, data. Each one is a thin wrapper over an
importable function (``train(config)``, ``run_test(...)``, ``evaluate_folders(...)``...).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cyclegan.cli.help_texts import HELP
from cyclegan.cli.inspect_command import add_inspect_arguments, run_inspect
from cyclegan.config import (
    PRESETS,
    DataConfig,
    ModelConfig,
    TrainConfig,
)
from cyclegan.core.runtime import parse_duration, resolve_device
from cyclegan.data.synthetic_tasks import (
    DEFAULT_TASK,
    SYNTHETIC_TASKS,
    describe_tasks,
    write_paired_task_dataset,
    write_task_dataset,
)
from cyclegan.inference.paths import translate_paths
from cyclegan.inference.pretrained import fetch_pretrained
from cyclegan.inference.serve import serve
from cyclegan.inference.tiling import STATS_MODES
from cyclegan.inference.translator import Translator
from cyclegan.recipes import MODELS, recipe_defaults, resolve_config
from cyclegan.recipes.cut.config import CUTOptions

log = logging.getLogger("cyclegan")

# Flags of the reference we accept so that existing command lines keep working, but which have no
# effect here (visdom / wandb display, GPU ids handled by --device, iteration-named saves).
IGNORED_REFERENCE_FLAGS = {
    "--display_id": int, "--display_server": str, "--display_env": str, "--display_port": int,
    "--display_winsize": int, "--display_ncols": int, "--update_html_freq": int, "--use_wandb": None,
    "--wandb_project_name": str, "--no_html": None, "--save_by_iter": None, "--load_iter": int,
    "--suffix": str, "--aspect_ratio": float,
}



def str2bool(value: str) -> bool:
    """Boolean flags that take an optional value, as CUT's do: ``--nce_idt``, ``--nce_idt false`` ..."""
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"a boolean is expected (true / false), got {value!r}")


def add_dataclass_flags(parser: argparse.ArgumentParser, klass: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--field`` per dataclass field; booleans default False are store_true flags."""
    group = parser.add_argument_group(klass.__name__.replace("Config", "").lower())
    for f in dataclasses.fields(klass):
        if f.name in skip:
            continue
        default = f.default
        help_text = HELP.get(f.name, "") + (f" (default: {default})" if default not in (None, "", False) else "")
        if isinstance(default, bool):
            if default:
                group.add_argument(f"--no_{f.name}", dest=f.name, action="store_false",
                                   help=f"disable {f.name}" + (f" (on: {HELP[f.name]})" if f.name in HELP else ""))
            else:
                group.add_argument(f"--{f.name}", action="store_true", help=help_text)
            continue
        if f.type == "bool | None":  # CUT's str2bool flags: --nce_idt, --nce_idt False (absent: the mode's)
            group.add_argument(f"--{f.name}", type=str2bool, nargs="?", const=True, default=argparse.SUPPRESS,
                               help=help_text)
            continue
        optional_kinds = {"float | None": float, "str | None": str}
        kind = type(default) if default is not None else optional_kinds.get(str(f.type), int)
        if f.name in ("checkpoint_every", "save_latest_freq"):  # a count or a duration such as 10m
            kind = str
        group.add_argument(f"--{f.name}", type=kind, default=argparse.SUPPRESS, help=help_text)


def as_flags(settings: Mapping[str, Any]) -> str:
    """"section.field" → value settings as the command line that gives them (for help texts)."""
    return " ".join(f"--{key.split('.')[1]}" + ("" if value is True else f" {value}") for key, value in settings.items())


def add_ignored_reference_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reference flags accepted for compatibility (no effect)")
    for flag, kind in IGNORED_REFERENCE_FLAGS.items():
        if kind is None:
            group.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
        else:
            group.add_argument(flag, type=kind, help=argparse.SUPPRESS)
    group.add_argument("--gpu_ids", type=str, default=None, help="reference flag: -1 means --device cpu, N means cuda:N")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None,
                     preset: str | None = None) -> TrainConfig:
    """The run's config from parsed flags: the flags given, as "section.field" settings, resolved by
    :func:`cyclegan.recipes.resolve_config` (over ``base``, a saved run's config, or over the reference's
    defaults with ``preset``'s values and the recipe's own defaults)."""
    return resolve_config(flags_from_args(args), preset=preset, base=base)


def flags_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config options the command line gave, as "section.field" → value (a switch left off is not
    given: a preset's or a saved run's value stands)."""
    given = vars(args)
    flags: dict[str, Any] = {}
    for section, klass in TrainConfig.sections().items():
        for f in dataclasses.fields(klass):
            if f.name in given and not (isinstance(f.default, bool) and given[f.name] == f.default):
                flags[f"{section}.{f.name}"] = given[f.name]
    if given.get("dropout"):
        flags["model.no_dropout"] = False
    latest = flags.pop("runtime.save_latest_freq", None)
    if latest is not None:
        if latest.strip()[-1:].lower() in ("s", "m", "h"):
            flags["runtime.checkpoint_every"] = parse_duration(latest)
            flags["runtime.save_latest_freq"] = 0
        else:
            flags["runtime.save_latest_freq"] = int(latest)
    if isinstance(flags.get("runtime.checkpoint_every"), str):
        flags["runtime.checkpoint_every"] = parse_duration(flags["runtime.checkpoint_every"])
    gpu_ids = given.get("gpu_ids")
    if gpu_ids is not None and "runtime.device" not in flags:
        first = gpu_ids.split(",")[0].strip()
        flags["runtime.device"] = "cpu" if first in ("-1", "") else f"cuda:{first}"
    return flags


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
    from cyclegan.core.checkpoint import CHECKPOINT_SUFFIX
    from cyclegan.training.trainer import Trainer

    config = train_config_from_args(args)
    if not config.data.dataroot:
        raise SystemExit("cyclegan train: --dataroot is required (a folder with trainA/ and trainB/, or train/ "
                         "of A|B pairs for --model pix2pix)")
    if args.tune or args.retune:
        from cyclegan.training.tune import tune

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
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="onnxruntime: the generators exported once to ONNX beside the checkpoint")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="onnxruntime backend: int8 graphs calibrated on <dataroot>/trainA|B crops "
                             "(fast on AVX2 CPUs without native bf16)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                        help="torch backend: bf16 autocast is faster on CPUs/GPUs with native bf16 (fp32: exact)")
    add_ignored_reference_flags(parser)
    parser.set_defaults(handler=run_test_command)


def run_test_command(args: argparse.Namespace) -> int:
    from cyclegan.inference.test_run import run_test

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


def print_scores(result: dict[str, Any], fmt: str, label: str, max_rows: int | None = 50,
                 no_baselines: str | None = None) -> None:
    """Scores as JSON, or as the table followed by the trivial baselines' (else the ``no_baselines`` note)."""
    from cyclegan.metrics import format_table, to_json
    from cyclegan.metrics.baselines import format_comparison

    if fmt == "json":
        print(to_json(result))
        return
    print(format_table(result, max_rows=max_rows))
    comparison = result.get("baselines")
    if comparison:
        print(f"\nagainst the trivial baselines on the same {comparison['count']} image(s) "
              f"(target colour statistics: {comparison['target_statistics']}):")
        print(format_comparison(result, comparison["baselines"], label=label))
    elif "psnr" in result and no_baselines:
        print(f"\n({no_baselines})")


# --- translate, serve ----------------------------------------------------------------------------


def add_bare_weights_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and the architecture flags, read only for the reference's bare ``.pth`` weights (a run
    of ours carries its config); their defaults are the recipe's, as the reference's ``test.py`` takes
    them from ``modify_commandline_options``."""
    parser.add_argument("--model", default=None, choices=(*MODELS.names(), "test"),
                        help="default: the run's own recipe; test: one generator <epoch>_net_G<suffix>.pth "
                             "(the reference's --model test)")
    parser.add_argument("--model_suffix", default="", help="--model test: load <epoch>_net_G<suffix>.pth")
    group = parser.add_argument_group("architecture of bare .pth weights (a run of ours carries its own)")
    for flag, kind in (("netG", str), ("norm", str), ("init_type", str), ("ngf", int), ("input_nc", int),
                       ("output_nc", int)):
        group.add_argument(f"--{flag}", type=kind, default=argparse.SUPPRESS, help=HELP.get(flag, f"the reference's --{flag}"))
    group.add_argument("--no_dropout", action="store_true", default=argparse.SUPPRESS,
                       help="the generator has no dropout (the reference's test options keep it unless told)")
    group.add_argument("--CUT_mode", default=argparse.SUPPRESS, choices=("CUT", "cut", "FastCUT", "fastcut"),
                       help=HELP["CUT_mode"])
    group.add_argument("--normG", default=argparse.SUPPRESS, choices=("instance", "batch", "none"),
                       help="CUT's generator norm")
    for flag in ("no_antialias", "no_antialias_up"):
        group.add_argument(f"--{flag}", action="store_true", default=argparse.SUPPRESS,
                           help="CUT: plain strided down-sampling" if flag == "no_antialias" else
                           "CUT: plain transposed-convolution up-sampling")


def bare_weights_config(args: argparse.Namespace) -> TrainConfig:
    """The architecture ``--model`` and the flags describe, for weights that carry no config: the
    recipe's defaults (``--model test``: CycleGAN's networks) under the flags given."""
    given = vars(args)
    model_flags = {k: given[k] for k in ("netG", "ngf", "norm", "init_type") if k in given}
    data_flags = {k: given[k] for k in ("input_nc", "output_nc") if k in given}
    cut_flags = {k: given[k] for k in ("CUT_mode", "normG", "no_antialias", "no_antialias_up") if k in given}
    recipe = given.get("model") if given.get("model") not in (None, "test") else "cycle_gan"
    explicit = {f"model.{k}" for k in model_flags} | {f"data.{k}" for k in data_flags}
    # The reference's test options keep dropout unless --no_dropout; a recipe's defaults may say otherwise.
    if "no_dropout" in given:
        explicit.add("model.no_dropout")
    model = ModelConfig(model=recipe, no_dropout=given.get("no_dropout", False), **model_flags)
    return recipe_defaults(TrainConfig(data=DataConfig(**data_flags), model=model, cut=CUTOptions(**cut_flags)),
                           given=explicit)


def add_model_source_flags(parser: argparse.ArgumentParser) -> None:
    """Where the network comes from: a run (``--name``), or a published model (``--pretrained``)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--name", help=HELP["name"])
    source.add_argument("--pretrained", metavar="NAME",
                        help="a published model `cyclegan download pretrained` knows (the reference's CycleGAN and "
                             "pix2pix models, CUT's): downloaded into the cache on first use")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest, best, or an epoch number")
    parser.add_argument("--device", default="auto", help=HELP["device"])
    add_bare_weights_flags(parser)


def translator_from_args(args: argparse.Namespace, direction: str = "AtoB") -> Translator:
    """The :class:`Translator` the flags name, for ``direction``."""
    options = {key: getattr(args, key) for key in ("tile", "tile_overlap", "stats") if hasattr(args, key)}
    if args.pretrained is not None:
        published = fetch_pretrained(args.pretrained)
        run_dir, model, flags = published.run_dir, published.model, published.flags
    else:
        run_dir, model, flags = Path(args.checkpoints_dir) / args.name, args.model, bare_weights_config(args)
    if model == "test" and args.model_suffix:
        raise ValueError("--model_suffix is for `cyclegan test`; translate reads <epoch>_net_G.pth")
    return Translator.from_run(run_dir, args.epoch, direction, flags=flags, model=model,
                               device=resolve_device(args.device), **options)


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
    parser.set_defaults(handler=run_serve_command)


def run_serve_command(args: argparse.Namespace) -> int:
    serve(lambda direction: translator_from_args(args, direction), host=args.host, port=args.port)
    return 0


# --- demo ---------------------------------------------------------------------------------------


def add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the whole job on the built-in synthetic data set, in minutes on a CPU")
    parser.add_argument("--out", default="./demo", help="folder for the data set, run and results")
    parser.add_argument("--iters", type=int, default=None,
                        help="training iterations (default: the quick preset's max_iters)")
    parser.add_argument("--device", default="auto", help=HELP["device"])
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic set and the training run")
    parser.add_argument("--precision", default=None, help="auto (default) | fp32 | bf16")
    parser.add_argument("--model", default="cycle_gan", choices=MODELS.names(),
                        help="cycle_gan (unpaired), pix2pix (the paired version of the same set) or cut (CUT, "
                             "unpaired)")
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    import signal

    from cyclegan.cli.demo import DemoInterrupted, run_demo

    try:
        result = run_demo(out=args.out, iters=args.iters, device=args.device, seed=args.seed,
                          precision=args.precision, model=args.model)
    except DemoInterrupted as stop:
        print(f"cyclegan demo: {stop}", file=sys.stderr)
        number = getattr(signal, stop.signal_name, None)
        return 128 + int(number) if number is not None else 1  # the shell's convention for a signal
    print(result.summary())
    return 0


# --- eval ---------------------------------------------------------------------------------------


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="PSNR / SSIM of translations against true translations")
    parser.add_argument("--fake", required=True, help="folder of translations (e.g. results/.../images)")
    parser.add_argument("--real", required=True, help="folder of true translations, matched by file stem")
    parser.add_argument("--metrics", default="psnr,ssim", help="any of psnr,ssim,lpips (paired) and fid,kid (unpaired)")
    parser.add_argument("--lpips_weights", default=None,
                        help="LPIPS backbone: torchvision's alexnet-owt-7be5be79.pth (default: $CYCLEGAN_CACHE/lpips/)")
    parser.add_argument("--fake_label", default=None, help="which results to score: fake_B (default) | fake_A | fake")
    parser.add_argument("--inception_weights", default=None,
                        help="FID/KID Inception-v3 weights (default: the cache `cyclegan download inception` fills)")
    parser.add_argument("--device", default="cpu", help="where the LPIPS and Inception networks run: cpu | cuda")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the scores")
    baselines = parser.add_argument_group(
        "trivial baselines (doing nothing, constant image, colour transfer, histogram matching), scored on the "
        "same images when the inputs are known")
    baselines.add_argument("--source", default=None,
                           help="the inputs that were translated (default: the *_real_A files of a results folder)")
    baselines.add_argument("--target_domain", default=None,
                           help="the target domain's training images, for the colour statistics (e.g. trainB; "
                                "default: the ground truth itself, which favours the baselines)")
    baselines.add_argument("--source_domain", default=None,
                           help="the source domain's training images (e.g. trainA; default: each image's own)")
    parser.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from cyclegan.metrics import evaluate_folders

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    result = evaluate_folders(args.fake, args.real, metrics=metrics, fake_label=args.fake_label,
                              inception_weights=args.inception_weights, lpips_weights=args.lpips_weights,
                              device=args.device)
    if "psnr" in result and "ssim" in result:
        from cyclegan.metrics.baselines import folder_baselines, margins

        comparison = folder_baselines({r["name"] for r in result["per_image"]}, args.source or args.fake, args.real,
                                      target_domain=args.target_domain, source_domain=args.source_domain,
                                      plain_sources=args.source is not None)
        if comparison is not None:
            result["baselines"] = comparison
            result.update(margins(result, comparison["baselines"]))
    print_scores(result, args.format, label="fake", no_baselines="no baselines: pass --source with the inputs to "
                 "compare with doing nothing, a constant image ...")
    return 0


# --- download, report ---------------------------------------------------------------------------


def add_download_parser(subparsers) -> None:
    from cyclegan.core.download import DATASETS, PIX2PIX_DATASETS, PRETRAINED_NAMES

    parser = subparsers.add_parser("download", help="the reference's data sets, pretrained generators, FID weights")
    kinds = parser.add_subparsers(dest="download_command", required=True)
    dataset = kinds.add_parser("dataset", help="a CycleGAN data set into <root>/<name>/trainA ..., or a pix2pix "
                                                  "one into <root>/<name>/train ... (A|B pairs)")
    dataset.add_argument("name", choices=sorted(set(DATASETS) | set(PIX2PIX_DATASETS)),
                         help="the data set, by the reference's name")
    dataset.add_argument("--root", default="./datasets", help="the data set goes to <root>/<name>/")
    dataset.add_argument("--paired", action="store_true",
                         help="the pix2pix (A|B) version of facades, cityscapes or maps; the pix2pix-only sets "
                              "(edges2shoes, edges2handbags, night2day) are always paired")
    pretrained = kinds.add_parser("pretrained", help="a published generator into <checkpoints_dir>/<name>_pretrained "
                                                        "(CycleGAN's, pix2pix's, or CUT's *_cut / *_fastcut)")
    pretrained.add_argument("name", choices=PRETRAINED_NAMES, help="the model, by its publisher's name")
    pretrained.add_argument("--checkpoints_dir", default="./checkpoints",
                            help="the generator goes to <checkpoints_dir>/<name>_pretrained/latest_net_G.pth")
    pretrained.add_argument("--paired", action="store_true",
                            help="pix2pix's generator of sat2map, map2sat or facades_label2photo (without it: "
                                 "CycleGAN's); edges2shoes and day2night are always pix2pix's")
    inception = kinds.add_parser("inception", help="the Inception-v3 weights `cyclegan eval --metrics fid` reads")
    inception.add_argument("--cache", default=None, help="cache folder (default: $CYCLEGAN_CACHE or ~/.cache/cyclegan)")
    inception.add_argument("--url", default=None, help="another place to fetch the weights from (default: "
                                                        "torch-fidelity's release)")
    for sub in (dataset, pretrained, inception):
        sub.add_argument("--sha256", default=None, help="expected checksum (full or a prefix of ≥ 8 hex digits)")
    for sub in (dataset, pretrained):
        sub.add_argument("--base", default=None, help="mirror URL (default: $CYCLEGAN_DOWNLOAD_BASE or the reference's)")
    parser.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    from cyclegan.core import download

    if args.download_command == "dataset":
        if args.paired or args.name not in download.DATASETS:
            path = download.download_pix2pix_dataset(args.name, args.root, base=args.base, sha256=args.sha256)
        else:
            path = download.download_dataset(args.name, args.root, base=args.base, sha256=args.sha256)
    elif args.download_command == "pretrained" and download.pretrained_source(args.name, args.paired) == "pix2pix":
        path = download.download_pix2pix_pretrained(args.name, args.checkpoints_dir, base=args.base,
                                                    sha256=args.sha256)
        direction = download.pretrained_direction(args.name, "pix2pix")  # as the reference tests it
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model pix2pix --direction {direction}  (DIR: its pix2pix data set)")
    elif args.download_command == "pretrained" and args.name in download.CUT_PRETRAINED:
        path = download.download_cut_pretrained(args.name, args.checkpoints_dir, base=args.base, sha256=args.sha256)
        mode = "FastCUT" if args.name.endswith("_fastcut") else "CUT"
        direction = " --direction BtoA" if args.name.startswith("cityscapes") else ""  # as CUT tests it
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model cut --CUT_mode {mode}{direction}")
    elif args.download_command == "pretrained":
        path = download.download_pretrained(args.name, args.checkpoints_dir, base=args.base, sha256=args.sha256)
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model test --dataset_mode single --no_dropout")
    else:
        path = download.download_inception(args.cache, args.url, sha256=args.sha256)
    print(path)
    return 0


def add_report_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="one static HTML page: scores, loss curves, samples of a run")
    parser.add_argument("--name", required=True, help="the run")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--results_dir", default=None, help="a `cyclegan test` results folder to include")
    parser.add_argument("--out", default=None, help="the page (default: <run>/report.html)")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from cyclegan.report import write_run_report

    results = args.results_dir
    default_results = Path("results") / args.name / "test_latest"
    if results is None and default_results.is_dir():
        results = default_results
    print(write_run_report(Path(args.checkpoints_dir) / args.name, results_dir=results, out=args.out))
    return 0


# --- inspect, export, data ----------------------------------------------------------------------


def add_inspect_parser(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="per-layer shapes, receptive field, parameters and MACs")
    add_inspect_arguments(parser)
    parser.set_defaults(handler=run_inspect)


def add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's networks for other tools")
    parser.add_argument("--name", required=True, help="the run to export")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest, best, or an epoch number")
    parser.add_argument("--format", choices=("reference", "onnx", "torch_export"), default="reference",
                        help="reference: <epoch>_net_G_A.pth ... for the reference's test.py; onnx / torch_export (.pt2): "
                             "the generators, with a parity check against PyTorch")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--height", type=int, default=256, help="example input height (sizes stay dynamic)")
    parser.add_argument("--width", type=int, default=256, help="example input width (sizes stay dynamic)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (18 or later)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="int8 (with --format onnx): also write <name>.int8.onnx, statically quantised and "
                             "calibrated on the run's training crops; fast on AVX2 CPUs (prints its PSNR vs fp32)")
    parser.add_argument("--dataroot", default=None,
                        help="training set for the int8 calibration (default: the run's --dataroot)")
    parser.add_argument("--calibration_images", type=int, default=32,
                        help="how many training crops per generator calibrate the int8 activation ranges")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cyclegan.deploy.export import format_export_summary, run_export_model

    result = run_export_model(Path(args.checkpoints_dir) / args.name, args.epoch, args.format, args.out,
                              height=args.height, width=args.width, opset=args.opset, quantize=args.quantize,
                              dataroot=args.dataroot, calibration_images=args.calibration_images)
    print(format_export_summary(result))
    return 0


def add_data_parser(subparsers) -> None:
    from cyclegan.data import SYNTHETIC_DEFAULTS

    parser = subparsers.add_parser("data", help="data set tools")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    synthetic = data_sub.add_parser("synthetic", help="write a synthetic unpaired data set with known true translations",
                                    epilog="tasks:\n" + describe_tasks(),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    synthetic.add_argument("out", help="the data set's folder")
    synthetic.add_argument("--task", default=DEFAULT_TASK, choices=SYNTHETIC_TASKS.names(), metavar="NAME",
                           help=f"which mapping B is drawn under (default: {DEFAULT_TASK}, the built-in set); one of "
                                f"{', '.join(SYNTHETIC_TASKS.names())} (listed below; cyclegan.data.synthetic_tasks)")
    synthetic.add_argument("--n", type=int, default=SYNTHETIC_DEFAULTS["n"], help="training images per domain")
    synthetic.add_argument("--n_test", type=int, default=SYNTHETIC_DEFAULTS["n_test"], help="test images per domain")
    synthetic.add_argument("--size", type=int, default=SYNTHETIC_DEFAULTS["size"], help="image side in pixels")
    synthetic.add_argument("--seed", type=int, default=SYNTHETIC_DEFAULTS["seed"],
                           help="the set is a pure function of the seed")
    synthetic.add_argument("--overwrite", action="store_true", help="replace a data set already in OUT")
    synthetic.add_argument("--paired", action="store_true",
                           help="pix2pix data: train/ val/ test/ of A|B files, B the true translation of A")
    synthetic.set_defaults(handler=run_data_synthetic)
    combine = data_sub.add_parser("combine", help="pair two folders by file name into A|B files (combine_A_and_B.py)")
    combine.add_argument("--fold_A", required=True, help="A images, in split subfolders (train/ val/ test/) or not")
    combine.add_argument("--fold_B", required=True, help="B images with the same file names and sizes")
    combine.add_argument("--out", "--fold_AB", dest="out", required=True, help="where the A|B files go")
    combine.set_defaults(handler=run_data_combine)


def run_data_synthetic(args: argparse.Namespace) -> int:
    task = SYNTHETIC_TASKS.get(getattr(args, "task", DEFAULT_TASK))  # an unknown name lists the known ones
    sizes = {"n": args.n, "size": args.size, "seed": args.seed, "n_test": args.n_test, "overwrite": args.overwrite}
    if args.paired:
        root = write_paired_task_dataset(task.name, args.out, **sizes)
        print(f"wrote {root} (task {task.name}): train/ val/ test/ of A|B pairs (B = the true translation of A)")
        return 0
    root = write_task_dataset(task.name, args.out, **sizes)
    truths = "testA_gt/ testB_gt/" if task.invertible else "testA_gt/"
    print(f"wrote {root} (task {task.name}: {task.formula}): trainA/ trainB/ testA/ testB/ and the true "
          f"translations {truths}")
    return 0


def run_data_combine(args: argparse.Namespace) -> int:
    from cyclegan.data.paired import combine_folders

    counts = combine_folders(args.fold_A, args.fold_B, args.out)
    for split, count in counts.items():
        print(f"{Path(args.out) / split}: {count} A|B pair(s)")
    return 0


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
    from cyclegan.core.checkpoint import CheckpointError
    from cyclegan.core.download import DownloadError
    from cyclegan.data import DatasetError
    from cyclegan.training.trainer import TrainingDiverged

    try:
        return int(args.handler(args) or 0)
    except (CheckpointError, DatasetError, TrainingDiverged, DownloadError, FileNotFoundError, FileExistsError,
            ImportError, MemoryError,
            ValueError) as error:
        print(f"cyclegan {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["build_parser", "config_from_args", "main"]
