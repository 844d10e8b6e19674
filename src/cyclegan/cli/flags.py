"""The flags the commands share: the config dataclasses as flags (the reference's names), the
reference's ignored flags, where a network comes from, and how flags become a run's config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from cyclegan.cli.help_texts import HELP
from cyclegan.config import (
    DataConfig,
    ModelConfig,
    TrainConfig,
)
from cyclegan.core.runtime import parse_duration
from cyclegan.metrics import format_table, to_json
from cyclegan.metrics.baselines import format_comparison
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



def print_scores(result: dict[str, Any], fmt: str, label: str, max_rows: int | None = 50,
                 no_baselines: str | None = None) -> None:
    """Scores as JSON, or as the table followed by the trivial baselines' (else the ``no_baselines`` note)."""

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
