"""One typed configuration for a run: data, model, optimisation and runtime.

The CLI fills these dataclasses from the reference's flag names (``--dataroot``, ``--netG`` ...);
the resolved config is written to ``<checkpoints_dir>/<name>/config.json`` and into every
checkpoint so that ``test``, ``export`` and resume rebuild the networks from it without the user
repeating ``--netG --norm --no_dropout`` (the reference's most reported error).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan.core.registry import Registry

CONFIG_FILENAME = "config.json"


@dataclass
class DataConfig:
    dataroot: str = ""
    dataset_mode: str = "unaligned"  # unaligned | aligned | single
    direction: str = "AtoB"  # AtoB | BtoA
    phase: str = "train"
    input_nc: int = 3
    output_nc: int = 3
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
    load_size: int = 286
    crop_size: int = 256
    no_flip: bool = False
    serial_batches: bool = False
    max_dataset_size: int | None = None  # None: every image (the reference's float("inf"))
    batch_size: int = 1
    num_threads: int = 4
    # Stop with the list of bad files when more than this fraction of a folder cannot be decoded.
    max_bad_fraction: float = 0.1


@dataclass
class ModelConfig:
    """The recipe (``--model``) and the options every recipe's networks share.

    The defaults are CycleGAN's (the reference's); another recipe changes some of them, as the
    reference's ``modify_commandline_options`` does (see ``TrainingRecipe.defaults``).
    """

    model: str = "cycle_gan"  # cycle_gan | pix2pix | cut
    netG: str = "resnet_9blocks"
    netD: str = "basic"
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3
    norm: str = "instance"  # batch | instance | none | syncbatch
    # The reference's CycleGAN sets no_dropout=True by default (cycle_gan_model.modify_commandline_options).
    no_dropout: bool = True
    init_type: str = "normal"
    init_gain: float = 0.02
    padding_type: str = "reflect"
    # Ours, off in the reference: a ResNet G computes tanh(h(x) + atanh(x)) and starts as the identity.
    residual_output: bool = False
    # Ours: a per-pixel colour map beside the ResNet body, this wide (0: none); needs residual_output.
    colour_branch: int = 0
    # Ours: the residual-output body's contribution is multiplied by this (1: as is).
    body_scale: float = 1.0
    # Ours: steps of the colour branch's fit to the target domain's colours before training (0: none);
    # see cyclegan.recipes.colour_start. Needs colour_branch.
    colour_warmup_steps: int = 0
    # Ours: a generator whose target domain is greyscale (the first batch's pixels on the grey axis,
    # colour_start.off_axis_share) outputs grey: its channels averaged, as the reference's --output_nc 1
    # would make them, but decided from the data on a fresh run's first batch and kept with the weights
    # (the colour branch's buffer grey_output). CycleGAN also stops the cycle's gradient into it (see
    # cycle_gan.model.cycle_input). Needs colour_branch.
    grey_output_for_grey: bool = False
    gan_mode: str = "lsgan"  # lsgan | vanilla | wgangp | hinge
    pool_size: int = 50
    lambda_gp: float = 10.0
    gp_type: str = "mixed"  # mixed | real | fake
    gp_constant: float = 1.0
    real_label: float = 1.0  # < 1 gives one-sided label smoothing
    fake_label: float = 0.0

    @property
    def arch_fields(self) -> dict[str, Any]:
        """The fields that fix the networks' shapes and function: a resume or a checkpoint load must agree."""
        keys = ("model", "netG", "netD", "ngf", "ndf", "n_layers_D", "norm", "no_dropout", "padding_type",
                "residual_output", "colour_branch", "body_scale")
        return {k: getattr(self, k) for k in keys}


