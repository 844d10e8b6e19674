"""Screenshots of the training page, the results page and the web page (`cyclegan serve`) for the docs.

    python scripts/screenshots.py --demo ./demo --out docs/assets      # or: make screenshots

reads a ``cyclegan demo --out`` folder (its run's ``web/index.html``, its results page, and the run
itself for the web page, which is started on a free loopback port, given one test image to translate
and stopped) and writes ``training_page.png``, ``results_page.png`` and ``web_page.png``. The browser
is the system's headless Chromium driven by Playwright, as the browser tests launch it: Playwright's
own browsers are never downloaded, and the pages make no request outside the machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image

CHROMIUM = os.environ.get("CYCLEGAN_CHROMIUM", "/usr/bin/chromium")
# Headless without a GPU or a sandbox (containers run as root, where the sandbox cannot start), and no
# background requests: a screenshot must not depend on the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1200, "height": 820}


def demo_run(demo: Path) -> tuple[Path, Path]:
    """(the demo's run folder, its results folder)."""
    runs = sorted(p.parent.parent for p in demo.glob("checkpoints/*/web/index.html"))
    results = sorted(p.parent for p in demo.glob("results/*/test_latest/index.html"))
    if not runs or not results:
        raise SystemExit(f"no run or results in {demo}: run `cyclegan demo --out {demo}` first")
    return runs[0], results[0]


def shrink(path: Path) -> None:
    """Re-save as an optimised 256-colour PNG: the pages are flat colours and text, and the docs light."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, format="PNG", optimize=True)


def enlarged(image: Path, scale: int) -> Path:
    """A copy of ``image`` ``scale`` times larger (nearest neighbour: no pixel invented), in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="cyclegan-screenshots-")) / image.name
    with Image.open(image) as picture:
        picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST).save(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def static_page(browser, html: Path, out: Path) -> None:
    """The top of a page of ours, opened from disk."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(html.resolve().as_uri(), wait_until="load")
    page.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
    page.screenshot(path=str(out))
    page.close()


def web_page(browser, run: Path, image: Path, out: Path) -> None:
    """`cyclegan serve` of the run, after translating ``image``."""
    from cyclegan.inference.serve import build_app, launch
    from cyclegan.inference.translator import Translator

    app = build_app(lambda direction: Translator.from_run(run, direction=direction),
                    work_dir=tempfile.mkdtemp(prefix="cyclegan-screenshots-"))
    port = free_port()
    launch(app, port=port, block=False)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        page.locator("#image-in input[type=file]").set_input_files(str(image))
        page.locator("#image-in img").first.wait_for()
        page.locator("#translate-image").click()
        output = page.locator("#image-out img").first
        output.wait_for()
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=output.element_handle())
        # The whole page, run description included: clicking scrolled it down to the output.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out), full_page=True)
        page.close()
    finally:
        app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo"), help="a `cyclegan demo --out` folder")
    parser.add_argument("--out", type=Path, default=Path("docs/assets"), help="folder for the PNGs")
    parser.add_argument("--upload_scale", type=int, default=4,
                        help="the web page translates a test image enlarged this many times (nearest neighbour): "
                             "the demo's 64 px images are too small to see on the page")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CYCLEGAN_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    run, results = demo_run(args.demo)
    sample = enlarged(sorted((results / "images").glob("*_real_A.png"))[0], args.upload_scale)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            static_page(browser, run / "web" / "index.html", args.out / "training_page.png")
            static_page(browser, results / "index.html", args.out / "results_page.png")
            web_page(browser, run, sample, args.out / "web_page.png")
        finally:
            browser.close()
    for name in ("training_page.png", "results_page.png", "web_page.png"):
        path = args.out / name
        shrink(path)
        print(f"{path}: {path.stat().st_size / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
