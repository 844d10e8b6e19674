"""Videos through a generator with PyAV (whose wheels bundle FFmpeg): same container, frame count,
frame rate and size out; the audio stream copied packet for packet.

Codecs written: H.264 (``libx264``, MPEG-4 Part 2 when a build lacks it) in .mp4 / .mov / .mkv /
.m4v / .avi, VP9 in .webm, GIF in .gif; :func:`video_codec` says which. Frames are translated in
batches of ``batch_size``. The output goes to a temporary file beside the target and is renamed
over it only when complete, so a failure never leaves a partial video looking finished. A file
that cannot be opened or decoded raises :class:`cyclegan.inference.translator.TranslateError` naming it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cyclegan.inference.translator import TranslateError, Translator

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v")

# Preferred video codecs per container, first available wins.
CONTAINER_CODECS = {
    ".mp4": ("libx264", "mpeg4"), ".m4v": ("libx264", "mpeg4"), ".mov": ("libx264", "mpeg4"),
    ".mkv": ("libx264", "mpeg4"), ".avi": ("libx264", "mpeg4"), ".webm": ("libvpx-vp9", "libvpx"),
    ".gif": ("gif",),
}
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm",
           ".gif": "gif"}


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError("video needs PyAV: pip install 'cyclegan[video]' (or av)") from None
    return av


def video_codec(suffix: str) -> str:
    """The codec written for a container (by file suffix)."""
    av = _import_av()
    choices = CONTAINER_CODECS.get(suffix.lower())
    if choices is None:
        raise TranslateError(f"unsupported video container {suffix!r}; supported: {', '.join(CONTAINER_CODECS)}")
    for codec in choices:
        if codec in av.codecs_available:
            return codec
    raise TranslateError(f"this PyAV build has none of {', '.join(choices)} to write {suffix} files")


@dataclass
class VideoSummary:
    path: Path
    frames: int
    rate: Fraction
    width: int
    height: int
    codec: str
    audio_copied: bool


def _open(path: Path):
    av = _import_av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise TranslateError(f"cannot read video {path}: {error} (is it a complete, supported video file?)") from None
    if not container.streams.video:
        container.close()
        raise TranslateError(f"{path} holds no video stream")
    return container


def translate_video(translator: Translator, source: str | os.PathLike[str], target: str | os.PathLike[str],
                    batch_size: int = 4, max_frames: int | None = None, start: float = 0.0,
                    duration: float | None = None, show_progress: bool = False) -> VideoSummary:
    """Translate ``source`` into ``target`` (the same container type); see the module docstring.

    ``start`` / ``duration`` (seconds) and ``max_frames`` select part of the video; the audio of the
    same span is copied.
    """


    av = _import_av()
    source, target = Path(source), Path(target)
    suffix = target.suffix.lower()
    codec = video_codec(suffix)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    end = None if duration is None else start + duration
    container = _open(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        with container:
            in_video = container.streams.video[0]
            in_video.thread_type = "AUTO"
            rate = in_video.average_rate or in_video.guessed_rate or Fraction(25)
            width, height = in_video.codec_context.width, in_video.codec_context.height
            in_audio = container.streams.audio[0] if container.streams.audio and suffix != ".gif" else None
            total = in_video.frames or None
            with av.open(tmp_name, mode="w", format=FORMATS[suffix]) as output:
                out_video = output.add_stream(codec, rate=rate)
                out_video.width, out_video.height = width, height
                # 1 / numerator ticks, ``denominator`` per frame (30000/1001 fps: 1/30000 s, 1001 a frame);
                # GIF counts in centiseconds.
                out_video.time_base = Fraction(1, 100) if codec == "gif" else Fraction(1, Fraction(rate).numerator)
                out_video.pix_fmt = _pixel_format(codec, width, height)
                if codec == "libx264":
                    out_video.options = {"crf": "18", "preset": "medium"}
                out_audio = None
                if in_audio is not None:
                    try:
                        out_audio = output.add_stream_from_template(in_audio)
                    except (av.error.FFmpegError, ValueError) as error:
                        log.warning("%s: the audio (%s) cannot go in a %s file, dropped: %s", source,
                                    in_audio.codec_context.name, suffix, error)
                frames = _translate_frames(translator, container, in_video, output, out_video, rate, batch_size,
                                           max_frames, start, end, tqdm(total=max_frames or total, unit="frame",
                                                                         disable=not show_progress))
                if out_audio is not None:
                    _copy_audio(source, output, out_audio, start, end)
        if frames == 0:
            raise TranslateError(f"{source}: no frames decoded (in the span asked for: start {start}s, "
                                 f"duration {duration}s)")
        os.replace(tmp_name, target)
    except av.error.FFmpegError as error:
        raise TranslateError(f"cannot decode video {source}: {error} (the file may be truncated or damaged)") from None
    finally:
        Path(tmp_name).unlink(missing_ok=True)  # gone already when the video was complete
    return VideoSummary(target, frames, Fraction(rate), width, height, codec, out_audio is not None)


def _pixel_format(codec: str, width: int, height: int) -> str:
    if codec == "gif":
        return "rgb8"
    # 4:2:0 needs even sides; odd-sized videos keep full chroma instead of losing a pixel row.
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 or codec == "mpeg4" else "yuv444p"


def _translate_frames(translator, container, in_video, output, out_video, rate, batch_size, max_frames, start,
                      end, bar) -> int:
    av = _import_av()
    if start > 0:
        container.seek(int(start / in_video.time_base), stream=in_video, backward=True)
    written = 0
    batch: list[torch.Tensor] = []

    def flush() -> None:
        nonlocal written
        if not batch:
            return
        x = torch.stack(batch).float().div(127.5).sub(1)  # N×C×H×W in [-1, 1]
        y = translator.translate_tensor(x).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
        for image in y.permute(0, 2, 3, 1).numpy():  # N×H×W×C
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.time_base = out_video.time_base
            frame.pts = round(written / Fraction(rate) / out_video.time_base)
            for packet in out_video.encode(frame):
                output.mux(packet)
            written += 1
            bar.update(1)
        batch.clear()

    taken = 0
    for frame in container.decode(in_video):
        time = frame.time if frame.time is not None else 0.0
        if time < start - 1e-6:
            continue
        if end is not None and time >= end - 1e-6:
            break
        if max_frames is not None and taken >= max_frames:
            break
        array = frame.to_ndarray(format="rgb24" if translator.input_nc == 3 else "gray")
        tensor = torch.from_numpy(array)
        batch.append(tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor.unsqueeze(0))
        taken += 1
        if len(batch) == batch_size:
            flush()
    flush()
    for packet in out_video.encode():
        output.mux(packet)
    bar.close()
    return written


def _copy_audio(source: Path, output, out_audio, start: float, end: float | None) -> None:
    """Copy the audio packets of [start, end) unchanged (no re-encoding), from a second reader."""
    with _import_av().open(str(source)) as container:
        in_audio = container.streams.audio[0]
        first_pts = None
        for packet in container.demux(in_audio):
            if packet.dts is None or packet.pts is None:
                continue  # the demuxer's final flush packet
            time = float(packet.pts * in_audio.time_base)
            if time < start - 1e-6 or (end is not None and time >= end - 1e-6):
                continue
            if first_pts is None:
                first_pts = packet.pts
            packet.pts -= first_pts
            packet.dts -= first_pts
            packet.stream = out_audio
            output.mux(packet)


def probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Frame count (decoded), frame rate, size, duration and audio presence of a video."""
    container = _open(Path(path))
    with container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate
        return {"frames": frames, "rate": Fraction(rate) if rate else None, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "codec": stream.codec_context.name,
                "duration": frames / rate if rate else None, "audio": bool(container.streams.audio)}


__all__ = ["CONTAINER_CODECS", "VideoSummary", "probe", "translate_video", "video_codec"]
