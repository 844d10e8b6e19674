"""``cyclegan serve``: the Gradio app, driven in headless Chromium (Playwright + Debian's chromium).

Uploads an image (one whose name holds ``<script>``), clicks Translate, waits for the output image
and checks its size, that the run's name / architecture / validation scores are shown, and that no
console error appeared. Skips, saying why, without gradio, Playwright or Chromium.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cyclegan.inference.translator import Translator

from .browser import CHROMIUM_ARGS, chromium_path, requires_browser
from .test_translate import make_run, save_photo

gr = pytest.importorskip("gradio")


def test_description_escapes_the_run_name():
    from cyclegan.inference.serve import describe

    text = describe({"name": "<script>alert(1)</script>", "netG": "resnet_6blocks", "val_psnr": 13.456})
    assert "<script>" not in text and "&lt;script&gt;" in text and "13.46" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@requires_browser
def test_upload_translate_and_download_in_chromium(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    from cyclegan.inference.serve import build_app, launch

    run = make_run(tmp_path / "checkpoints", "my<b>run")
    app = build_app(lambda direction: Translator.from_run(run, direction=direction), work_dir=tmp_path / "work")
    port = free_port()
    launch(app, port=port, block=False)
    upload = save_photo(tmp_path / "up" / "<script>x.png", 40, 56)
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            info = page.locator("#run-info").inner_text()
            assert "my<b>run" in info and "resnet_6blocks" in info and "13.5" in info
            page.locator("#image-in input[type=file]").set_input_files(str(upload))
            page.locator("#image-in img").first.wait_for()
            page.locator("#translate-image").click()
            output = page.locator("#image-out img").first
            output.wait_for()
            page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=output.element_handle())
            size = output.evaluate("el => [el.naturalWidth, el.naturalHeight]")
            assert size == [56, 40]
            assert "_fake_B" in page.locator("#image-file").inner_text()  # the download, named after the upload
            page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    assert not errors, errors
