"""Measure the goals of `cyclegan translate` (issue 14): seam-free tiles, bounded memory, video speed.

    python benchmarks/translate_tiled.py psnr  [--size 1400 --tile 256 --ngf 64]
    python benchmarks/translate_tiled.py memory [--sizes 1k,2k,4k,8k --max_windows N --stats exact|downscaled]
    python benchmarks/translate_tiled.py video [--frames 8]

psnr: a photo-like image, resnet_9blocks with random weights (seed 0), tiled output against the
whole-image output for each statistics mode and naive tiling (own statistics, no margin).
memory: each size in its own subprocess, whole vs tiled (exact statistics recomputed from the
image, ``cache_budget=0``: the flat-memory path), peak RSS (``VmHWM``) and seconds;
``--max_windows`` stops the tiled run after N network calls (that path's peak is reached by then)
and extrapolates the time, stated as such. The default path adds two kept activations of
``256 × pixels / 16 × 4`` bytes (ngf 64) later in the run: measure it whole, through the command. Whole-image runs whose estimated
need exceeds ``--whole_limit_gb`` are not started (they would push a shared machine into swap or
the OOM killer). video: a 640×360 clip through resnet_9blocks, frames/s and the clip's properties
before and after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere
from common import peak_rss_mib  # noqa: E402

SIZES = {"1k": (1280, 720), "2k": (2048, 1080), "4k": (3840, 2160), "8k": (7680, 4320)}


def photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    img = torch.stack([0.6 * xx + 0.2, 0.5 * yy + 0.3 * xx, 0.8 - 0.5 * yy])
    for _ in range(24):
        cy, cx, r = torch.rand(3, generator=g)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < (0.02 + 0.1 * r) ** 2).float()
        img = img * (1 - mask) + torch.rand(3, 1, 1, generator=g) * mask
    blotches = torch.nn.functional.interpolate(torch.rand(1, 3, max(1, height // 16), max(1, width // 16), generator=g),
                                               size=(height, width), mode="bilinear")[0]
    img = img * 0.85 + 0.15 * blotches + 0.03 * torch.randn(3, height, width, generator=g)
    return (img.clamp(0, 1) * 2 - 1).unsqueeze(0)


def generator(ngf: int):
    from cyclegan.networks import define_G

    torch.manual_seed(0)
    net = define_G(3, 3, ngf, "resnet_9blocks", norm="instance").eval()
    net.pad_to_multiple = True
    return net


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / (a - b).square().mean().clamp_min(1e-20)))


@torch.no_grad()
def run_psnr(args) -> dict:
    from cyclegan.inference.tiling import TiledGenerator

    net, x = generator(args.ngf), photo(args.size, args.size)
    start = time.perf_counter()
    whole = net(x)
    rows = [{"variant": "whole image", "seconds": round(time.perf_counter() - start, 1)}]
    variants = [("naive: own statistics, no margin", dict(margin=0, stats="own")),
                ("margin, own statistics", dict(stats="own")),
                ("margin, downscaled statistics (1024 px)", dict(stats="downscaled", stats_size=1024)),
                ("margin, downscaled statistics (512 px)", dict(stats="downscaled", stats_size=512)),
                ("margin, exact streamed statistics", dict(stats="exact")),
                ("margin, exact, recomputed from the image (no kept activations)", dict(stats="exact", cache_budget=0))]
    for label, options in variants:
        start = time.perf_counter()
        out = TiledGenerator(net, args.tile, **options)(x)
        rows.append({"variant": label, "psnr_db": round(psnr(out, whole), 2),
                     "max_abs": float((out - whole).abs().max()), "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return {"size": args.size, "tile": args.tile, "ngf": args.ngf, "rows": rows}


class _Enough(Exception):
    pass


@torch.no_grad()
def one_size(label: str, mode: str, max_windows: int | None, ngf: int, stats: str = "exact") -> dict:
    from cyclegan.inference.tiling import TiledGenerator

    width, height = SIZES[label]
    net, x = generator(ngf), photo(height, width)
    start = time.perf_counter()
    if mode == "whole":
        net(x)
        seconds, note = time.perf_counter() - start, "measured"
    else:
        calls, total = 0, 0

        def progress(done, of):
            nonlocal calls, total
            calls, total = done, of
            if max_windows is not None and calls >= max_windows:
                raise _Enough

        tiled = TiledGenerator(net, 512, stats=stats, progress=progress, cache_budget=0)
        try:
            tiled(x)
            seconds, note = time.perf_counter() - start, "measured"
        except _Enough:
            # Rough: the first windows of an exact run stop early (the stem's norms), later ones do not.
            seconds = (time.perf_counter() - start) / calls * total
            note = f"extrapolated from {calls} of {total} windows"
    peak = peak_rss_mib()
    return {"size": label, "pixels": width * height, "mode": mode, "stats": stats, "peak_rss_mib": round(peak),
            "seconds": round(seconds, 1), "time": note}


def run_memory(args) -> list[dict]:
    from cyclegan.inference.tiling import bytes_per_pixel

    estimate = bytes_per_pixel(generator(args.ngf))
    rows = []
    for label in args.sizes.split(","):
        for mode in ("whole", "tiled"):
            width, height = SIZES[label]
            need_gb = width * height * estimate / 1024**3
            if mode == "whole" and need_gb > args.whole_limit_gb:
                rows.append({"size": label, "mode": mode, "estimated_gb": round(need_gb, 1),
                             "note": f"not run: estimated {need_gb:.1f} GB > --whole_limit_gb {args.whole_limit_gb}"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            command = [sys.executable, __file__, "one", label, mode, "--ngf", str(args.ngf), "--stats", args.stats]
            if args.max_windows:
                command += ["--max_windows", str(args.max_windows)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                rows.append({"size": label, "mode": mode, "failed": done.stderr.strip().splitlines()[-1:]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def run_video(args) -> dict:
    import av
    import numpy as np

    from cyclegan.inference.translator import Translator
    from cyclegan.inference.video import probe, translate_video

    folder = Path(tempfile.mkdtemp())
    source = folder / "clip.mp4"
    frames = photo(360, 640)[0].add(1).mul(127.5).byte().permute(1, 2, 0).numpy()
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(args.frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(frames, 8 * i, axis=1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    translator = Translator(generator(args.ngf), tile=0)
    start = time.perf_counter()
    summary = translate_video(translator, source, folder / "clip_fake_B.mp4", batch_size=4)
    seconds = time.perf_counter() - start
    before, after = probe(source), probe(summary.path)
    return {"frames_per_s": round(summary.frames / seconds, 3), "codec": summary.codec,
            "before": {k: str(v) for k, v in before.items()}, "after": {k: str(v) for k, v in after.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("psnr", "memory", "video", "one"))
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--sizes", default="1k,2k,4k,8k")
    parser.add_argument("--max_windows", type=int, default=None)
    parser.add_argument("--whole_limit_gb", type=float, default=8.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stats", default="exact", help="memory: the tiled runs' statistics mode (cyclegan.inference.tiling)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.what == "one":
        print(json.dumps(one_size(args.rest[0], args.rest[1], args.max_windows, args.ngf, args.stats)))
        return
    result = {"psnr": run_psnr, "memory": run_memory, "video": run_video}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
