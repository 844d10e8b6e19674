"""Images per second of one generator: torch eager fp32, ours, and ONNX Runtime, with parity.

    python benchmarks/inference.py                          # resnet_9blocks ngf 64 at 256×256
    python benchmarks/inference.py --netG resnet_6blocks --ngf 32 --size 64 --batch_size 8
    python benchmarks/inference.py --run_dir checkpoints/NAME   # a trained G_A instead of random weights
    python benchmarks/inference.py --device cuda --compile
    python benchmarks/inference.py --quick --size 32 --ngf 4     # does it run (seconds)

Variants, all in this process, timed in alternating rounds so that drift hits each alike:

- ``eager fp32``: the reference's generator (torch's ``nn.InstanceNorm2d``) as its ``test.py`` runs it
  (eval, no_grad, fp32, NCHW);
- ``ours``: autocast at ``--precision`` (default bf16; on CUDA fp16 where bf16 is missing) with the
  network and input in channels_last, under ``torch.inference_mode``;
- ``ours + compile`` (with ``--compile``): the same through ``torch.compile``;
- ``onnxruntime fp32``: the file :func:`cyclegan.deploy.export.export_onnx` writes, run by
  :class:`cyclegan.deploy.backends.OnnxGenerator` with as many threads as torch (CPU), or the CUDA
  provider when the device is CUDA and onnxruntime has it (else the row is skipped);
- ``onnxruntime int8`` (CPU, unless ``--no_int8``): that file statically quantised by
  :func:`cyclegan.deploy.quantize.quantize_int8`, calibrated on ``--calibration_images`` random images
  (with ``--run_dir``: crops of the run's trainA, as ``cyclegan export --quantize int8`` does);
- ``openvino fp32 / bf16 / int8`` (CPU, with ``--openvino``): the same files run by
  :class:`cyclegan.deploy.openvino_runtime.OpenVinoGenerator` with as many threads as torch; bf16
  only where OpenVINO computes it natively (elsewhere its bf16 hint runs fp32: the row is skipped).

onnxruntime picks its kernels from the CPU's own flags (cpuid) at start-up; unlike torch
(``ATEN_CPU_CAPABILITY``) and oneDNN (``ONEDNN_MAX_CPU_ISA``) it has no setting to limit its ISA, so
its rows under AVX2 emulation still use AVX-512 / VNNI / AMX where the machine has them.

Parity: max and mean |output − eager fp32 output| on the same input, in [-1, 1] units (bf16 is
expected around 1e-2: 8 bits of mantissa), and the PSNR against it in dB ([-1, 1]: peak-to-peak 2). Markdown table on stdout; ``--json PATH`` too.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cyclegan.core.precision import resolve_precision
from cyclegan.deploy.quantize import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere

from common import (  # noqa: E402
    machine_description,
    markdown_table,
    median,
    synchronize,
    with_torch_instance_norm,
    write_json,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--norm", default="instance")
    parser.add_argument("--size", type=int, default=256, help="image side")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument(
        "--run_dir", default=None, help="benchmark this run's G_A (architecture from its config)"
    )
    parser.add_argument("--epoch", default="latest")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16", "fp16", "fp32"),
        help="ours: autocast dtype (auto = bf16; fp16 on GPUs without bf16)",
    )
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="add an `ours + compile` row")
    parser.add_argument("--no_onnx", action="store_true", help="skip the onnxruntime rows")
    parser.add_argument("--no_int8", action="store_true", help="skip the int8 rows")
    parser.add_argument("--openvino", action=argparse.BooleanOptionalAction, default=False,
                        help="add the openvino rows (fp32, bf16 where native, int8 with the int8 row)")
    parser.add_argument("--calibration_images", type=int, default=8, help="int8: calibration images")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and onnxruntime (default: torch's, which follows OMP_NUM_THREADS)",
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per variant (default 3)")
    parser.add_argument("--iters", type=int, default=None, help="timed calls per variant (default 10)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny iteration counts: checks that it runs, not timing"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def load_generator(args: argparse.Namespace) -> nn.Module:
    if args.run_dir:
        from cyclegan.recipes.loading import load_generators

        loaded = load_generators(args.run_dir, args.epoch, names=("G_A",))
        args.netG, args.ngf = loaded.config.model.netG, loaded.config.model.ngf  # for the report
        return loaded.nets["G_A"]
    from cyclegan.networks import define_G

    torch.manual_seed(0)
    return define_G(3, 3, args.ngf, args.netG, norm=args.norm)


def int8_generator(net: nn.Module, fp32_path: Path, args: argparse.Namespace) -> nn.Module:
    """The fp32 ONNX file quantised to int8, calibrated on the run's trainA crops or random images."""
    from cyclegan.deploy.backends import OnnxGenerator
    from cyclegan.deploy.quantize import calibration_batches, calibration_inputs, quantize_int8

    if args.run_dir:
        from cyclegan.config import CONFIG_FILENAME, TrainConfig
        from cyclegan.recipes import MODELS

        config = TrainConfig.load(Path(args.run_dir) / CONFIG_FILENAME)
        crops, _ = calibration_inputs(config, MODELS.get(config.model.model).directions[0].net,
                                      limit=args.calibration_images)
    else:
        generator = torch.Generator().manual_seed(1)  # not the timed input's seed
        crops = list(torch.rand(args.calibration_images, net.input_nc, args.size, args.size, generator=generator) * 2 - 1)
    path = quantize_int8(fp32_path, calibration_batches(crops, net.size_multiple))
    return OnnxGenerator(path, threads=torch.get_num_threads())


