"""Score a folder of generated images against a folder of ground truth (``cyclegan eval``).

Pairs are matched by file stem after removing the reference's visual-name suffixes
(``_fake_B``, ``_real_A``, ``_rec_A``, ``_idt_B``, ``_fake``, ...): ``horse1_fake_B.png`` matches
``horse1.png``. When the fake folder is a results ``images/`` folder that also holds ``real_A``,
``rec_A`` ... only the ``fake*`` files are scored. When the real folder is such a folder too (pix2pix
results hold ``real_B`` next to ``fake_B``), the ``real`` file of the same domain is used.

Images are compared at the ground truth's size: a fake of another size is resized with antialiased
bicubic interpolation first (and flagged ``"resized": true`` in its per-image record).

``"lpips"`` (see :mod:`cyclegan.metrics.lpips`) is paired like psnr/ssim but needs its weights on
disk (torchvision's AlexNet file, passed as ``lpips_weights`` or found in the cache); lower is closer.

``"fid"`` and ``"kid"`` (see :mod:`cyclegan.metrics.fid`) need no pairing: they compare all the
selected fake images with all the selected real ones, and need the Inception weights on disk.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cyclegan.data.images import IMG_EXTENSIONS, is_image_file, load_image
from cyclegan.metrics.fid import fid_kid_folders  # torch-fidelity is imported only when FID / KID run
from cyclegan.metrics.lpips import LPIPS  # the lpips package is imported only when LPIPS runs
from cyclegan.metrics.paired import PSNR_CAP_DB, psnr, ssim

__all__ = [
    "DEFAULT_METRICS",
    "DISTRIBUTION_METRICS",
    "PAIRED_METRICS",
    "PSNR_CAP_DB",
    "SUPPORTED_METRICS",
    "evaluate_folders",
    "format_table",
    "split_label",
    "to_json",
]

PAIRED_METRICS = ("psnr", "ssim", "lpips")
# What evaluate_folders scores when not told: the paired metrics that need no weights file.
DEFAULT_METRICS = ("psnr", "ssim")
# Set-to-set metrics: all fakes against all reals, no pairing (cyclegan.metrics.fid).
DISTRIBUTION_METRICS = ("fid", "kid")
SUPPORTED_METRICS = PAIRED_METRICS + DISTRIBUTION_METRICS

# Visual names the reference (and our models) append to result images: <stem>_<label>.png; ``true_B``
# is the ground truth that ``cyclegan test`` puts beside ``fake_B`` when the data set has it.
# The base is greedy so only the last suffix is taken ("a_real_fake_B" -> "a_real", "fake_B").
_LABEL_RE = re.compile(r"^(?P<base>.+)_(?P<label>(?:real|fake|rec|idt|true)(?:_[AB])?)$")


def split_label(stem: str) -> tuple[str, str | None]:
    """Split ``"horse1_fake_B"`` into ``("horse1", "fake_B")``; unlabelled stems give ``(stem, None)``."""
    m = _LABEL_RE.match(stem)
    if m is None:
        return stem, None
    return m.group("base"), m.group("label")


def _folder_images(folder: str | Path, side: str) -> tuple[Path, list[Path]]:
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"{side} folder does not exist: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"{side} path is not a folder: {path}")
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) in {side} folder {path}")
    return path, files


def _index(files: Iterable[Path], side: str) -> dict[str, Path]:
    """Map base stem -> file; two files with one base stem make pairing ambiguous, so refuse."""
    out: dict[str, Path] = {}
    for f in files:
        base, _ = split_label(f.stem)
        if base in out:
            raise ValueError(
                f"{side} folder has more than one image for stem {base!r}: {out[base].name} and {f.name}"
            )
        out[base] = f
    return out


def _select_fake(files: list[Path], fake_label: str | None) -> tuple[list[Path], str | None]:
    """Keep the generated images of a results folder; return them and the label used (None: all files)."""
    labels = {split_label(f.stem)[1] for f in files}
    fake_labels = sorted(lbl for lbl in labels if lbl is not None and lbl.startswith("fake"))
    if fake_label is not None:
        chosen = [f for f in files if split_label(f.stem)[1] == fake_label]
        if not chosen:
            raise ValueError(
                f"no '*_{fake_label}' images in the fake folder (labels found: {sorted(x for x in labels if x)})"
            )
        return chosen, fake_label
    if not fake_labels:
        # A plain folder of outputs (or one whose names just happen not to carry a label): use it all.
        return files, None
    # A cycle_gan results folder holds both fake_B (A->B) and fake_A (B->A) per stem. fake_B is the
    # reference's default (--direction AtoB) output compared with B ground truth; pass fake_label
    # to score the other direction.
    label = "fake_B" if "fake_B" in fake_labels else fake_labels[0]
    return [f for f in files if split_label(f.stem)[1] == label], label


def _select_real(files: list[Path], fake_label: str | None) -> list[Path]:
    """Use plain files, or the same-domain ``real*`` files when the real folder is a results folder."""
    unlabelled = [f for f in files if split_label(f.stem)[1] is None]
    labelled = [f for f in files if split_label(f.stem)[1] is not None]
    if not labelled:
        return files
    # fake_B is compared with real_B; a single-direction "fake" with "real".
    want = "real" + (fake_label[len("fake") :] if fake_label else "")
    same_domain = [f for f in labelled if split_label(f.stem)[1] == want]
    if same_domain:
        return same_domain
    return unlabelled if unlabelled else [f for f in labelled if split_label(f.stem)[1].startswith("real")]


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4f}"


def evaluate_folders(
    fake_dir: str | Path,
    real_dir: str | Path,
    metrics: Sequence[str] = DEFAULT_METRICS,
    fake_label: str | None = None,
    inception_weights: str | Path | None = None,
    device: str = "cpu",
    lpips_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Score every generated image in ``fake_dir`` against its ground truth in ``real_dir``.

    Args:
        fake_dir: generated images; plain files or a results ``images/`` folder (``*_fake_B.png`` ...).
        real_dir: ground-truth images, matched by stem after removing visual-name suffixes.
        metrics: any of ``"psnr"``, ``"ssim"``, ``"lpips"`` (paired), ``"fid"``, ``"kid"`` (all fakes vs
            all reals).
        fake_label: which generated images to score in a results folder (``"fake_B"``, ``"fake_A"``,
            ``"fake"``); by default ``fake_B`` when present, else the only ``fake*`` label, else all files.
        inception_weights: for fid/kid, the Inception-v3 weights file (default: the cache filled by
            ``cyclegan download inception``; see :func:`cyclegan.metrics.fid.resolve_inception_weights`).
        device: where the Inception network runs for fid/kid, and the LPIPS network for lpips.
        lpips_weights: for lpips, torchvision's AlexNet weights file ``alexnet-owt-7be5be79.pth`` (or a
            folder holding it); default: ``$CYCLEGAN_CACHE/lpips/`` or torch.hub's cache. The linear
            layers come from the ``lpips`` package (see :class:`cyclegan.metrics.lpips.LPIPS`).

    Returns:
        ``{"psnr": mean, "ssim": mean, "count": n, "per_image": [{"name": stem, "psnr": ..,
        "ssim": .., "resized": bool}, ...], "unmatched": [{"name": file name, "side": "fake"|"real"}],
        "fake_label": label or None, "psnr_cap_db": 100.0, "fake_dir": .., "real_dir": ..}``.
        Per-image PSNR of identical images is ``inf``; the mean uses ``min(psnr, PSNR_CAP_DB)``.
        Only the requested metric keys are present. Use :func:`to_json` to serialise it.
        With lpips: ``"lpips"`` (mean), a per-image ``"lpips"`` and ``"lpips_net": "alex"``.
        With fid/kid: ``"fid"``, ``"kid"``, ``"kid_std"``, ``"fid_samples": {"real": N, "fake": M}``,
        ``"kid_subset_size"``, ``"kid_subsets"``; with fid/kid only, no pairing is done and the
        pairing keys (count, per_image, unmatched, psnr_cap_db) are absent.

    Raises:
        FileNotFoundError / NotADirectoryError: a folder is missing; LPIPSWeightsMissing (a
            FileNotFoundError) when lpips is asked for and its weights are not on disk.
        ValueError: unknown metric, no images, ambiguous stems, or no pair matched (the message lists
            the stems found on each side).
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in SUPPORTED_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(SUPPORTED_METRICS)}")
    fake_path, fake_files_all = _folder_images(fake_dir, "fake")
    real_path, real_files_all = _folder_images(real_dir, "real")
    fake_files, label = _select_fake(fake_files_all, fake_label)
    real_files = _select_real(real_files_all, label)
    result: dict[str, Any] = {}
    if any(m in PAIRED_METRICS for m in metrics):
        result.update(_paired_scores(fake_files, real_files, metrics, lpips_weights, device, fake_path, real_path))
    # After the pairing checks, so a pairing error does not wait for the Inception network first.
    result.update(_distribution_scores(real_files, fake_files, metrics, inception_weights, device))
    result.update(fake_label=label, fake_dir=str(fake_path), real_dir=str(real_path))
    return result


def _paired_scores(fake_files: list[Path], real_files: list[Path], metrics: Sequence[str],
                   lpips_weights: str | Path | None, device: str, fake_path: Path, real_path: Path) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS of each fake against the real of the same stem, and their means."""
    result: dict[str, Any] = {}
    fakes = _index(fake_files, "fake")
    reals = _index(real_files, "real")

    matched = sorted(set(fakes) & set(reals))
    if not matched:

        def preview(stems: Iterable[str]) -> str:
            s = sorted(stems)
            return ", ".join(s[:10]) + (f", ... ({len(s)} in all)" if len(s) > 10 else "")

        raise ValueError(
            "no fake/real pairs matched by file stem (suffixes like _fake_B are ignored).\n"
            f"  fake stems ({fake_path}): {preview(fakes)}\n"
            f"  real stems ({real_path}): {preview(reals)}"
        )

    lpips_model = None
    if "lpips" in metrics:
        lpips_model = LPIPS(lpips_weights, net="alex", device=device)

    per_image: list[dict[str, Any]] = []
    for stem in matched:
        # The data loader's decoding (EXIF, 16-bit, palette ...): ground truth and input are the same pixels.
        real = TF.to_image(load_image(reals[stem], 3))
        fake = TF.to_image(load_image(fakes[stem], 3))
        resized = fake.shape[-2:] != real.shape[-2:]
        if resized:
            # Resize in uint8 so the result is rounded/clamped like any saved image would be.
            fake = TF.resize(
                fake, list(real.shape[-2:]), interpolation=InterpolationMode.BICUBIC, antialias=True
            )
        x, y = (TF.to_dtype(image, torch.float32, scale=True) for image in (fake, real))
        rec: dict[str, Any] = {"name": stem}
        if "psnr" in metrics:
            rec["psnr"] = float(psnr(x, y))
        if "ssim" in metrics:
            rec["ssim"] = float(ssim(x, y))
        if lpips_model is not None:
            with torch.no_grad():
                rec["lpips"] = float(lpips_model(x, y))
        rec["resized"] = bool(resized)
        per_image.append(rec)

    if "psnr" in metrics:
        result["psnr"] = sum(min(r["psnr"], PSNR_CAP_DB) for r in per_image) / len(per_image)
        result["psnr_cap_db"] = PSNR_CAP_DB
    if "ssim" in metrics:
        result["ssim"] = sum(r["ssim"] for r in per_image) / len(per_image)
    if lpips_model is not None:
        result["lpips"] = sum(r["lpips"] for r in per_image) / len(per_image)
        result["lpips_net"] = lpips_model.net
    result["count"] = len(per_image)
    result["per_image"] = per_image
    result["unmatched"] = [
        {"name": fakes[s].name, "side": "fake"} for s in sorted(set(fakes) - set(reals))
    ] + [{"name": reals[s].name, "side": "real"} for s in sorted(set(reals) - set(fakes))]
    return result


