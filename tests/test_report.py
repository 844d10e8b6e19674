"""Tests for cyclegan.report: visuals PNGs, the training page, the results page, loss plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.report import (
    TrainingPage,
    collect_result_rows,
    plot_losses,
    save_visuals,
    tensor_to_image,
    write_results_page,
)

EVIL = "a<script>alert(1)</script>\"q'"


class _Srcs(HTMLParser):
    """Collect img src attributes (already HTML-unescaped by the parser) and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.srcs.extend(v for k, v in attrs if k == "src" and v is not None)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: Path) -> _Srcs:
    p = _Srcs()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _assert_srcs_exist(page: Path) -> list[str]:
    parsed = _parse(page)
    assert parsed.srcs
    for src in parsed.srcs:
        assert not src.startswith(("/", "http:", "https:", "file:")), src  # relative, no network
        assert (page.parent / unquote(src)).is_file(), src
    return parsed.srcs


def _visuals(n: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    names = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
    return {k: torch.rand(n, 3, h, w, generator=g) * 2 - 1 for k in names}


# ----------------------------------------------------------------------------------- visuals


def test_save_visuals_grid_sizes_and_values(tmp_path: Path) -> None:
    vis = {
        "real_A": torch.full((3, 3, 16, 20), -1.0),  # batch of 3 -> one row grid
        "fake_B": torch.ones(1, 3, 16, 20),  # single image -> saved unpadded
        "mask": torch.zeros(10, 1, 8, 8),  # 10 > nrow=8 -> two rows, grey expanded to RGB
    }
    out = save_visuals(vis, tmp_path / "imgs", prefix="epoch001")
    assert out == {
        "real_A": "epoch001_real_A.png",
        "fake_B": "epoch001_fake_B.png",
        "mask": "epoch001_mask.png",
    }
    with Image.open(tmp_path / "imgs" / out["real_A"]) as im:
        assert im.size == (3 * (20 + 2) + 2, 16 + 4)
        assert im.getpixel((5, 5)) == (0, 0, 0)  # -1 maps to 0
    with Image.open(tmp_path / "imgs" / out["fake_B"]) as im:
        assert im.size == (20, 16) and im.getpixel((0, 0)) == (255, 255, 255)  # +1 maps to 255
    with Image.open(tmp_path / "imgs" / out["mask"]) as im:
        assert im.size == (8 * 10 + 2, 2 * 10 + 2)
        assert im.getpixel((3, 3)) == (128, 128, 128)  # 0 maps to mid grey
    assert not [p for p in (tmp_path / "imgs").iterdir() if p.name.endswith(".tmp")]
    assert save_visuals({"x": torch.zeros(3, 8, 8)}, tmp_path) == {"x": "x.png"}


def test_tensor_to_image() -> None:
    im = tensor_to_image(torch.ones(2, 3, 4, 5))
    assert im.mode == "RGB" and im.size == (5, 4) and im.getpixel((0, 0)) == (255, 255, 255)
    grey = tensor_to_image(torch.full((1, 4, 5), -1.0))
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 0


# ------------------------------------------------------------------------------------ training


def test_training_page_two_epochs_newest_first(tmp_path: Path) -> None:
    page = TrainingPage(tmp_path / "run", title="horse2zebra")
    page.add_epoch(1, 100, _visuals())
    path = page.add_epoch(2, 200, _visuals(seed=1))
    assert path == tmp_path / "run" / "web" / "index.html"
    html = path.read_text(encoding="utf-8")
    assert html.index("epoch 2") < html.index("epoch 1")
    assert "iteration 200" in html and "iteration 100" in html
    srcs = _assert_srcs_exist(path)
    # Given order within an epoch, and the file naming scheme.
    assert srcs[:8] == [f"images/epoch002_{k}.png" for k in _visuals()]
    assert (tmp_path / "run" / "web" / "images" / "epoch001_idt_A.png").is_file()
    assert page.epochs == [2, 1]
    assert "http" not in html.replace("http-equiv", "")  # no external resources


def test_training_page_reconstructs_from_disk(tmp_path: Path) -> None:
    run = tmp_path / "run"
    page = TrainingPage(run)
    page.add_epoch(1, 10, {"fake_B": torch.zeros(1, 3, 8, 8), "real_A": torch.zeros(1, 3, 8, 8)})
    page.add_epoch(2, 20, {"fake_B": torch.zeros(1, 3, 8, 8), "real_A": torch.zeros(1, 3, 8, 8)})

    # "Resume": a new page object sees the earlier epochs, order and iterations included.
    resumed = TrainingPage(run)
    assert resumed.epochs == [2, 1]
    html = resumed.add_epoch(3, 30, {"fake_B": torch.zeros(1, 3, 8, 8)}).read_text(encoding="utf-8")
    assert html.index("epoch 3") < html.index("epoch 2") < html.index("epoch 1")
    assert "iteration 20" in html
    srcs = _assert_srcs_exist(run / "web" / "index.html")
    assert srcs == [
        "images/epoch003_fake_B.png",
        "images/epoch002_fake_B.png",
        "images/epoch002_real_A.png",
        "images/epoch001_fake_B.png",
        "images/epoch001_real_A.png",
    ]

    # Without state.json the images alone rebuild the page (canonical order: real_A before fake_B).
    (run / "web" / "state.json").unlink()
    bare = TrainingPage(run)
    assert bare.epochs == [3, 2, 1]
    bare.write()
    srcs = _assert_srcs_exist(run / "web" / "index.html")
    assert srcs[1:3] == ["images/epoch002_real_A.png", "images/epoch002_fake_B.png"]

    # A damaged state file is ignored too.
    (run / "web" / "state.json").write_text("{not json", encoding="utf-8")
    assert TrainingPage(run).epochs == [3, 2, 1]


def test_training_page_readd_epoch_drops_stale_images(tmp_path: Path) -> None:
    page = TrainingPage(tmp_path)
    page.add_epoch(4, 1, {"real_A": torch.zeros(3, 8, 8), "idt_A": torch.zeros(3, 8, 8)})
    page.add_epoch(4, 2, {"real_A": torch.zeros(3, 8, 8)})
    assert not (tmp_path / "web" / "images" / "epoch004_idt_A.png").exists()
    assert _assert_srcs_exist(page.page_path) == ["images/epoch004_real_A.png"]


def test_training_page_loss_plot_and_escaped_title(tmp_path: Path) -> None:
    page = TrainingPage(tmp_path, title=EVIL)
    page.add_epoch(1, 5, {"real_A": torch.zeros(1, 3, 8, 8)})
    html = page.update_loss_plot({"G_A": [(0, 1.0), (1, 0.8)], "D_A": [(0, 0.5), (1, 0.4)]}).read_text(
        encoding="utf-8"
    )
    assert EVIL not in html and "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    srcs = _assert_srcs_exist(page.page_path)
    assert srcs[0] == "loss.png"
    with Image.open(tmp_path / "web" / "loss.png") as im:
        im.verify()


# ------------------------------------------------------------------------------------- results


def _results_dir(tmp_path: Path, stems: list[str]) -> Path:
    d = tmp_path / "results"
    for s in stems:
        for label in ("real_A", "fake_B", "rec_A"):
            f = d / "images" / f"{s}_{label}.png"
            # A '/' inside the stem (as in "</script>") makes a sub-folder; the relative path still holds it.
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(f)
    return d


def test_results_page_escapes_file_names(tmp_path: Path) -> None:
    d = _results_dir(tmp_path, [EVIL, "plain #1"])
    rows = [
        {"name": s, **{k: f"images/{s}_{k}.png" for k in ("real_A", "fake_B", "rec_A")}}
        for s in (EVIL, "plain #1")
    ]
    page = write_results_page(
        d,
        rows,
        title=f"test {EVIL}",
        scores={"psnr": 21.5, "ssim": 0.75, "count": 2, "psnr_cap_db": 100.0},
        per_image_scores={EVIL: {"psnr": float("inf"), "ssim": 1.0}},
    )
    html = page.read_text(encoding="utf-8")
    assert EVIL not in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parsed = _parse(page)
    assert "script" not in parsed.tags
    assert EVIL in "".join(parsed.text)  # shown to the reader, as text
    srcs = _assert_srcs_exist(page)  # percent-encoded src still points at the real file
    assert len(srcs) == 6 and "%23" in srcs[-1]  # '#' would otherwise start a fragment
    text = " ".join(" ".join(parsed.text).split())
    assert "PSNR 21.50 dB" in text and "SSIM 0.7500" in text and "PSNR inf dB SSIM 1.0000" in text
    assert "psnr_cap_db" not in html


def test_collect_result_rows_with_odd_names(tmp_path: Path) -> None:
    odd = "b<img src=x onerror=alert(1)>\"q'&"
    d = _results_dir(tmp_path, [odd, "h1"])
    Image.new("RGB", (8, 8)).save(d / "images" / "loose.png")
    rows = collect_result_rows(d)
    assert [r["name"] for r in rows] == [odd, "h1", "loose"]
    assert list(rows[0])[1:] == ["real_A", "fake_B", "rec_A"]
    assert rows[2] == {"name": "loose", "image": "images/loose.png"}
    page = write_results_page(d, rows)
    html = page.read_text(encoding="utf-8")
    assert odd not in html and "<img src=x" not in html
    _assert_srcs_exist(page)
    with pytest.raises(FileNotFoundError):
        collect_result_rows(tmp_path / "nothing")


def test_results_page_rows_without_name_and_per_image_records(tmp_path: Path) -> None:
    d = _results_dir(tmp_path, ["h1", "h2"])
    rows = [
        {"real_A": "images/h1_real_A.png", "fake_B": "images/h1_fake_B.png"},
        {"real_A": "images/h2_real_A.png", "rec_A": "images/h2_rec_A.png"},
    ]
    per_image = [{"name": "h2", "psnr": 30.0, "ssim": 0.9, "resized": False}]
    html = write_results_page(d, rows, per_image_scores=per_image).read_text(encoding="utf-8")
    parsed = _parse(d / "index.html")
    assert len(parsed.srcs) == 4
    assert "<th>rec_A</th>" in html and "h1" in html and "SSIM 0.9000" in html
    assert "resized" not in "".join(parsed.text)


# --------------------------------------------------------------------------------------- plots


def test_plot_losses_dict_and_records(tmp_path: Path) -> None:
    out = plot_losses(
        {"G_A": [(0.0, 2.0), (0.5, 1.5), (1.0, 1.2)], "cycle_A": [(0.0, 3.0)]}, tmp_path / "a.png"
    )
    with Image.open(out) as im:
        im.verify()
    records = [
        {"epoch_frac": 1.0 + i / 10, "total_iters": i * 10, "G_A": 1.0 / (i + 1), "D_B": 0.3, "lr": 2e-4}
        for i in range(40)
    ]
    out2 = plot_losses(records, tmp_path / "sub" / "b.png")
    with Image.open(out2) as im:
        assert im.format == "PNG" and im.size[0] > 100
    empty = plot_losses([], tmp_path / "c.png")
    with Image.open(empty) as im:
        im.verify()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "c.png", "sub"]  # no temp files left


