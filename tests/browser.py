"""Open our static pages in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Used by ``tests/test_browser.py``. Nothing is downloaded: Playwright's own browsers are never
installed (no ``playwright install``); the system Chromium is launched by path. Set
``CYCLEGAN_CHROMIUM`` to use another binary and ``CYCLEGAN_ARTEFACTS`` to keep the screenshots.

What a check asserts about a page (:func:`check_page`):

* every ``<img>`` finished loading with ``naturalWidth > 0`` (a broken relative path shows up here);
* no console errors, no uncaught page errors, no failed requests;
* every request the page made was a ``file://`` URL (no network, no external resources);
* a full-page screenshot was written (to the test's ``tmp_path``, and copied to ``$CYCLEGAN_ARTEFACTS``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``$CYCLEGAN_CHROMIUM``, else /usr/bin/chromium, else ``chromium`` / ``chromium-browser`` on PATH."""
    env = os.environ.get("CYCLEGAN_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no `playwright install` needed)"
    if chromium_path() is None:
        return "no Chromium at /usr/bin/chromium (apt-get install -y chromium) or $CYCLEGAN_CHROMIUM"
    return None


requires_browser = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@dataclass
class PageCheck:
    url: str
    screenshot: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    title: str = ""

    @property
    def broken_images(self) -> list[str]:
        return [im["src"] for im in self.images if not im["ok"]]

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file://", "data:"))]

    def assert_ok(self, min_images: int = 1) -> None:
        problems = []
        if len(self.images) < min_images:
            problems.append(f"expected at least {min_images} <img>, found {len(self.images)}")
        if self.broken_images:
            problems.append(f"images that did not load: {self.broken_images}")
        if self.console_errors:
            problems.append(f"console errors: {self.console_errors}")
        if self.page_errors:
            problems.append(f"page errors: {self.page_errors}")
        if self.failed_requests:
            problems.append(f"failed requests: {self.failed_requests}")
        if self.external_requests:
            problems.append(f"requests outside file://: {self.external_requests}")
        if not self.screenshot.is_file() or self.screenshot.stat().st_size == 0:
            problems.append(f"no screenshot at {self.screenshot}")
        assert not problems, f"{self.url}:\n  " + "\n  ".join(problems)


@contextmanager
def chromium(tmp_dir: Path) -> Iterator[Any]:
    """A launched headless Chromium (Playwright ``Browser``) with a fresh profile under ``tmp_dir``."""
    from playwright.sync_api import sync_playwright

    profile = tmp_dir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # A persistent context gives an explicit, throw-away user-data-dir (nothing from ~/.config).
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            timeout=60_000,
        )
        try:
            yield context
        finally:
            context.close()


def check_page(context: Any, html: Path, screenshot: Path, timeout_ms: int = 30_000) -> PageCheck:
    """Load ``html`` from disk in ``context`` and return what happened (see :meth:`PageCheck.assert_ok`)."""
    url = html.resolve().as_uri()
    result = PageCheck(url=url, screenshot=screenshot)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.page_errors.append(str(e)))
    page.on("request", lambda r: result.requests.append(r.url))
    page.on("requestfailed", lambda r: result.failed_requests.append(f"{r.url} ({r.failure})"))
    try:
        page.goto(url, wait_until="load")
        # "load" waits for the images already; decode() also settles lazily decoded ones.
        result.images = page.evaluate(
            """async () => {
                const out = [];
                for (const img of Array.from(document.images)) {
                    try { await img.decode(); } catch (e) {}
                    out.push({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0,
                              width: img.naturalWidth});
                }
                return out;
            }"""
        )
        result.title = page.title()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    artefacts = os.environ.get("CYCLEGAN_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, Path(artefacts) / screenshot.name)
    return result
