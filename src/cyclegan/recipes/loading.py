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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from cyclegan.config import CONFIG_FILENAME, DataConfig, ModelConfig, TrainConfig
from cyclegan.core.checkpoint import (
    CHECKPOINT_SUFFIX,
    CheckpointError,
    load_checkpoint,
    load_reference_weights,
    read_checkpoint_state_skeleton,
)
from cyclegan.core.fileio import atomic_write
from cyclegan.core.precision import Precision
from cyclegan.data import get_transform, list_images, load_image, scan_images, split_aligned
from cyclegan.networks import define_G, generator_options, load_reference_state_dict
from cyclegan.recipes import MODELS, create_model
from cyclegan.report.visuals import tensor_to_image
from cyclegan.training.averaging import inference_weights

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


def unit_image_tensor(path: Path, channels: int) -> torch.Tensor:
    """An image file as a 1×C×H×W float tensor in [0, 1], by the data loader's decoding rules."""
    return TF.to_dtype(TF.to_image(load_image(path, channels)), torch.float32, scale=True).unsqueeze(0)


def image_tensor(path: Path, channels: int, data: DataConfig | None = None) -> torch.Tensor:
    """An image as a 1×C×H×W tensor in [-1, 1]; ``data`` (if given) applies its preprocessing."""
    return _pil_tensor(load_image(path, channels), channels, data)


def _pil_tensor(image, channels: int, data: DataConfig | None) -> torch.Tensor:
    if data is not None and data.preprocess != "none":
        return get_transform(data, grayscale=channels == 1)(image).unsqueeze(0)
    return TF.to_dtype(TF.to_image(image), torch.float32, scale=True).unsqueeze(0) * 2 - 1


def save_tensor_image(tensor: torch.Tensor, path: Path) -> None:
    """Save a 1×C×H×W (or C×H×W) tensor in [-1, 1] as an 8-bit image, atomically."""
    image = tensor_to_image(tensor[0] if tensor.dim() == 4 else tensor)
    atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def folder_images(folder: Path, limit: int | None, max_bad_fraction: float = 0.1) -> list[Path]:
    paths, _ = list_images(folder)
    good = scan_images(paths, max_bad_fraction)
    return good[:limit] if limit is not None else good


def aligned_halves(path: Path, channels: tuple[int, int], direction: str = "AtoB",
                   data: DataConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """An aligned file (A | B side by side) as (source, target) 1×C×H×W tensors in [-1, 1].

    ``direction=BtoA``: the right half is the source, as the reference's aligned data set does.
    ``channels``: of the A and B halves. ``data`` (if given) applies its preprocessing to both halves.
    """
    source, target = (_pil_tensor(half.convert("L") if nc == 1 else half, nc, data)
                      for half, nc in zip(split_aligned(path), channels, strict=True))
    return (target, source) if direction == "BtoA" else (source, target)


@dataclass
class Translation:
    stem: str
    images: dict[str, torch.Tensor]  # visual name → 1×C×H×W in [-1, 1]


@torch.no_grad()
def translate_folder(
    paths: list[Path],
    forward: Callable[[torch.Tensor], torch.Tensor],
    backward: Callable[[torch.Tensor], torch.Tensor] | None,
    channels: int,
    labels: tuple[str, str, str],
    device: torch.device | str = "cpu",
    data: DataConfig | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    read: Callable[[Path], tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> Iterator[Translation]:
    """Yield real / fake (/ reconstructed) for each image in ``paths``.

    ``read(path)`` → (input, extra images to pass through by label): default the whole image as
    input; for aligned files, the source half with the target half as ``real_B``.

    ``forward`` / ``backward`` are torch generators or anything called the same way (an
    ``OnnxGenerator``). With ``batch_size`` > 1, images of the same size are translated together,
    up to ``batch_size`` at a time; results are yielded per batch, in the order batches fill up
    (every image keeps its own size, and in eval mode each image's output does not depend on the
    others in its batch). At most ``batch_size − 1`` images per distinct size wait in memory.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    real_label, fake_label, rec_label = labels
    # bf16 autocast: 1.7× the images/s of fp32 for resnet_9blocks at 256 px on an AVX-512 BF16 CPU,
    # at most 0.07 apart in [-1, 1] units (benchmarks/inference.py); fp32 by default for exact output.
    autocast = Precision(precision, torch.device(device)).autocast

    def run(batch: list[tuple[str, torch.Tensor]]) -> Iterator[Translation]:
        real = torch.cat([tensor for _, tensor in batch]).to(device)  # N×C×H×W, one size
        with autocast():
            fake = forward(real).float()
            rec = backward(fake).float() if backward is not None else None
        for index, (stem, _) in enumerate(batch):
            images = {real_label: real[index : index + 1].cpu(), fake_label: fake[index : index + 1].cpu()}
            if rec is not None:
                images[rec_label] = rec[index : index + 1].cpu()
            images.update(extras.pop(stem, {}))
            yield Translation(stem, images)

    waiting: dict[tuple[int, ...], list[tuple[str, torch.Tensor]]] = {}
    extras: dict[str, dict[str, torch.Tensor]] = {}
    for path in paths:
        if read is None:
            real = image_tensor(path, channels, data)
        else:
            real, extras[path.stem] = read(path)
        group = waiting.setdefault(tuple(real.shape), [])
        group.append((path.stem, real))
        if len(group) == batch_size:
            yield from run(waiting.pop(tuple(real.shape)))
    for group in waiting.values():
        yield from run(group)


__all__ = [
    "LoadedGenerators",
    "aligned_halves",
    "train_mode_matters",
    "translator_names",
    "ModelConfig",
    "Translation",
    "folder_images",
    "image_tensor",
    "unit_image_tensor",
    "is_lone_generator",
    "load_generators",
    "run_config",
    "save_tensor_image",
    "translate_folder",
]
