"""``cyclegan serve``: a web page to try a model, as a Gradio app (the field's convention for demos).

Upload an image (or a short video), choose the direction, see the input and its translation side by
side and download the result. The page shows the run's name, architecture and last validation
scores. Gradio is an optional dependency (``pip install 'cyclegan[web]'``), imported only here;
the app makes no request outside the machine (system fonts, analytics off).
"""

from __future__ import annotations

import functools
import html
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cyclegan.data.images import BadImageError
from cyclegan.inference.translator import DIRECTIONS, TranslateError, Translator
from cyclegan.inference.video import translate_video

log = logging.getLogger(__name__)

MAX_VIDEO_FRAMES = 300  # a demo page, not a render farm: longer videos belong to `cyclegan translate`


def _import_gradio():
    try:
        import gradio
    except ImportError:
        raise ImportError("cyclegan serve needs Gradio: pip install 'cyclegan[web]' (or gradio)") from None
    return gradio


def describe(info: dict[str, Any]) -> str:
    """The run's description as Markdown, every value HTML-escaped (a run name may hold anything)."""
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return html.escape(text).replace("|", "&#124;")

    lines = [f"### {cell(info.get('name', 'model'))}", "", "| | |", "| --- | --- |"]
    for key in ("model", "netG", "ngf", "norm", "generator", "weights"):
        if key in info:
            lines.append(f"| {key} | {cell(info[key])} |")
    scores = {key: value for key, value in info.items() if key.startswith("val_")}
    for key, value in scores.items():
        lines.append(f"| {cell(key)} (last validation) | {cell(value)} |")
    if not scores:
        lines.append("| validation | no val_scores.json in the run |")
    return "\n".join(lines)


def translate_upload(translator: Translator, source: Path, out_root: Path) -> Path:
    """What the page's Translate button does: the uploaded image's translation, as a PNG named after
    the upload in a fresh folder under ``out_root`` (PNG whatever came in, so nothing is lost again)."""
    target = Path(tempfile.mkdtemp(dir=out_root)) / f"{source.stem}_{translator.fake_label}.png"
    translator(source).save(target, format="PNG")
    return target


def translate_upload_video(translator: Translator, source: Path, out_root: Path) -> Path:
    """What the page's Translate video button does: the first :data:`MAX_VIDEO_FRAMES` frames."""
    target = Path(tempfile.mkdtemp(dir=out_root)) / f"{source.stem}_{translator.fake_label}.mp4"
    translate_video(translator, source, target, max_frames=MAX_VIDEO_FRAMES)
    return target


def build_app(load: Callable[[str], Translator], work_dir: str | Path | None = None):
    """The Gradio ``Blocks`` app; ``load(direction)`` returns the :class:`Translator` for a direction."""
    gr = _import_gradio()
    translators = functools.cache(load)  # one per direction, on first use (a reference run may have one)
    first = translators("AtoB")
    out_root = Path(work_dir or tempfile.mkdtemp(prefix="cyclegan-serve-"))
    out_root.mkdir(parents=True, exist_ok=True)

    def translate_image(path: str | None, direction: str):
        if not path:
            raise gr.Error("upload an image first")
        try:
            target = translate_upload(translators(direction), Path(path), out_root)
        except (BadImageError, TranslateError, ValueError) as error:
            raise gr.Error(html.escape(str(error))) from None
        return str(target), str(target)

    def translate_clip(path: str | None, direction: str):
        if not path:
            raise gr.Error("upload a video first")
        try:
            target = translate_upload_video(translators(direction), Path(path), out_root)
        except (TranslateError, ValueError) as error:
            raise gr.Error(html.escape(str(error))) from None
        return str(target)

    title = f"cyclegan: {first.info.get('name', 'model')}"
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(describe(first.info), elem_id="run-info")
        # Only the directions the model has: a pix2pix, CUT or colorization run translates A→B alone.
        directions = list(first.info.get("directions", DIRECTIONS))
        direction = gr.Radio(directions, value=directions[0], label="direction", elem_id="direction")
        with gr.Tab("image"):
            with gr.Row():
                image_in = gr.Image(type="filepath", image_mode=None, label="input", elem_id="image-in")
                image_out = gr.Image(type="filepath", format="png", label="translation", elem_id="image-out",
                                     interactive=False)
            image_file = gr.File(label="download", elem_id="image-file", interactive=False)
            gr.Button("Translate", variant="primary", elem_id="translate-image").click(
                translate_image, [image_in, direction], [image_out, image_file])
        with gr.Tab("video"):
            with gr.Row():
                video_in = gr.Video(label=f"input (first {MAX_VIDEO_FRAMES} frames)", elem_id="video-in")
                video_out = gr.Video(label="translation", elem_id="video-out", interactive=False)
            gr.Button("Translate video", elem_id="translate-video").click(
                translate_clip, [video_in, direction], [video_out])
    return app


def theme():
    """Gradio's default look with system fonts: no request to Google Fonts from an offline machine."""
    gr = _import_gradio()
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def launch(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the server; ``block=False`` returns at once (tests), with the app running in a thread."""
    return app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
                      inbrowser=False, quiet=not block, theme=theme(), footer_links=[], ssr_mode=False,
                      pwa=False, mcp_server=False)


def serve(load: Callable[[str], Translator], host: str = "127.0.0.1", port: int = 7860) -> None:
    """Build the app and serve it until interrupted."""
    app = build_app(load)
    log.info("serving on http://%s:%d", host, port)
    launch(app, host, port, block=True)


__all__ = ["build_app", "describe", "launch", "serve", "translate_upload", "translate_upload_video"]
