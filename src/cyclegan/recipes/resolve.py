"""How a run's config is made, in one place for the command line and the Python API alike.

The order (the reference's, plus presets): the reference's defaults (the dataclasses), a preset's
shared values, the flags given; then, for a new run, the recipe's own defaults (its
``modify_commandline_options``) for every option neither the flags nor the preset set, and what the
preset sets for that recipe (``preset_defaults``) unless a flag says otherwise. A saved run's config
replaces the first two steps (``base``): nothing is defaulted again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cyclegan.config import TrainConfig, preset_config, preset_keys
from cyclegan.recipes.base import MODELS


def resolve_config(flags: Mapping[str, Any] | None = None, preset: str | None = None,
                   base: TrainConfig | None = None) -> TrainConfig:
    """The run's config from ``flags`` ("section.field" → value, e.g. ``{"model.model": "cut",
    "data.dataroot": "d"}``), a preset's name and, to change a saved run, its config ``base``."""
    flags = dict(flags or {})
    config = _apply_settings(base or preset_config(preset), flags, set())
    if flags.get("optim.n_epochs") is not None or flags.get("optim.n_epochs_decay") is not None:
        # Epochs given: they are the schedule, not the preset's fit to max_iters.
        config.optim = dataclasses.replace(config.optim, schedule_over_max_iters=False)
    if base is not None:
        return config
    return recipe_preset(recipe_defaults(config, set(flags) | preset_keys(preset)), preset, set(flags))


def section_flags(**sections: Any) -> dict[str, Any]:
    """Whole sections (``data=DataConfig(...)``) as the flags that differ from the defaults."""
    pristine = TrainConfig()
    return {f"{name}.{f.name}": getattr(section, f.name) for name, section in sections.items()
            for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(getattr(pristine, name), f.name)}


def default_config(model: str = "cycle_gan", **sections) -> TrainConfig:
    """A TrainConfig for ``model`` with that recipe's defaults (``--model pix2pix`` alone on the CLI).

    ``sections``: ``data=DataConfig(...)`` ... replace whole sections first; the recipe's defaults then
    apply only to fields those sections leave at the dataclass default.
    """
    config = TrainConfig(**sections)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, model=model))
    return recipe_defaults(config, set(section_flags(**sections)))


def default_config_at_sizes(model: str, sized: TrainConfig, **sections) -> TrainConfig:
    """``model``'s own defaults with ``sized``'s data section, generator and G / D widths (a recipe run
    at a preset's size, e.g. CUT at ``--preset quick``'s); ``sections`` replace further sections."""
    config = default_config(model, data=sized.data, **sections)
    config.model.netG, config.model.ngf, config.model.ndf = sized.model.netG, sized.model.ngf, sized.model.ndf
    return config


def preset_config_for(preset: str, model: str = "cycle_gan", **sections) -> TrainConfig:
    """``--preset <preset> --model <model>`` with no other flag: the preset's shared settings, then the
    recipe's defaults and what the preset sets for that recipe (``preset_defaults``). ``sections``
    replace sections first, as flags would (``cut=CUTOptions(CUT_mode="FastCUT")``)."""
    config = dataclasses.replace(preset_config(preset), **sections)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, model=model))
    return recipe_preset(recipe_defaults(config, preset_keys(preset)), preset)


def recipe_defaults(config: TrainConfig, given: set[str] = frozenset()) -> TrainConfig:  # type: ignore[assignment]
    """``config`` with its recipe's ``defaults`` applied, except to the "section.field" keys in ``given``.

    The reference's ``modify_commandline_options``: ``--model pix2pix`` means batch norm, a U-Net,
    aligned data ... unless the command line says otherwise.
    """
    return _apply_settings(config, MODELS.get(config.model.model).defaults_for(config), given)


def recipe_preset(config: TrainConfig, preset: str | None, flags: set[str] = frozenset()) -> TrainConfig:  # type: ignore[assignment]
    """``config`` with what ``preset`` sets for its recipe (``preset_defaults``), except to the keys in
    ``flags`` (the options given explicitly); these override the preset's shared settings."""
    values = MODELS.get(config.model.model).preset_defaults_for(config, preset) if preset else {}
    return _apply_settings(config, values, flags)


def _apply_settings(config: TrainConfig, values: Mapping[str, Any], skip: set[str]) -> TrainConfig:
    updates: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key not in skip:
            section, name = key.split(".")
            updates.setdefault(section, {})[name] = value
    return dataclasses.replace(
        config, **{section: dataclasses.replace(getattr(config, section), **values) for section, values in updates.items()}
    )
