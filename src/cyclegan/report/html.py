"""HTML pages: the training page (``<run_dir>/web/index.html``) and the test results page.

Like the reference's ``util/html.py`` + ``visualizer.py`` but rendered from Jinja2 templates with
autoescaping on, so file names and titles containing ``<``, ``&`` or quotes cannot inject markup.
Image ``src`` values are relative, percent-encoded paths (a ``#`` or ``?`` in a file name would
otherwise be read as a fragment or query), so the pages open straight from disk without a server and
load nothing from the network.

The training page keeps no state that is not on disk: it is rebuilt from the PNGs in
``web/images`` (plus ``web/state.json`` for the iteration numbers and column order, when present),
so a resumed run keeps the epochs of the earlier run on the page.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import torch

from cyclegan.core.fileio import atomic_write
from cyclegan.data.images import is_image_file
from cyclegan.metrics.evaluate import split_label
from cyclegan.report.plots import History, plot_losses, plot_scores
from cyclegan.report.visuals import save_visuals

__all__ = ["VISUAL_ORDER", "ResultsPage", "TrainingPage", "collect_result_rows", "write_results_page"]

# The order of files whose recipe is not known (a results folder of the reference's): its CycleGAN's
# visual_names. A run's own pages pass its recipe's order; names not listed go after, alphabetically.
VISUAL_ORDER = ("real_A", "fake_B", "true_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A", "real", "fake")

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_EPOCH_FILE_RE = re.compile(r"^epoch(?P<epoch>\d+)_(?P<name>.+)\.png$")


def _render(template: str, **context: Any) -> str:
    # autoescape=True rather than select_autoescape(): the templates end in .j2, which extension-based
    # selection would not escape. StrictUndefined turns template typos into errors, not blank output.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(template).render(**context)


def _src(rel_path: str | Path) -> str:
    """Relative URL for a path relative to the page: POSIX separators, percent-encoded."""
    return quote(Path(rel_path).as_posix(), safe="/")


def _now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def visual_order_key(name: str, order: Sequence[str] = VISUAL_ORDER) -> tuple[int, str]:
    """Sort key: ``order`` (a recipe's visual names; default the reference's), then other names
    alphabetically."""
    return (order.index(name), "") if name in order else (len(order), name)


def epoch_images(img_dir: Path) -> dict[int, dict[str, str]]:
    """The training page's ``epoch{NNN}_{name}.png`` files in ``img_dir``: {epoch: {name: file name}}."""
    found: dict[int, dict[str, str]] = {}
    if img_dir.is_dir():
        for p in img_dir.iterdir():
            m = _EPOCH_FILE_RE.match(p.name)
            if m and p.is_file():
                found.setdefault(int(m.group("epoch")), {})[m.group("name")] = p.name
    return found


def _fmt_number(value: Any) -> str:
    if not isinstance(value, float):  # ints, bools, text as they are
        return str(value)
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"  # inf, -inf, nan print as such