def build_variants(
    net: nn.Module, args: argparse.Namespace, device: torch.device, precision: str, workdir: Path
) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], dict[str, str]]:
    """name → a function of the fp32 NCHW input batch; and name → why a variant was skipped."""
    import copy

    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    skipped: dict[str, str] = {}
    eager = with_torch_instance_norm(copy.deepcopy(net)).to(device).eval()

    def run_eager(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return eager(x)

    variants["eager fp32"] = run_eager

    ours = copy.deepcopy(net).to(device).eval()
    if args.channels_last:
        ours = ours.to(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(device.type, dtype=DTYPES[precision])
        if precision != "fp32"
        else contextlib.nullcontext()
    )

    def make_ours(module: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def run_ours(x: torch.Tensor) -> torch.Tensor:
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast:
                return module(x)

        return run_ours

    label = f"ours ({precision}{' + channels_last' if args.channels_last else ''})"
    variants[label] = make_ours(ours)
    if args.compile:
        variants[label + " + compile"] = make_ours(torch.compile(ours))

    if not args.no_onnx:
        try:
            from cyclegan.deploy.backends import OnnxGenerator, default_providers
            from cyclegan.deploy.export import export_onnx

            providers = default_providers(device)
            if device.type == "cuda" and "CUDAExecutionProvider" not in providers:
                skipped["onnxruntime fp32"] = "this onnxruntime has no CUDAExecutionProvider"
            else:
                path = export_onnx(net, workdir / "generator.onnx", net.input_nc, args.size, args.size)
                session = OnnxGenerator(path, providers=providers, threads=torch.get_num_threads())
                provider = session.session.get_providers()[0].replace("ExecutionProvider", "")
                variants[f"onnxruntime fp32 ({provider})"] = session
                if not args.no_int8 and device.type == "cpu":
                    variants["onnxruntime int8 (CPU)"] = int8_generator(net, path, args)
        except ImportError as error:
            skipped["onnxruntime fp32"] = str(error)
    if args.openvino:
        add_openvino_variants(net, args, device, workdir, variants, skipped)
    return variants, skipped


def add_openvino_variants(
    net: nn.Module, args: argparse.Namespace, device: torch.device, workdir: Path,
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]], skipped: dict[str, str],
) -> None:
    """OpenVINO fp32, bf16 (where native) and int8 rows, on the ONNX files the onnxruntime rows ran."""
    if device.type != "cpu":
        skipped["openvino"] = "OpenVINO's backend here runs on the CPU"
        return
    try:
        from cyclegan.deploy.openvino_runtime import OpenVinoGenerator, openvino_has_native_bf16

        native_bf16 = openvino_has_native_bf16()
    except ImportError as error:
        skipped["openvino"] = str(error)
        return
    path = workdir / "generator.onnx"
    if not path.exists():
        from cyclegan.deploy.export import export_onnx

        export_onnx(net, path, net.input_nc, args.size, args.size)
    threads = torch.get_num_threads()
    variants["openvino fp32 (CPU)"] = OpenVinoGenerator(path, net.size_multiple, "fp32", threads)
    if native_bf16:
        variants["openvino bf16 (CPU)"] = OpenVinoGenerator(path, net.size_multiple, "bf16", threads)
    else:
        skipped["openvino bf16"] = "this CPU has no native bf16 (OpenVINO would run the bf16 hint in fp32)"
    int8 = variants.get("onnxruntime int8 (CPU)")
    if int8 is not None:
        variants["openvino int8 (CPU)"] = OpenVinoGenerator(int8.path, net.size_multiple, "fp32", threads)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    iters = args.iters if args.iters is not None else (2 if args.quick else 10)
    rounds = max(1, min(args.rounds or (2 if args.quick else 5), iters))
    per_round = -(-iters // rounds)
    precision = resolve_precision(args.precision, device)

    net = load_generator(args)
    size = -(-args.size // net.size_multiple) * net.size_multiple  # the graph needs a multiple
    args.size = size
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch_size, net.input_nc, size, size, generator=generator) * 2 - 1).to(device)

    with tempfile.TemporaryDirectory() as workdir:
        variants, skipped = build_variants(net, args, device, precision, Path(workdir))
        reference = variants["eager fp32"](x).float()
        parity: dict[str, tuple[float, float, float]] = {}
        for name, fn in variants.items():
            for _ in range(warmup):
                fn(x)
            out = fn(x).float().to(reference.device)
            diff = (out - reference).abs()
            parity[name] = (float(diff.max()), float(diff.mean()), psnr(out, reference))
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                for _ in range(per_round):
                    synchronize(device)
                    start = time.perf_counter()
                    variants[name](x)
                    synchronize(device)
                    times[name].append(time.perf_counter() - start)

    eager_time = median(times["eager fp32"])
    results = []
    for name in variants:
        seconds = median(times[name])
        results.append(
            {
                "variant": name,
                "median_ms": seconds * 1e3,
                "min_ms": min(times[name]) * 1e3,
                "images_per_s": args.batch_size / seconds,
                "speedup_vs_eager": eager_time / seconds,
                "max_abs_diff": parity[name][0],
                "mean_abs_diff": parity[name][1],
                "psnr_db": parity[name][2],
                "timed_calls": len(times[name]),
            }
        )
    return {
        "benchmark": "inference",
        "generator": {"netG": args.netG, "ngf": args.ngf, "size": size, "batch_size": args.batch_size},
        "device": str(device),
        "machine": machine_description(device, threads),
        "threads": threads,
        "warmup": warmup,
        "iters": per_round * rounds,
        "rounds": rounds,
        "results": results,
        "skipped": skipped,
    }