@pytest.mark.slow
def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, cyclegan.report, cyclegan.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_state_file_is_json(tmp_path: Path) -> None:
    page = TrainingPage(tmp_path)
    page.add_epoch(7, 70, {"real_A": torch.zeros(1, 3, 8, 8)})
    state = json.loads((tmp_path / "web" / "state.json").read_text(encoding="utf-8"))
    assert state["epochs"]["7"]["iteration"] == 70


@pytest.mark.parametrize("bad", [torch.zeros(8, 8), np.zeros((3, 8, 8))])
def test_save_visuals_rejects_bad_input(tmp_path: Path, bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        save_visuals({"x": bad}, tmp_path)  # type: ignore[dict-item]


def test_run_logger_keeps_plots_within_their_share_of_the_time_and_draws_at_the_end(tmp_path, monkeypatch):
    """Short epochs must not pay a matplotlib redraw each: a plot is redrawn only while the time spent
    drawing it stays within its share of the run (PLOT_SHARE, split between the plots); the newest
    records wait, and the run's last update draws them."""
    from cyclegan.config import TrainConfig
    from cyclegan.training import logs

    drawn: list[int] = []
    clock = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    logger = logs.RunLogger(tmp_path, TrainConfig(), total_epochs=3, resumed=False)

    def draw(records):  # each drawing takes 1 s of the fake clock
        clock[0] += 1.0
        drawn.append(len(records))

    monkeypatch.setattr(logger.page, "update_validation", draw)
    records = [{"epoch": 1, "iter": 10, "val_psnr": 10.0}]
    clock[0] += 10
    logger.validation(records, 10)
    assert drawn == [1]  # the first drawing is always due
    records = records + [{"epoch": 2, "iter": 20, "val_psnr": 11.0}]
    clock[0] += 10
    logger.validation(records, 20)
    assert drawn == [1]  # another 1 s drawing would exceed the share of 21 s: the second epoch's plot waits
    logger.update_plot([], force=True)  # the end of the run
    assert drawn == [1, 2]
    share = logs.PLOT_SHARE / len(logs.PLOTS)
    clock[0] = 1000.0 + 3.0 / share - 1.0  # 2 s spent: a third drawing fits from 3 s / share on
    records = records + [{"epoch": 3, "iter": 30, "val_psnr": 12.0}]
    logger.validation(records, 30)
    assert drawn == [1, 2]
    clock[0] += 1.0
    logger.validation(records + [{"epoch": 4, "iter": 40, "val_psnr": 13.0}], 40)
    assert drawn == [1, 2, 4]
    logger.close()