def _score_items(scores: Mapping[str, Any] | None, skip: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Numeric entries of a scores dict as (label, formatted) pairs, for the templates."""
    if not scores:
        return []
    items = []
    for k, v in scores.items():
        if k in skip or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        label = k.upper() if k in ("psnr", "ssim") else k
        unit = " dB" if k == "psnr" else ""
        # SSIM lives in [-1, 1]: four decimals always, so 1.0 reads "1.0000" like its neighbours.
        text = f"{v:.4f}" if k == "ssim" and math.isfinite(v) else _fmt_number(v)
        items.append((label, text + unit))
    return items


# --------------------------------------------------------------------------------------- training


@dataclass
class _Epoch:
    epoch: int
    iteration: int | None = None
    # (visual name, file name inside web/images), in display order
    images: list[tuple[str, str]] = field(default_factory=list)


class TrainingPage:
    """The training page ``<run_dir>/web/index.html``: the loss plot, then one row of visuals per epoch.

    Images are saved as ``web/images/epoch{epoch:03d}_{name}.png`` and the loss plot as
    ``web/loss.png``. Creating a page for an existing run directory reloads the epochs already on
    disk, so resuming keeps them. Adding an epoch that is already on the page replaces it.
    """

    STATE_FILE = "state.json"

    def __init__(
        self, run_dir: str | Path, title: str = "CycleGAN training", image_size: int = 256, refresh_s: int = 0,
        visual_names: Sequence[str] = VISUAL_ORDER,
    ) -> None:
        """``image_size`` is the display height in pixels; ``refresh_s > 0`` adds a meta refresh;
        ``visual_names``: the recipe's column order, for images found on disk without their state."""
        self.run_dir = Path(run_dir)
        self.visual_names = tuple(visual_names)
        self.web_dir = self.run_dir / "web"
        self._latest_scores: dict[str, Any] | None = None  # the newest validation record, shown in a table
        self.img_dir = self.web_dir / "images"
        self.page_path = self.web_dir / "index.html"
        self.loss_png = self.web_dir / "loss.png"
        self.title = title
        self.image_size = int(image_size)
        self.refresh_s = int(refresh_s)
        self._epochs: dict[int, _Epoch] = self._load()

    # -- state ------------------------------------------------------------------------------

    def _load(self) -> dict[int, _Epoch]:
        """Rebuild the epochs from ``web/images``; ``state.json`` only adds iteration and column order."""
        on_disk = epoch_images(self.img_dir)
        state: dict[str, Any] = {}
        state_path = self.web_dir / self.STATE_FILE
        try:
            state = json.loads(state_path.read_text(encoding="utf-8")).get("epochs", {})
        except (OSError, ValueError, AttributeError):
            state = {}  # missing or damaged: the images alone are enough
        epochs: dict[int, _Epoch] = {}
        for ep, files in on_disk.items():
            entry = _Epoch(ep)
            saved = state.get(str(ep)) if isinstance(state, dict) else None
            remaining = dict(files)
            if isinstance(saved, dict):
                it = saved.get("iteration")
                entry.iteration = it if isinstance(it, int) else None
                for name, fname in saved.get("images", []):
                    key = _EPOCH_FILE_RE.match(fname)
                    if key and remaining.pop(key.group("name"), None) is not None:
                        entry.images.append((name, fname))
            # Images on disk without state (state.json lost, or older files): canonical order.
            for name in sorted(remaining, key=lambda name: visual_order_key(name, self.visual_names)):
                entry.images.append((name, remaining[name]))
            epochs[ep] = entry
        return epochs

    def _save_state(self) -> None:
        data = {
            "epochs": {
                str(e.epoch): {"iteration": e.iteration, "images": [list(x) for x in e.images]}
                for e in self._epochs.values()
            }
        }
        # Not fsynced, as the page: _load rebuilds the epochs from the images when this file is lost.
        atomic_write(self.web_dir / self.STATE_FILE, json.dumps(data, indent=1), durable=False)

    @property
    def epochs(self) -> list[int]:
        """Epochs on the page, newest first."""
        return sorted(self._epochs, reverse=True)

    # -- updates ----------------------------------------------------------------------------

    def add_epoch(self, epoch: int, iteration: int | None, visuals: Mapping[str, torch.Tensor]) -> Path:
        """Save ``visuals`` (tensors in [-1, 1]) for ``epoch`` and rewrite the page; returns its path."""
        epoch = int(epoch)
        prefix = f"epoch{epoch:03d}"
        # Drop this epoch's old images first so a re-added epoch with fewer visuals shows no stale ones.
        old = self._epochs.get(epoch)
        saved = save_visuals(visuals, self.img_dir, prefix=prefix)
        if old is not None:
            keep = set(saved.values())
            for _, fname in old.images:
                if fname not in keep:
                    (self.img_dir / fname).unlink(missing_ok=True)
        self._epochs[epoch] = _Epoch(
            epoch, None if iteration is None else int(iteration), list(saved.items())
        )
        self._save_state()
        return self.write()

    def update_validation(self, records: Sequence[Mapping[str, Any]]) -> Path:
        """Redraw ``web/validation.png`` (one panel per score, against the epoch) and rewrite the page."""
        if records:
            plot_scores(records, self.web_dir / "validation.png", title=f"{self.title}: validation")
            self._latest_scores = dict(records[-1])
        return self.write()

    def update_loss_plot(self, history: History) -> Path:
        """Redraw ``web/loss.png`` from ``history`` (see :func:`plot_losses`) and rewrite the page."""
        plot_losses(history, self.loss_png, title=f"{self.title}: losses")
        return self.write()

    def write(self) -> Path:
        """Render ``web/index.html`` atomically from the current state."""
        epochs = [
            {
                "epoch": e.epoch,
                "iteration": e.iteration,
                "images": [{"name": name, "src": _src(Path("images") / fname)} for name, fname in e.images],
            }
            for e in (self._epochs[k] for k in self.epochs)
        ]
        html = _render(
            "training.html.j2",
            title=self.title,
            epochs=epochs,
            loss_src=_src("loss.png") if self.loss_png.is_file() else None,
            validation_src=_src("validation.png") if (self.web_dir / "validation.png").is_file() else None,
            latest_scores=_score_items(self._latest_scores),
            updated=_now(),
            image_size=self.image_size,
            refresh_s=self.refresh_s,
        )
        return atomic_write(self.page_path, html, durable=False)  # rendered again at each update


# ---------------------------------------------------------------------------------------- results


class ResultsPage:
    """The page written after ``cyclegan test``: one row per input image, its visuals side by side.

    Rows hold paths relative to ``results_dir`` (e.g. ``images/horse1_fake_B.png``); columns are the
    union of the rows' keys in first-seen order. Optional mean scores go at the top, per-image scores
    at the end of each row.
    """

    def __init__(
        self,
        results_dir: str | Path,
        title: str = "Test results",
        image_size: int = 256,
        page_name: str = "index.html",
    ) -> None:
        self.results_dir = Path(results_dir)
        self.page_path = self.results_dir / page_name
        self.title = title
        self.image_size = int(image_size)
        self.rows: list[tuple[str, dict[str, str], Mapping[str, Any] | None]] = []
        self.scores: Mapping[str, Any] | None = None

    def add_row(
        self, images: Mapping[str, str], name: str | None = None, scores: Mapping[str, Any] | None = None
    ) -> None:
        """Add one input's visuals ``{column: relative path}``; ``name`` defaults to the first file's stem
        without its visual suffix (``images/horse1_fake_B.png`` -> ``horse1``)."""
        images = {str(k): str(v) for k, v in images.items() if k != "name"}
        if name is None:
            first = next(iter(images.values()), "")
            name = split_label(Path(first).stem)[0] if first else f"row {len(self.rows) + 1}"
        self.rows.append((str(name), images, scores))

    def set_scores(self, scores: Mapping[str, Any] | None) -> None:
        """Mean scores shown at the top (numeric entries only, e.g. an :func:`evaluate_folders` result)."""
        self.scores = scores

    def write(self) -> Path:
        """Render the page atomically and return its path."""
        columns, rows = result_table([{"name": name, **images} for name, images, _ in self.rows], _src)
        for row, (_, _, scores) in zip(rows, self.rows, strict=True):
            row["scores"] = _score_items(scores, skip=("resized",))
        html = _render(
            "results.html.j2",
            title=self.title,
            rows=rows,
            columns=columns,
            scores=_score_items(self.scores, skip=("psnr_cap_db",)),
            has_row_scores=any(r["scores"] for r in rows),
            updated=_now(),
            image_size=self.image_size,
            refresh_s=0,
        )
        return atomic_write(self.page_path, html, durable=False)  # rendered again at each update


def write_results_page(
    results_dir: str | Path,
    rows: Sequence[Mapping[str, str]],
    title: str = "Test results",
    scores: Mapping[str, Any] | None = None,
    per_image_scores: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]] | None = None,
    image_size: int = 256,
) -> Path:
    """Write ``<results_dir>/index.html`` and return its path.

    Args:
        rows: one dict per input image, ``{column: path relative to results_dir}``, e.g.
            ``{"real_A": "images/h1_real_A.png", "fake_B": "images/h1_fake_B.png"}``; an optional
            ``"name"`` key sets the row label (default: the first file's stem without its suffix).
        scores: mean scores for the top of the page (e.g. the result of ``evaluate_folders``).
        per_image_scores: ``{name: {"psnr": .., "ssim": ..}}`` or ``evaluate_folders(...)["per_image"]``
            (records with a ``"name"``), shown next to the row of the same name.
    """
    if per_image_scores is not None and not isinstance(per_image_scores, Mapping):
        per_image_scores = {str(r["name"]): r for r in per_image_scores}
    page = ResultsPage(results_dir, title=title, image_size=image_size)
    page.set_scores(scores)
    for row in rows:
        name = row.get("name")
        page.add_row(row, name=name)
        if per_image_scores:
            label = page.rows[-1][0]
            s = per_image_scores.get(label) or per_image_scores.get(split_label(label)[0])
            if s is not None:
                page.rows[-1] = (label, page.rows[-1][1], {k: v for k, v in s.items() if k != "name"})
    return page.write()


