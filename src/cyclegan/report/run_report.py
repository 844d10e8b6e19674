"""One static page per run (``cyclegan report``): scores, loss curves, validation curves, sample images.

Everything the page shows is read from files a run and ``cyclegan test`` already write:

* ``<run_dir>/loss_log.txt``: the reference's loss-log lines
  ``(epoch: 1, iters: 100, time: 0.1, data: 0.0) G_A: 0.5 D_A: 0.2 ...`` (header lines and anything
  else that does not parse are skipped), plotted against the fractional epoch;
* ``<run_dir>/val_scores.json``: a list of ``{"epoch": .., "iter": .., "<metric>": value}`` records
  (the trainer's per-epoch validation), as a table and one small plot per metric;
* ``<run_dir>/config.json``: the run's settings, in a collapsed table;
* ``<run_dir>/web/images/epochNNN_<visual>.png``: the newest epoch's visuals;
* ``<results_dir>``: the test results page's first rows (``images/<stem>_<label>.png``) and, when
  present, its scores (``scores.json`` or ``eval.json``: an :func:`cyclegan.metrics.evaluate_folders`
  result, as ``cyclegan eval --format json`` prints it).

The page is Jinja2 with autoescaping, all ``src``/``href`` values are relative and percent-encoded,
plots are PNGs written next to the page, and nothing is loaded from the network: it opens from disk.
Missing inputs are left out of the page (and listed at its end), never an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cyclegan.core.fileio import atomic_write
from cyclegan.metrics.baselines import page_items
from cyclegan.report.html import (
    _fmt_number,
    _now,
    _render,
    _score_items,
    _src,
    collect_result_rows,
    epoch_images,
    result_table,
    visual_order_key,
)
from cyclegan.report.plots import _is_number, plot_losses, plot_scores, val_metrics

__all__ = ["parse_loss_log", "plot_scores", "read_val_scores", "write_run_report"]

# "(epoch: 1, iters: 100, time: 0.123, data: 0.004) G_A: 0.512 D_A: 0.250 ..." (reference format)
_LOSS_LINE_RE = re.compile(r"^\((?P<head>[^)]*)\)\s*(?P<tail>.*)$")
_PAIR_RE = re.compile(r"([A-Za-z_][\w.]*)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)")
SCORE_FILES = ("scores.json", "eval.json")
_SCORE_LABELS = {"fid": "FID", "kid": "KID", "kid_std": "KID std"}
# Loss-log fields that are bookkeeping, not losses (plot_losses already skips "time", not "data").
_LOG_META = ("epoch", "iters", "time", "data")


def parse_loss_log(path: str | Path) -> list[dict[str, float]]:
    """Parse a reference-format ``loss_log.txt`` into records ``{"epoch", "iters", "time", "data", <losses>}``.

    Each record also gets ``"epoch_frac"`` = ``epoch - 1 + iters / epoch_size``, where ``epoch_size``
    is the largest ``iters`` seen (``iters`` counts images within the epoch, so plotting against it
    would stack every epoch on top of the first). Lines that do not parse are ignored.
    """
    records: list[dict[str, float]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LOSS_LINE_RE.match(line.strip())
            if not m:
                continue
            head = {k: float(v) for k, v in _PAIR_RE.findall(m.group("head"))}
            if "epoch" not in head or "iters" not in head:
                continue
            rec = dict(head)
            rec.update({k: float(v) for k, v in _PAIR_RE.findall(m.group("tail"))})
            records.append(rec)
    epoch_size = max((r["iters"] for r in records), default=0.0)
    for r in records:
        r["epoch_frac"] = r["epoch"] - 1 + (r["iters"] / epoch_size if epoch_size > 0 else 0.0)
    return records


def read_val_scores(path: str | Path) -> list[dict[str, Any]]:
    """Read ``val_scores.json`` (a list of records, or ``{"records": [...]}``); bad entries are dropped."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, Mapping):
        data = data.get("records", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of score records")
    return [r for r in data if isinstance(r, Mapping)]


def _rel(target: Path, page_dir: Path) -> str:
    """Relative, percent-encoded URL from the page's folder to ``target``."""
    return _src(os.path.relpath(target.resolve(), page_dir.resolve()))


def _newest_epoch_images(run_dir: Path) -> tuple[int | None, list[tuple[str, Path]]]:
    folder = run_dir / "web" / "images"
    by_epoch = epoch_images(folder)
    if not by_epoch:
        return None, []
    epoch = max(by_epoch)
    files = by_epoch[epoch]
    return epoch, [(name, folder / files[name]) for name in sorted(files, key=visual_order_key)]


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, json.dumps(value) if not isinstance(value, str) else value))


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        notes.append(f"{path.name}: unreadable ({error})")
        return None