@dataclass
class OptimConfig:
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs to decay it to zero
    epoch_count: int = 1  # the starting epoch number
    lr_policy: str = "linear"  # linear | step | plateau | cosine
    lr_decay_iters: int = 50  # step policy: multiply by 0.1 every this many epochs
    max_iters: int | None = None  # stop after this many iterations in total (demo, tests)
    # With max_iters: the trainer sets n_epochs / n_epochs_decay so that the rate decays over the
    # second half of the run (fit_epochs_to_iterations, from the data set's size); the presets do.
    schedule_over_max_iters: bool = False
    # Keep an exponential moving average of the translating networks' weights (0: off), which
    # validation, test, translate and export then use; see cyclegan.training.averaging.
    ema_decay: float = 0.0


@dataclass
class RuntimeConfig:
    name: str = "experiment_name"
    checkpoints_dir: str = "./checkpoints"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int | None = None
    deterministic: bool = False
    print_freq: int = 100  # images between loss-log lines; each line is the mean over them
    display_freq: int = 400  # iterations between image pages
    save_latest_freq: int = 5000  # iterations between `latest` checkpoints
    save_epoch_freq: int = 5  # epochs between numbered checkpoints
    eval_freq: int = 1  # epochs between validations on valA / valB (when those folders exist)
    checkpoint_every: float | None = None  # seconds between `latest` checkpoints, in addition
    keep_last: int | None = None
    max_nonfinite_steps: int = 5  # stop (with a checkpoint) after this many non-finite steps in a row
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 where the hardware has it natively)
    channels_last: bool = False
    compile: bool = False
    torch_threads: int = 0  # torch's intra-op threads for the run (0: torch's default); --tune sets it
    gradient_checkpointing: bool = False  # recompute generator activations in backward (large crops)
    tensorboard: bool = True
    progress_bar: bool = True
    verbose: bool = False


# Each recipe's own section (its options: CycleGAN's lambda_A ..., CUT's lambda_NCE ...), registered by
# the recipe's folder (``cyclegan.recipes.<name>.config``) under the section's name, which is also the
# attribute of TrainConfig and the key of config.json that holds it.
RECIPE_SECTIONS: Registry[type] = Registry("recipe config section")


def register_section(name: str):
    """Class decorator: ``klass`` is the TrainConfig section ``name`` (a recipe's own options)."""
    return RECIPE_SECTIONS.register(name)


SHARED_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
                                    "runtime": RuntimeConfig}