def _distribution_scores(
    real_files: list[Path], fake_files: list[Path], metrics: Sequence[str],
    inception_weights: str | Path | None, device: str,
) -> dict[str, Any]:
    """FID / KID of all selected fakes against all selected reals (empty when neither is requested)."""
    if not any(m in DISTRIBUTION_METRICS for m in metrics):
        return {}
    dist = fid_kid_folders(real_files, fake_files, weights_path=inception_weights, device=device)
    out: dict[str, Any] = {}
    if "fid" in metrics:
        out["fid"] = dist["fid"]
    if "kid" in metrics:
        out.update(kid=dist["kid"], kid_std=dist["kid_std"], kid_subset_size=dist["kid_subset_size"],
                   kid_subsets=dist["kid_subsets"])
    out["fid_samples"] = dist["fid_samples"]
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def to_json(result: dict[str, Any], indent: int | None = 2) -> str:
    """Serialise an :func:`evaluate_folders` result as strict JSON (``inf`` PSNR becomes ``"inf"``).

    ``json.dumps`` would write ``Infinity``, which is not JSON and breaks ``jq`` and most parsers.
    """
    return json.dumps(_json_safe(result), indent=indent, allow_nan=False)


def format_table(result: dict[str, Any], max_rows: int | None = 50) -> str:
    """Plain-text table of an :func:`evaluate_folders` result for the console.

    Shows up to ``max_rows`` per-image rows (``None``: all), then the means and unmatched count.
    """
    cols = [m for m in PAIRED_METRICS if m in result]
    rows = result.get("per_image", [])
    if "per_image" not in result:
        return _format_distribution(result)
    shown = rows if max_rows is None else rows[:max_rows]
    name_w = max([len("name"), len("mean")] + [len(str(r["name"])) for r in shown])
    header = f"{'name':<{name_w}}  " + "  ".join(f"{c.upper():>10}" for c in cols)
    lines = [header, "-" * len(header)]
    for r in shown:
        mark = " (resized)" if r.get("resized") else ""
        lines.append(f"{str(r['name']):<{name_w}}  " + "  ".join(f"{_fmt(r[c]):>10}" for c in cols) + mark)
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more")
    lines.append("-" * len(header))
    lines.append(f"{'mean':<{name_w}}  " + "  ".join(f"{_fmt(result[c]):>10}" for c in cols))
    lines.append(f"pairs: {result.get('count', len(rows))}")
    if "psnr" in cols and any(math.isinf(r["psnr"]) for r in rows):
        lines.append(
            f"(identical pairs have PSNR inf; the mean counts them as {result.get('psnr_cap_db', PSNR_CAP_DB):g} dB)"
        )
    unmatched = result.get("unmatched", [])
    if unmatched:
        n_fake = sum(1 for u in unmatched if u["side"] == "fake")
        n_real = len(unmatched) - n_fake
        lines.append(f"unmatched: {n_fake} fake, {n_real} real")
    if result.get("fake_label"):
        lines.append(f"scored: *_{result['fake_label']} images")
    if any(k in result for k in DISTRIBUTION_METRICS):
        lines.append(_format_distribution(result))
    return "\n".join(lines)


def _format_distribution(result: dict[str, Any]) -> str:
    """The fid / kid lines of :func:`format_table`."""
    lines = []
    if "fid" in result:
        lines.append(f"FID  {result['fid']:.4f}")
    if "kid" in result:
        lines.append(f"KID  {result['kid']:.6f} ± {result['kid_std']:.6f}")
    samples = result.get("fid_samples")
    if samples:
        lines.append(f"images: {samples['fake']} fake, {samples['real']} real (all, unpaired)")
    if "per_image" not in result and result.get("fake_label"):
        lines.append(f"scored: *_{result['fake_label']} images")
    return "\n".join(lines)