def _result_scores(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The score rows of a test results' ``scores.json`` / ``eval.json`` (an ``evaluate_folders`` result)."""
    # Upper-case labels for the distribution metrics, like PSNR / SSIM get.
    flat = {_SCORE_LABELS.get(k, k): v for k, v in data.items()}
    samples = flat.pop("fid_samples", None)
    result_scores = _score_items(
        flat, skip=("psnr_cap_db", "count", "kid_subsets", "kid_subset_size", "margin_psnr", "margin_ssim")
    )
    if isinstance(data.get("baselines"), Mapping) and "psnr" in data and "ssim" in data:
        # The model's scores beside the trivial baselines' and the margin over them.
        comparison = page_items(data, data["baselines"], model_label="fake_B")
        result_scores = [(k, _fmt_number(v)) for k, v in comparison.items()] + [
            item for item in result_scores if item[0] not in ("PSNR", "SSIM")]
    if "count" in flat:
        result_scores.append(("pairs scored", str(flat["count"])))
    if isinstance(samples, Mapping):
        result_scores.append(("FID/KID images", f"{samples.get('fake')} fake, {samples.get('real')} real"))
    return result_scores


def _results_section(results_dir: str | Path | None, page_dir: Path, max_result_rows: int,
                     notes: list[str]) -> dict[str, Any]:
    """The page's test results: their scores, a link to their page and its first rows."""
    section: dict[str, Any] = {"result_scores": [], "results_link": None, "result_columns": [], "result_rows": []}
    if results_dir is None:
        return section
    results_path = Path(results_dir)
    if not results_path.is_dir():
        notes.append(f"results folder not found: {results_path}")
        return section
    for name in SCORE_FILES:
        if (results_path / name).is_file():
            data = _read_json(results_path / name, notes)
            if isinstance(data, Mapping):
                section["result_scores"] = _result_scores(data)
            break
    if (results_path / "index.html").is_file():
        section["results_link"] = _rel(results_path / "index.html", page_dir)
    try:
        rows = collect_result_rows(results_path)
    except FileNotFoundError:
        rows = []
        notes.append(f"no images/ folder in {results_path}")
    section["result_columns"], section["result_rows"] = result_table(
        rows[:max_result_rows], lambda path: _rel(results_path / path, page_dir))
    if len(rows) > max_result_rows:
        notes.append(f"results: {max_result_rows} of {len(rows)} rows shown (all on the results page)")
    return section


def _loss_section(run_dir: Path, assets: Path, page_dir: Path, notes: list[str]) -> dict[str, Any]:
    """The loss curves (a plot written to ``assets``) and the last logged losses."""
    section: dict[str, Any] = {"loss_src": None, "last_losses": []}
    loss_log = run_dir / "loss_log.txt"
    if not loss_log.is_file():
        notes.append("no loss_log.txt")
        return section
    records = parse_loss_log(loss_log)
    if not records:
        notes.append("loss_log.txt holds no loss lines yet")
        return section
    history = [{k: v for k, v in r.items() if k not in _LOG_META} for r in records]
    plot_losses(history, assets / "loss.png", title="Training losses", x_label="epoch")
    section["loss_src"] = _rel(assets / "loss.png", page_dir)
    last = records[-1]
    section["last_losses"] = [(k, _fmt_number(v)) for k, v in last.items() if k not in (*_LOG_META, "epoch_frac")]
    return section


def _validation_section(run_dir: Path, assets: Path, page_dir: Path, notes: list[str]) -> dict[str, Any]:
    """The validation scores: one plot per metric (written to ``assets``) and a table of the newest records."""
    section: dict[str, Any] = {"val_src": None, "val_columns": [], "val_rows": []}
    val_file = run_dir / "val_scores.json"
    if not val_file.is_file():
        notes.append("no val_scores.json (validation runs when the data set has valA/ and valB/)")
        return section
    try:
        val_records = read_val_scores(val_file)
    except (OSError, ValueError) as error:
        val_records = []
        notes.append(f"val_scores.json: unreadable ({error})")
    if not val_records:
        return section
    val_columns = section["val_columns"] = val_metrics(val_records)
    plot_scores(val_records, assets / "val_scores.png")
    section["val_src"] = _rel(assets / "val_scores.png", page_dir)
    for r in val_records[-50:]:  # the newest 50: a long run would make the table the whole page
        section["val_rows"].append({
            "epoch": _fmt_number(r.get("epoch", "")),
            "iter": _fmt_number(r.get("iter", r.get("total_iters", ""))),
            "values": [_fmt_number(r[c]) if _is_number(r.get(c)) else "" for c in val_columns],
        })
    if len(val_records) > 50:
        notes.append(f"validation: newest 50 of {len(val_records)} records in the table (all in the plot)")
    return section


def _samples_section(run_dir: Path, page_dir: Path) -> dict[str, Any]:
    """The newest epoch's training visuals and a link to the training page."""
    sample_epoch, samples = _newest_epoch_images(run_dir)
    training_page = run_dir / "web" / "index.html"
    return {
        "sample_epoch": sample_epoch,
        "samples": [{"name": name, "src": _rel(path, page_dir)} for name, path in samples],
        "training_link": _rel(training_page, page_dir) if training_page.is_file() else None,
    }


def _settings(run_dir: Path, notes: list[str]) -> list[tuple[str, str]]:
    """The run's ``config.json``, flattened to (dotted key, value) rows."""
    settings: list[tuple[str, str]] = []
    if (run_dir / "config.json").is_file():
        cfg = _read_json(run_dir / "config.json", notes)
        if isinstance(cfg, Mapping):
            _flatten("", cfg, settings)
    return settings


def write_run_report(
    run_dir: str | Path,
    results_dir: str | Path | None = None,
    out: str | Path | None = None,
    max_result_rows: int = 8,
    image_size: int = 160,
    title: str | None = None,
) -> Path:
    """Write the run's report page and return its path.

    Args:
        run_dir: the run folder (``checkpoints/<name>``).
        results_dir: a ``cyclegan test`` output folder (``results/<name>/test_latest``), optional.
        out: the page to write; default ``<run_dir>/report.html``. Its plots go to
            ``<page stem>_files/`` beside it.
        max_result_rows: how many rows of the results page to show.
        image_size: display height of the sample images, in pixels.
        title: page title; default ``"<run name>: run report"``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder does not exist: {run_dir}")
    out = Path(out) if out is not None else run_dir / "report.html"
    page_dir = out.parent
    assets = page_dir / f"{out.stem}_files"
    notes: list[str] = []  # filled by the sections in page order
    sections = {
        **_results_section(results_dir, page_dir, max_result_rows, notes),
        **_loss_section(run_dir, assets, page_dir, notes),
        **_validation_section(run_dir, assets, page_dir, notes),
        **_samples_section(run_dir, page_dir),
        "settings": _settings(run_dir, notes),
    }
    html = _render(
        "report.html.j2",
        title=title or f"{run_dir.name}: run report",
        run_name=run_dir.name,
        updated=_now(),
        image_size=int(image_size),
        refresh_s=0,
        notes=notes,
        **sections,
    )
    return atomic_write(out, html)