@dataclass(init=False)
class TrainConfig:
    """The whole run: the shared sections and every registered recipe's section, by name
    (``config.data``, ``config.cycle_gan`` ...). Sections not given take their defaults."""

    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    runtime: RuntimeConfig
    recipes: dict[str, Any]  # section name → that recipe's options (every registered section)

    def __init__(self, data: DataConfig | None = None, model: ModelConfig | None = None,
                 optim: OptimConfig | None = None, runtime: RuntimeConfig | None = None,
                 recipes: dict[str, Any] | None = None, **sections: Any) -> None:
        unknown = set(sections) - set(RECIPE_SECTIONS)
        if unknown:
            raise TypeError(f"unknown config sections {sorted(unknown)}; known: "
                            f"{sorted([*SHARED_SECTIONS, *RECIPE_SECTIONS])}")
        self.data, self.model = data or DataConfig(), model or ModelConfig()
        self.optim, self.runtime = optim or OptimConfig(), runtime or RuntimeConfig()
        given = {**(recipes or {}), **sections}
        self.recipes = {name: given.get(name) or RECIPE_SECTIONS.get(name)() for name in RECIPE_SECTIONS}

    def __getattr__(self, name: str) -> Any:  # only for names that are not attributes: the recipes'
        recipes = self.__dict__.get("recipes", {})
        if name in recipes:
            return recipes[name]
        raise AttributeError(f"TrainConfig has no section {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RECIPE_SECTIONS and name not in SHARED_SECTIONS:
            self.recipes[name] = value
        else:
            super().__setattr__(name, value)

    @property
    def run_dir(self) -> Path:
        return Path(self.runtime.checkpoints_dir) / self.runtime.name

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in self.sections()}

    @classmethod
    def sections(cls) -> dict[str, type]:
        """Section name → its dataclass, in order (data, model, optim, runtime, then the recipes')."""
        return {**SHARED_SECTIONS, **{name: RECIPE_SECTIONS.get(name) for name in RECIPE_SECTIONS}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Rebuild from a saved dict; unknown keys are an error (a typo must not pass silently)."""
        sections = cls.sections()
        unknown = set(raw) - set(sections)
        if unknown:
            raise ValueError(f"unknown config sections {sorted(unknown)}; expected {sorted(sections)}")
        raw = {name: dict(values) for name, values in raw.items()}
        model = raw.setdefault("model", {})
        for section in RECIPE_SECTIONS:  # a config from before the recipe sections kept them in "model"
            for f in dataclasses.fields(RECIPE_SECTIONS.get(section)):
                if f.name in model:
                    raw.setdefault(section, {}).setdefault(f.name, model.pop(f.name))
        if "grey_output_for_grey" in raw.get("cycle_gan", {}):  # CycleGAN's option before CUT shared it
            model.setdefault("grey_output_for_grey", raw["cycle_gan"].pop("grey_output_for_grey"))
        kwargs = {}
        for section, klass in sections.items():
            values = raw.get(section, {})
            known = {f.name for f in dataclasses.fields(klass)}
            bad = set(values) - known
            if bad:
                raise ValueError(f"unknown {section} options {sorted(bad)}; known: {sorted(known)}")
            kwargs[section] = klass(**values)
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no saved options at {path}: was this run trained with `cyclegan train`?") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); restore it or delete the run folder") from None
        return cls.from_dict(raw)


# Named presets: overrides of the reference's defaults for one situation, by section and field. The
# reference's defaults (the dataclasses above) stay exactly the reference's; explicit flags override a
# preset. "quick": small, short CPU runs (a 2-core laptop, minutes), chosen from the learning curves
# in benchmarks/README.md ("Learning curves"); max_iters bounds it, and the learning rate decays over its
# second half (see fit_epochs_to_iterations). A recipe adds its own settings to a preset (its
# ``preset_defaults``: CycleGAN's quick preset drops instance norm and runs 800 iterations).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        # ngf / ndf 16 at batch 4 for 500 iterations: the demo's time budget. In the learning curves
        # (benchmarks/README.md) it clears the trivial baselines by a wide margin in a fraction of the time
        # of the reference's ngf / ndf 32 at batch 1, which ends higher; at these sizes a step is mostly
        # per-operator overhead, so a batch of four costs far less than four steps of one.
        "data": {"load_size": 72, "crop_size": 64, "num_threads": 0, "batch_size": 4},
        "model": {"netG": "resnet_6blocks", "ngf": 16, "ndf": 16},
        "optim": {"max_iters": 500, "schedule_over_max_iters": True},
        "runtime": {},
    },
}


def preset_config(name: str | None) -> TrainConfig:
    """The reference's defaults with a preset's overrides (``None``: the defaults)."""
    config = TrainConfig()
    if name is None:
        return config
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    for section, values in PRESETS[name].items():
        setattr(config, section, dataclasses.replace(getattr(config, section), **values))
    return config


def preset_keys(name: str | None) -> set[str]:
    """The "section.field" keys a preset sets (none for ``None``): they count as given."""
    return {f"{section}.{field}" for section, values in PRESETS.get(name or "", {}).items() for field in values}


def fit_epochs_to_iterations(optim: OptimConfig, images_per_epoch: int, batch_size: int = 1) -> OptimConfig:
    """Epoch counts for a run bounded by ``max_iters``: half at the initial rate, half decaying.

    The reference's schedule counts epochs (100 + 100 over horse2zebra's 1,334 images); a short run
    on another data set would stop long before any decay. Needs ``max_iters``.
    """
    if optim.max_iters is None:
        raise ValueError("fit_epochs_to_iterations needs max_iters")
    epochs = max(1, -(-optim.max_iters * batch_size // (2 * max(images_per_epoch, 1))))  # ceil
    return dataclasses.replace(optim, n_epochs=epochs, n_epochs_decay=epochs)
