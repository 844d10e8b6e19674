"""Translation with trained generators: the engine behind ``cyclegan test``.

Which networks translate comes from the recipe (``TrainingRecipe.directions``): G_A and G_B for
CycleGAN, G for pix2pix. They are rebuilt from the run's saved config (so ``--netG --norm
--no_dropout`` need not be repeated), from one of our checkpoints, or from the reference's
``<epoch>_net_<name>.pth`` files (weights only, never a plain unpickle; their architecture then comes
from the flags, with the recipe's defaults). Every image keeps its own size: the generator pads to
its multiple and crops back.

Train or eval mode: the reference's ``test.py`` keeps the networks in train mode unless ``--eval``
is given: batch norm then normalises with each image's own statistics and dropout stays on (the
pix2pix paper's "noise"). That default is kept; a network whose layers behave the same in both modes
(instance norm without running statistics, no dropout: CycleGAN's defaults) runs in eval mode, where
it computes the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cyclegan.config import CONFIG_FILENAME, TrainConfig
from cyclegan.core.checkpoint import (
    CHECKPOINT_SUFFIX,
    CheckpointError,
    inference_weights,
    load_checkpoint,
    load_reference_weights,
    read_checkpoint_state_skeleton,
)
from cyclegan.networks import define_G, generator_options, load_reference_state_dict
from cyclegan.recipes import MODELS, create_model

log = logging.getLogger(__name__)


@dataclass
class LoadedGenerators:
    nets: dict[str, nn.Module]
    config: TrainConfig
    source: list[Path] = field(default_factory=list)


def translator_names(config: TrainConfig) -> tuple[str, ...]:
    """The networks the run's recipe translates with (its ``directions``), in order."""
    return tuple(t.net for t in MODELS.get(config.model.model).directions)


def _build_generators(names: tuple[str, ...], config: TrainConfig) -> dict[str, nn.Module]:
    """The recipe's networks ``names``; a name it does not declare is a lone A→B generator (the
    reference's ``--model test``, which loads ``<epoch>_net_G<suffix>.pth``)."""
    recipe_nets = create_model(config, is_train=False).nets
    m, d = config.model, config.data
    return {
        name: recipe_nets[name] if name in recipe_nets else define_G(
            d.input_nc, d.output_nc, m.ngf, m.netG, **generator_options(m))
        for name in names
    }


def train_mode_matters(net: nn.Module) -> bool:
    """Whether ``net`` computes something else in train mode: dropout, or a norm with running stats."""
    return any((isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0)
               or (isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats)
               for module in net.modules())


def load_generators(
    run_dir: str | Path,
    epoch: str = "latest",
    names: Iterable[str] | None = None,
    flags: TrainConfig | None = None,
    device: torch.device | str = "cpu",
    eval_mode: bool = True,
) -> LoadedGenerators:
    """Load generators for inference from a run folder.

    Tries ``<run_dir>/<epoch>.safetensors`` (ours, config inside), then the reference's
    ``<run_dir>/<epoch>_net_<name>.pth`` files with the architecture from ``config.json`` if the run
    has one, else from ``flags``. ``names``: default the recipe's directions. ``eval_mode=False``:
    the reference's ``test.py`` default (train mode for networks where it matters, see above).
    """
    run_dir = Path(run_dir)
    ours = run_dir / f"{epoch}{CHECKPOINT_SUFFIX}"
    if ours.exists():
        state = load_checkpoint(ours)
        config = TrainConfig.from_dict(state["config"])
        names = translator_names(config) if names is None else tuple(names)
        for name in names:
            if name not in state["nets"]:
                raise CheckpointError(f"{ours} holds no {name} (it has {', '.join(state['nets'])})")
        nets = _build_generators(names, config)
        weights = inference_weights(state)
        for name, net in nets.items():
            net.load_state_dict(weights[name], strict=True)
        return LoadedGenerators(_prepare(nets, device, eval_mode), config, [ours])

    saved = run_dir / CONFIG_FILENAME
    config = TrainConfig.load(saved) if saved.exists() else (flags or TrainConfig())
    names = translator_names(config) if names is None else tuple(names)
    reference_files = {name: run_dir / f"{epoch}_net_{name}.pth" for name in names}
    if all(path.exists() for path in reference_files.values()):
        nets = _build_generators(names, config)
        for name, path in reference_files.items():
            weights = load_reference_weights(path)
            try:
                load_reference_state_dict(nets[name], weights, source=str(path))
            except ValueError as error:
                hint = MODELS.get(config.model.model).reference_weights_hint(weights, config)
                if hint is None:
                    raise
                raise ValueError(f"{error}\n  hint: {hint}") from None
        return LoadedGenerators(_prepare(nets, device, eval_mode), config, list(reference_files.values()))

    looked_for = [str(ours)] + [str(p) for p in reference_files.values()]
    available = sorted(p.name for p in run_dir.glob("*")) if run_dir.is_dir() else []
    raise CheckpointError(
        "no weights found for epoch " + repr(epoch) + "; looked for:\n  " + "\n  ".join(looked_for)
        + (f"\n{run_dir} holds: {', '.join(available[:20])}" if available else f"\n{run_dir} does not exist")
        + "\ncheck --name, --checkpoints_dir and --epoch"
    )


def run_config(run_dir: str | Path, epoch: str = "latest", flags: TrainConfig | None = None) -> TrainConfig:
    """The config a run's networks are built from, without loading them: our checkpoint's, else the
    run's ``config.json``, else ``flags`` (bare reference ``.pth`` files), else the defaults."""
    run_dir = Path(run_dir)
    ours = run_dir / f"{epoch}{CHECKPOINT_SUFFIX}"
    if ours.exists():
        return TrainConfig.from_dict(read_checkpoint_state_skeleton(ours)["config"])
    saved = run_dir / CONFIG_FILENAME
    return TrainConfig.load(saved) if saved.exists() else (flags or TrainConfig())


def is_lone_generator(run_dir: str | Path, epoch: str = "latest", flags: TrainConfig | None = None) -> bool:
    """A folder holding the reference's single ``<epoch>_net_G.pth`` (its ``--model test``, CUT's published
    weights) where the run's recipe (its ``config.json``, else ``flags``) finds none of its own files."""
    run_dir = Path(run_dir)
    if not (run_dir / f"{epoch}_net_G.pth").exists() or (run_dir / f"{epoch}{CHECKPOINT_SUFFIX}").exists():
        return False
    recipe = MODELS.get(run_config(run_dir, epoch, flags).model.model)
    return not all((run_dir / f"{epoch}_net_{d.net}.pth").exists() for d in recipe.directions)


def _prepare(nets: dict[str, nn.Module], device, eval_mode: bool = True) -> dict[str, nn.Module]:
    for net in nets.values():
        net.train(not eval_mode and train_mode_matters(net)).to(device)
        net.pad_to_multiple = True  # keep every image's own size
    return nets


__all__ = [
    "LoadedGenerators",
    "train_mode_matters",
    "translator_names",
    "is_lone_generator",
    "load_generators",
    "run_config",
]