def result_table(rows: Sequence[Mapping[str, str]], src: Callable[[str], str]) -> tuple[list[str], list[dict]]:
    """The columns (union of the rows' image keys, first-seen order) and the template's rows:
    ``{"name", "cells": [{"col", "src"} or None per column]}``; ``src`` maps a row's path to a URL."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k != "name" and k not in columns]
    return columns, [
        {"name": row["name"], "cells": [{"col": c, "src": src(row[c])} if c in row else None for c in columns]}
        for row in rows
    ]


def collect_result_rows(results_dir: str | Path, images_subdir: str = "images",
                        order: Sequence[str] = VISUAL_ORDER) -> list[dict[str, str]]:
    """Group ``<results_dir>/<images_subdir>/<stem>_<label>.png`` files into rows for the results page.

    Returns ``[{"name": stem, "real_A": "images/stem_real_A.png", "fake_B": ...}, ...]`` sorted by
    stem, columns in ``order`` (default the reference's visual order); files without a label go in an
    ``"image"`` column.
    """
    folder = Path(results_dir) / images_subdir
    if not folder.is_dir():
        raise FileNotFoundError(f"no {images_subdir}/ folder in {results_dir}")
    groups: dict[str, dict[str, str]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or not is_image_file(p):
            continue
        base, label = split_label(p.stem)
        groups.setdefault(base, {})[label or "image"] = (Path(images_subdir) / p.name).as_posix()
    rows = []
    for base in sorted(groups):
        cols = groups[base]
        row = {"name": base}
        row.update({k: cols[k] for k in sorted(cols, key=lambda name: visual_order_key(name, order))})
        rows.append(row)
    return rows
