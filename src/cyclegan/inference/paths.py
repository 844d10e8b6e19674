"""``cyclegan translate`` over many inputs: files, folders (recursive) and globs of images and videos,
each written beside the others in one output folder; a bad file is reported and skipped."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cyclegan.data.images import IMG_EXTENSIONS, BadImageError
from cyclegan.inference.translator import TranslateError, Translator
from cyclegan.inference.video import VIDEO_EXTENSIONS, translate_video

log = logging.getLogger(__name__)


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Images and videos from files, folders (recursive) and globs, in order, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{item}: no such file, folder or glob match")
            found += [p for p in matches if p.is_file() and is_media(p)]
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) or videos ({', '.join(VIDEO_EXTENSIONS)}) "
                                f"in {', '.join(inputs)}")
    return unique


def is_media(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS + VIDEO_EXTENSIONS


@dataclass
class TranslateSummary:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def translate_paths(translator: Translator, inputs: Iterable[str], out_dir: str | os.PathLike[str],
                    show_progress: bool = True, **video_options: Any) -> TranslateSummary:
    """Translate every image and video of ``inputs`` into ``out_dir``; a bad file is reported and skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = TranslateSummary()
    paths = expand_inputs(inputs)
    bar = tqdm(paths, unit="file", disable=not show_progress or len(paths) < 2)
    for path in bar:
        bar.set_postfix_str(path.name[:40])
        try:
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                target = out_dir / f"{path.stem}_{translator.fake_label}{path.suffix}"
                translate_video(translator, path, target, show_progress=show_progress, **video_options)
            else:
                target = translator.translate_file(path, out_dir, show_progress=show_progress)
        except (BadImageError, TranslateError) as error:
            log.error("%s", error)
            summary.failed.append((path, str(error)))
            continue
        summary.written.append(target)
    return summary


__all__ = ["TranslateSummary", "expand_inputs", "is_media", "translate_paths"]
