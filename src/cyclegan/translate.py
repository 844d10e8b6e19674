"""Translation with trained generators: the engine behind ``cyclegan test``.

Generators are rebuilt from the run's saved config (so ``--netG --norm --no_dropout`` need not be
repeated), from one of our checkpoints, or from the reference's ``<epoch>_net_G*.pth`` files
(weights only, never a plain unpickle; their architecture then comes from the flags, with the
reference's defaults). Every image keeps its own size: the generator pads to its multiple and
crops back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from cyclegan.checkpoint import CHECKPOINT_SUFFIX, CheckpointError, load_checkpoint, load_reference_weights
from cyclegan.config import CONFIG_FILENAME, DataConfig, ModelConfig, TrainConfig
from cyclegan.data import get_transform, list_images, load_image, scan_images
from cyclegan.networks import define_G, load_reference_state_dict
from cyclegan.precision import Precision

log = logging.getLogger(__name__)


@dataclass
class LoadedGenerators:
    nets: dict[str, nn.Module]
    config: TrainConfig
    source: list[Path] = field(default_factory=list)


def _build_generator(name: str, config: TrainConfig) -> nn.Module:
    m, d = config.model, config.data
    input_nc, output_nc = (d.input_nc, d.output_nc) if name in ("G_A", "G") else (d.output_nc, d.input_nc)
    return define_G(input_nc, output_nc, m.ngf, m.netG, norm=m.norm, use_dropout=not m.no_dropout,
                    init_type=m.init_type, init_gain=m.init_gain, padding_type=m.padding_type)


def load_generators(
    run_dir: str | Path,
    epoch: str = "latest",
    names: Iterable[str] = ("G_A", "G_B"),
    flags: TrainConfig | None = None,
    device: torch.device | str = "cpu",
) -> LoadedGenerators:
    """Load generators for inference from a run folder.

    Tries ``<run_dir>/<epoch>.safetensors`` (ours, config inside), then the reference's
    ``<run_dir>/<epoch>_net_<name>.pth`` files with the architecture from ``config.json`` if the run
    has one, else from ``flags``.
    """
    run_dir = Path(run_dir)
    names = tuple(names)
    ours = run_dir / f"{epoch}{CHECKPOINT_SUFFIX}"
    if ours.exists():
        state = load_checkpoint(ours)
        config = TrainConfig.from_dict(state["config"])
        nets = {}
        for name in names:
            if name not in state["nets"]:
                raise CheckpointError(f"{ours} holds no {name} (it has {', '.join(state['nets'])})")
            net = _build_generator(name, config)
            net.load_state_dict(state["nets"][name], strict=True)
            nets[name] = net
        return LoadedGenerators(_prepare(nets, device), config, [ours])

    reference_files = {name: run_dir / f"{epoch}_net_{name}.pth" for name in names}
    if all(path.exists() for path in reference_files.values()):
        saved = run_dir / CONFIG_FILENAME
        config = TrainConfig.load(saved) if saved.exists() else (flags or TrainConfig())
        nets = {}
        for name, path in reference_files.items():
            net = _build_generator(name, config)
            load_reference_state_dict(net, load_reference_weights(path), source=str(path))
            nets[name] = net
        return LoadedGenerators(_prepare(nets, device), config, list(reference_files.values()))

    looked_for = [str(ours)] + [str(p) for p in reference_files.values()]
    available = sorted(p.name for p in run_dir.glob("*")) if run_dir.is_dir() else []
    raise CheckpointError(
        "no weights found for epoch " + repr(epoch) + "; looked for:\n  " + "\n  ".join(looked_for)
        + (f"\n{run_dir} holds: {', '.join(available[:20])}" if available else f"\n{run_dir} does not exist")
        + "\ncheck --name, --checkpoints_dir and --epoch"
    )


def _prepare(nets: dict[str, nn.Module], device) -> dict[str, nn.Module]:
    for net in nets.values():
        net.eval().to(device)
        net.pad_to_multiple = True  # keep every image's own size
    return nets


def unit_image_tensor(path: Path, channels: int) -> torch.Tensor:
    """An image file as a 1×C×H×W float tensor in [0, 1], by the data loader's decoding rules."""
    return TF.to_dtype(TF.to_image(load_image(path, channels)), torch.float32, scale=True).unsqueeze(0)


def image_tensor(path: Path, channels: int, data: DataConfig | None = None) -> torch.Tensor:
    """An image as a 1×C×H×W tensor in [-1, 1]; ``data`` (if given) applies its preprocessing."""
    if data is not None and data.preprocess != "none":
        return get_transform(data, grayscale=channels == 1)(load_image(path, channels)).unsqueeze(0)
    return unit_image_tensor(path, channels) * 2 - 1


def save_tensor_image(tensor: torch.Tensor, path: Path) -> None:
    """Save a 1×C×H×W (or C×H×W) tensor in [-1, 1] as an 8-bit image, atomically."""
    from cyclegan.fileio import atomic_write
    from cyclegan.report import tensor_to_image

    image = tensor_to_image(tensor[0] if tensor.dim() == 4 else tensor)
    atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def folder_images(folder: Path, limit: int | None, max_bad_fraction: float = 0.1) -> list[Path]:
    paths, _ = list_images(folder)
    good = scan_images(paths, max_bad_fraction)
    return good[:limit] if limit is not None else good


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
) -> Iterator[Translation]:
    """Yield real / fake (/ reconstructed) for each image in ``paths``.

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
            yield Translation(stem, images)

    waiting: dict[tuple[int, ...], list[tuple[str, torch.Tensor]]] = {}
    for path in paths:
        real = image_tensor(path, channels, data)
        group = waiting.setdefault(tuple(real.shape), [])
        group.append((path.stem, real))
        if len(group) == batch_size:
            yield from run(waiting.pop(tuple(real.shape)))
    for group in waiting.values():
        yield from run(group)


__all__ = [
    "LoadedGenerators",
    "ModelConfig",
    "Translation",
    "folder_images",
    "image_tensor",
    "unit_image_tensor",
    "load_generators",
    "save_tensor_image",
    "translate_folder",
]
