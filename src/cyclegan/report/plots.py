"""Loss curves as a PNG for the training page.

Uses matplotlib's object API with the Agg canvas created inside :func:`plot_losses`, so importing this
module never selects a backend or touches pyplot's global state (safe in headless training and in
processes that use another backend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cyclegan.core.fileio import atomic_write

__all__ = ["X_KEYS", "plot_losses"]

# Keys that can serve as the x coordinate of a record, in order of preference.
X_KEYS = ("x", "epoch_frac", "total_iters", "step", "iteration", "iters", "iter", "epoch")
# Record keys that are bookkeeping, not losses.
_META_KEYS = frozenset(X_KEYS) | {"time", "t_comp", "t_data", "data_time", "lr", "wall", "timestamp"}

History = Mapping[str, Sequence[tuple[float, float]]] | Sequence[Mapping[str, Any]]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _normalise(history: History) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """Return ``{loss name: [(x, value), ...]}`` and the x-axis label."""
    if isinstance(history, Mapping):
        return {str(k): [(float(x), float(v)) for x, v in pts] for k, pts in history.items()}, "iteration"
    series: dict[str, list[tuple[float, float]]] = {}
    x_label = "iteration"
    for i, rec in enumerate(history):
        x_key = next((k for k in X_KEYS if k in rec and _is_number(rec[k])), None)
        if x_key is None:
            x = float(i)  # records without a position: plot in order
        else:
            x = float(rec[x_key])
            x_label = "epoch" if x_key in ("epoch_frac", "epoch") else ("x" if x_key == "x" else "iteration")
        for k, v in rec.items():
            if k not in _META_KEYS and _is_number(v):
                series.setdefault(str(k), []).append((x, float(v)))
    return series, x_label


def plot_losses(
    history: History, out_png: str | Path, title: str = "Training losses", x_label: str | None = None
) -> Path:
    """Draw one line per loss and write ``out_png`` atomically.

    Args:
        history: either ``{loss name: [(x, value), ...]}`` (x = iteration or fractional epoch), or a
            list of records such as ``{"epoch_frac": 1.25, "G_A": 0.8, "D_A": 0.2, ...}``. For
            records the x value is the first present key of :data:`X_KEYS`; every other numeric key
            that is not bookkeeping (time, lr, ...) is a loss.
        out_png: destination PNG; its folder is created.
        title: plot title.
        x_label: axis label; inferred from the records' x key when not given.

    Returns the path written. An empty history still writes a (blank) plot so the page has an image.
    """
    # Imported here so that importing cyclegan.report does not import matplotlib (slow) or pick a backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series, inferred = _normalise(history)
    fig = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(fig)  # explicit Agg canvas: headless, independent of the pyplot backend
    ax = fig.add_subplot(1, 1, 1)
    plotted = 0
    for name, pts in series.items():
        pts = sorted((x, v) for x, v in pts if math.isfinite(x))
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, label=name, linewidth=1.0, marker="." if len(xs) < 30 else None)
        plotted += 1
    ax.set_title(title)
    ax.set_xlabel(x_label or inferred)
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if plotted:
        ax.legend(loc="upper right", fontsize="small", ncol=2 if plotted > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no losses recorded yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"), durable=False)  # redrawn anyway


_VAL_META = ("epoch", "iter", "iters", "total_iters", "time", "step")


def _baseline_of(name: str) -> str | None:
    """``val_baseline_psnr`` is drawn in the ``val_psnr`` panel, as a reference line."""
    prefix, _, metric = name.partition("baseline_")
    return f"{prefix}{metric}" if metric else None


def val_metrics(records: Sequence[Mapping[str, Any]], with_baselines: bool = True) -> list[str]:
    names: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in _VAL_META and _is_number(v) and k not in names:
                if with_baselines or _baseline_of(k) is None:
                    names.append(k)
    return names


def _points(records: Sequence[Mapping[str, Any]], name: str) -> list[tuple[float, float]]:
    pts = []
    for j, r in enumerate(records):
        x, v = r.get("epoch", r.get("iter", j)), r.get(name)
        if _is_number(x) and _is_number(v) and math.isfinite(v):
            pts.append((float(x), float(v)))
    return sorted(pts)


def plot_scores(records: Sequence[Mapping[str, Any]], out_png: str | Path, title: str = "Validation scores") -> Path:
    """One small panel per metric (scores have unrelated scales: dB, [0, 1], FID ...) against the epoch.

    ``plot_losses`` is not reused because it draws every series on one axis labelled "loss".
    A ``*_baseline_<metric>`` series (the best trivial baseline) is drawn dashed in the ``*_<metric>``
    panel, and a ``*_margin_*`` panel gets a zero line: above it the model beats every baseline.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = val_metrics(records, with_baselines=False)
    baselines = {_baseline_of(k): k for k in val_metrics(records) if _baseline_of(k) is not None}
    n = max(len(metrics), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = _points(records, name)
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, linewidth=1.0, label="model")
        if name in baselines and (reference := _points(records, baselines[name])):
            xs, ys = zip(*reference, strict=True)
            ax.plot(xs, ys, linestyle="--", color="grey", linewidth=1.0, label="best trivial baseline")
            ax.legend(fontsize="x-small")
        if "margin_" in name:
            ax.axhline(0.0, color="grey", linestyle="--", linewidth=1.0)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("epoch" if any("epoch" in r for r in records) else "iteration")
        ax.grid(True, alpha=0.3)
    if not metrics:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no scores recorded", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"), durable=False)  # redrawn anyway
