"""Published models by name: ``translate --pretrained horse2zebra`` without a run folder.

:func:`fetch_pretrained` finds a name in the catalogues that ``cyclegan download pretrained`` knows
(the reference's CycleGAN and pix2pix generators, CUT's), downloads it into the cache on first use
(checked to be a weights-only state dict; a file that is not is deleted) and says how to build the
network it holds. Later uses read the cached file and do not touch the network.

The published files are bare ``latest_net_G.pth`` state dicts with no config, so the architecture
comes from here: what each project trained them with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cyclegan.config import TrainConfig
from cyclegan.core.download import (
    PRETRAINED_DOWNLOADERS,
    PRETRAINED_NAMES,
    cache_dir,
    pretrained_direction,
    pretrained_source,
)
from cyclegan.recipes import default_config
from cyclegan.recipes.cut.config import CUTOptions

__all__ = ["PretrainedModel", "fetch_pretrained", "pretrained_names"]

# The --model each catalogue's generators load with: the reference tests its CycleGAN generators
# with --model test (one generator, no cycle); pix2pix's and CUT's with their own recipe.
_MODEL = {"cycle_gan": "test", "pix2pix": "pix2pix", "cut": "cut"}


@dataclass(frozen=True)
class PretrainedModel:
    """A published generator in the cache, and how to load it."""

    run_dir: Path  # the folder holding latest_net_G.pth (a run folder in the reference's layout)
    model: str  # the --model to load it with: test (CycleGAN's), pix2pix or cut
    flags: TrainConfig  # the architecture it was trained with (the file carries none)


def pretrained_names() -> tuple[str, ...]:
    """Every name :func:`fetch_pretrained` knows, each once: CycleGAN's, then pix2pix's, then CUT's."""
    return PRETRAINED_NAMES


def fetch_pretrained(
    name: str,
    cache: str | Path | None = None,
    base: str | None = None,
    progress: bool = True,
    paired: bool = False,
) -> PretrainedModel:
    """The published model ``name``, downloaded into ``cache`` on first use.

    Args:
        name: one of :func:`pretrained_names`; an unknown one raises :class:`ValueError` listing them.
        cache: default ``cyclegan.core.download.cache_dir() / "pretrained"``. Each catalogue has its
            own folder there (``cycle_gan/``, ``pix2pix/``, ``cut/``), since CycleGAN and pix2pix
            publish different generators under the same names (``sat2map`` ...).
        base: a mirror of the catalogue's site (default: its ``$CYCLEGAN_*_DOWNLOAD_BASE``, else the
            authors').
        progress: show a progress bar while downloading.
        paired: pix2pix's generator for a name both CycleGAN and pix2pix publish (``--paired``).

    Raises :class:`cyclegan.core.download.DownloadError` when the download fails or the file is not a
    weights-only state dict (it is then deleted, and the next call downloads it again).
    """
    source = pretrained_source(name, paired)
    root = (Path(cache).expanduser() if cache is not None else cache_dir() / "pretrained") / source
    weights = PRETRAINED_DOWNLOADERS[source](name, root, base=base, progress=progress)
    return PretrainedModel(weights.parent, _MODEL[source], _flags(name, source, weights.parent))


def _flags(name: str, source: str, run_dir: Path) -> TrainConfig:
    """The architecture ``source``'s ``name`` was trained with, as a run of ours would have saved it."""
    if source == "cut":
        # The name's suffix is the mode it was trained in (CUT's README tests each so).
        mode = "FastCUT" if name.endswith("_fastcut") else "CUT"
        flags = default_config("cut", cut=CUTOptions(CUT_mode=mode))
    elif source == "pix2pix":
        flags = default_config("pix2pix")  # unet_256, batch norm, dropout: what the reference trained
    else:
        # The reference's CycleGAN generators: resnet_9blocks, instance norm, no dropout, ngf 64.
        flags = default_config("cycle_gan")
        flags.model = dataclasses.replace(flags.model, netG="resnet_9blocks", ngf=64, norm="instance",
                                          no_dropout=True, residual_output=False)
    # Which half of its paired data set it reads, for `cyclegan test` on that set; a single image is
    # translated the same either way.
    flags.data = dataclasses.replace(flags.data, direction=pretrained_direction(name, source))
    flags.runtime = dataclasses.replace(flags.runtime, name=run_dir.name, checkpoints_dir=str(run_dir.parent))
    return flags
