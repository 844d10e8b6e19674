"""The run report (``write_run_report``), and every page we write opened in a real headless Chromium.

The first tests check the report's parsing and HTML without a browser (fast). The ``slow`` ones open
the training page, the test results page and the run report from ``file://`` URLs and assert that every
image loads, the console stays clean, nothing outside ``file://`` is requested, and a screenshot is
written (kept in ``$CYCLEGAN_ARTEFACTS`` when set). They skip, saying why, without Playwright or
Chromium; CI installs both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.report import (
    TrainingPage,
    collect_result_rows,
    parse_loss_log,
    write_results_page,
    write_run_report,
)

from .browser import check_page, chromium, requires_browser

LOSS_LOG = """================ Training Loss (Mon Jan  1 00:00:00 2024) ================
(epoch: 1, iters: 2, time: 0.120, data: 0.010) D_A: 0.500 G_A: 0.900 cycle_A: 2.000 D_B: 0.400 G_B: 0.800 cycle_B: 1.900
(epoch: 1, iters: 4, time: 0.110, data: 0.000) D_A: 0.300 G_A: 0.700 cycle_A: 1.500 D_B: 0.350 G_B: 0.750 cycle_B: 1.400
garbage line that is not a loss record
(epoch: 2, iters: 2, time: 0.100, data: 0.000) D_A: 0.250 G_A: 0.650 cycle_A: nan D_B: 0.300 G_B: 0.700 cycle_B: 1.2e-1
"""


def _visuals(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
            for name in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")}


def _make_run(root: Path, name: str = "my <run> & co") -> Path:
    """A run folder as the trainer leaves it: web page with two epochs, loss log, val scores, config."""
    run = root / "checkpoints" / name
    page = TrainingPage(run, title=f"{name} training", image_size=64)
    page.add_epoch(1, 4, _visuals(1))
    page.add_epoch(2, 8, _visuals(2))
    (run / "loss_log.txt").write_text(LOSS_LOG)
    page.update_loss_plot(parse_loss_log(run / "loss_log.txt"))
    (run / "val_scores.json").write_text(json.dumps([
        {"epoch": 1, "iter": 4, "val_cycle_l1": 0.41, "psnr": 12.5},
        {"epoch": 2, "iter": 8, "val_cycle_l1": 0.33, "psnr": 14.25},
    ]))
    (run / "config.json").write_text(json.dumps({"model": {"netG": "resnet_6blocks", "ngf": 4},
                                                 "runtime": {"name": name}}))
    return run


def _parse(text: str, tmp_path: Path) -> list[dict[str, float]]:
    p = tmp_path / "loss_log.txt"
    p.write_text(text)
    return parse_loss_log(p)


def _make_results(root: Path, n: int = 3) -> Path:
    results = root / "results" / "my run" / "test_latest"
    images = results / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        for label in ("real_A", "fake_B", "rec_A"):
            arr = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(arr).save(images / f"img#{i}_{label}.png")  # '#' must be percent-encoded
    scores = {"psnr": 14.2, "ssim": 0.41, "count": n, "psnr_cap_db": 100.0, "fid": 81.5, "kid": 0.021,
              "kid_std": 0.004, "fid_samples": {"real": n, "fake": n}, "per_image": []}
    (results / "scores.json").write_text(json.dumps(scores))
    write_results_page(results, collect_result_rows(results), title="my run: test", scores=scores, image_size=64)
    return results


def _srcs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


# ------------------------------------------------------------------------------ without a browser


def test_parse_loss_log_reference_format(tmp_path: Path) -> None:
    records = _parse(LOSS_LOG, tmp_path)
    assert len(records) == 3  # header and garbage skipped
    assert records[0]["G_A"] == 0.9 and records[0]["time"] == 0.12 and records[0]["epoch"] == 1
    assert records[2]["cycle_B"] == pytest.approx(0.12) and np.isnan(records[2]["cycle_A"])
    # iters count within an epoch; epoch_frac makes them one increasing axis.
    assert [r["epoch_frac"] for r in records] == [0.5, 1.0, 1.5]


def test_parse_loss_log_matches_trainer_format(tmp_path: Path) -> None:
    from cyclegan.training.logs import format_loss_line

    line = format_loss_line(3, 40, 0.25, 0.01, {"D_A": 0.125, "G_A": 1.5, "idt_A": 0.0})
    (rec,) = _parse(line + "\n", tmp_path)
    assert rec == {"epoch": 3, "iters": 40, "time": 0.25, "data": 0.01, "D_A": 0.125, "G_A": 1.5, "idt_A": 0.0,
                   "epoch_frac": 3.0}


def test_run_report_contents(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    results = _make_results(tmp_path)
    out = write_run_report(run, results_dir=results)
    assert out == run / "report.html"
    html = out.read_text()
    # Autoescaped run name; no raw markup from it.
    assert "my &lt;run&gt; &amp; co" in html and "<run>" not in html
    for section in ('id="scores"', 'id="validation"', 'id="losses"', 'id="samples"', 'id="results"', 'id="settings"'):
        assert section in html
    assert "<th>FID</th><td>81.50</td>" in html and "<th>KID std</th>" in html  # from scores.json
    assert "14.25" in html  # a validation value
    assert "Training samples, epoch 2" in html
    # Every referenced file is relative, exists, and nothing points to the network.
    from urllib.parse import unquote

    refs = _srcs(html)
    assert refs and not [r for r in refs if re.match(r"^[a-z]+:", r) or r.startswith("/")]
    for ref in refs:
        assert (out.parent / unquote(ref)).is_file(), ref
    assert any("%23" in r for r in refs)  # '#' in a file name percent-encoded
    assert (run / "report_files" / "loss.png").is_file() and (run / "report_files" / "val_scores.png").is_file()


def test_run_report_missing_inputs_and_custom_out(tmp_path: Path) -> None:
    run = tmp_path / "empty_run"
    run.mkdir()
    out = write_run_report(run, results_dir=tmp_path / "nope", out=tmp_path / "site" / "r.html")
    html = out.read_text()
    assert "no loss_log.txt" in html and "no val_scores.json" in html and "results folder not found" in html
    assert "<img" not in html
    with pytest.raises(FileNotFoundError, match="run folder"):
        write_run_report(tmp_path / "missing")


# ----------------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    with chromium(tmp_path_factory.mktemp("browser")) as context:
        yield context


@pytest.mark.slow
@requires_browser
def test_pages_render_in_chromium(tmp_path: Path, browser) -> None:
    run = _make_run(tmp_path)
    results = _make_results(tmp_path)
    report = write_run_report(run, results_dir=results)
    shots = tmp_path / "screenshots"
    training = check_page(browser, run / "web" / "index.html", shots / "training_page.png")
    training.assert_ok(min_images=1 + 2 * 6)  # loss plot + two epochs of six visuals
    res = check_page(browser, results / "index.html", shots / "results_page.png")
    res.assert_ok(min_images=9)
    rep = check_page(browser, report, shots / "run_report.png")
    rep.assert_ok(min_images=2 + 6 + 9)  # two plots, newest epoch, three result rows
    assert "run report" in rep.title


@pytest.mark.slow
@requires_browser
def test_browser_check_catches_a_broken_page(tmp_path: Path, browser) -> None:
    # The check itself must fail on a missing image and a console error, or the tests above prove nothing.
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png"><script>console.error("x")</script></body></html>')
    result = check_page(browser, page, tmp_path / "broken.png")
    assert result.broken_images == ["missing.png"] and result.console_errors
    with pytest.raises(AssertionError, match="did not load"):
        result.assert_ok()


@pytest.mark.slow
@requires_browser
def test_pages_of_a_real_training_run_in_chromium(tmp_path: Path, browser, trained_run) -> None:
    """A tiny real run (trainer + translate + results page), then the run report, all in Chromium."""
    from cyclegan.inference.test_run import run_test

    summary = run_test(dataroot=trained_run.data, name="run", checkpoints_dir=trained_run.checkpoints,
                       results_dir=tmp_path / "results", device="cpu")
    report = write_run_report(trained_run.run_dir, results_dir=summary.page.parent, out=tmp_path / "report.html")
    shots = tmp_path / "screenshots"
    check_page(browser, trained_run.run_dir / "web" / "index.html", shots / "real_training_page.png").assert_ok(2)
    check_page(browser, summary.page, shots / "real_results_page.png").assert_ok(2)
    rep = check_page(browser, report, shots / "real_run_report.png")
    rep.assert_ok(3)
    assert 'id="losses"' in report.read_text()