def format_report(report: dict[str, Any]) -> str:
    g = report["generator"]
    header = [
        "variant",
        "median ms / batch",
        "images / s",
        "speed vs eager fp32",
        "max abs Δ vs eager",
        "mean abs Δ",
        "PSNR vs eager",
    ]
    rows = [
        [
            r["variant"],
            f"{r['median_ms']:.2f}",
            f"{r['images_per_s']:.2f}",
            f"{r['speedup_vs_eager']:.2f}×",
            f"{r['max_abs_diff']:.2e}",
            f"{r['mean_abs_diff']:.2e}",
            "exact" if r["psnr_db"] == float("inf") else f"{r['psnr_db']:.1f} dB",
        ]
        for r in report["results"]
    ]
    lines = [
        f"## Generator inference — {g['netG']} ngf {g['ngf']}, {g['size']}×{g['size']}, "
        f"batch {g['batch_size']}",
        "",
        f"- machine: {report['machine']}; device {report['device']}",
        f"- {report['warmup']} warm-up, then {report['iters']} timed calls per variant in {report['rounds']} "
        f"interleaved rounds; Δ in [-1, 1] units against eager fp32 on the same input",
        "",
        markdown_table(header, rows),
    ]
    for name, why in report["skipped"].items():
        lines.append(f"\n{name}: skipped ({why})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(format_report(report))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
