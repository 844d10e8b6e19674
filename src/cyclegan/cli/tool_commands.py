"""``cyclegan demo``, ``eval``, ``download``, ``report``, ``inspect``, ``export`` and ``data``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cyclegan.cli.demo import DemoInterrupted, run_demo
from cyclegan.cli.flags import print_scores
from cyclegan.cli.help_texts import HELP
from cyclegan.cli.inspect_command import add_inspect_arguments, run_inspect
from cyclegan.core import download
from cyclegan.core.download import DATASETS, PIX2PIX_DATASETS, PRETRAINED_NAMES
from cyclegan.data import SYNTHETIC_DEFAULTS
from cyclegan.data.paired import combine_folders
from cyclegan.data.synthetic_tasks import (
    DEFAULT_TASK,
    SYNTHETIC_TASKS,
    describe_tasks,
    write_paired_task_dataset,
    write_task_dataset,
)
from cyclegan.deploy.export import format_export_summary, run_export_model
from cyclegan.metrics import evaluate_folders
from cyclegan.metrics.baselines import folder_baselines, margins
from cyclegan.recipes import MODELS
from cyclegan.report import write_run_report

log = logging.getLogger("cyclegan")


# --- demo ---------------------------------------------------------------------------------------


def add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the whole job on the built-in synthetic data set, in minutes on a CPU")
    parser.add_argument("--out", default="./demo", help="folder for the data set, run and results")
    parser.add_argument("--iters", type=int, default=None,
                        help="training iterations (default: the quick preset's max_iters)")
    parser.add_argument("--device", default="auto", help=HELP["device"])
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic set and the training run")
    parser.add_argument("--precision", default=None, help="auto (default) | fp32 | bf16")
    parser.add_argument("--model", default="cycle_gan", choices=MODELS.names(),
                        help="cycle_gan (unpaired), pix2pix (the paired version of the same set) or cut (CUT, "
                             "unpaired)")
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    import signal


    try:
        result = run_demo(out=args.out, iters=args.iters, device=args.device, seed=args.seed,
                          precision=args.precision, model=args.model)
    except DemoInterrupted as stop:
        print(f"cyclegan demo: {stop}", file=sys.stderr)
        number = getattr(signal, stop.signal_name, None)
        return 128 + int(number) if number is not None else 1  # the shell's convention for a signal
    print(result.summary())
    return 0


# --- eval ---------------------------------------------------------------------------------------


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="PSNR / SSIM of translations against true translations")
    parser.add_argument("--fake", required=True, help="folder of translations (e.g. results/.../images)")
    parser.add_argument("--real", required=True, help="folder of true translations, matched by file stem")
    parser.add_argument("--metrics", default="psnr,ssim", help="any of psnr,ssim,lpips (paired) and fid,kid (unpaired)")
    parser.add_argument("--lpips_weights", default=None,
                        help="LPIPS backbone: torchvision's alexnet-owt-7be5be79.pth (default: $CYCLEGAN_CACHE/lpips/)")
    parser.add_argument("--fake_label", default=None, help="which results to score: fake_B (default) | fake_A | fake")
    parser.add_argument("--inception_weights", default=None,
                        help="FID/KID Inception-v3 weights (default: the cache `cyclegan download inception` fills)")
    parser.add_argument("--device", default="cpu", help="where the LPIPS and Inception networks run: cpu | cuda")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the scores")
    baselines = parser.add_argument_group(
        "trivial baselines (doing nothing, constant image, colour transfer, histogram matching), scored on the "
        "same images when the inputs are known")
    baselines.add_argument("--source", default=None,
                           help="the inputs that were translated (default: the *_real_A files of a results folder)")
    baselines.add_argument("--target_domain", default=None,
                           help="the target domain's training images, for the colour statistics (e.g. trainB; "
                                "default: the ground truth itself, which favours the baselines)")
    baselines.add_argument("--source_domain", default=None,
                           help="the source domain's training images (e.g. trainA; default: each image's own)")
    parser.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    result = evaluate_folders(args.fake, args.real, metrics=metrics, fake_label=args.fake_label,
                              inception_weights=args.inception_weights, lpips_weights=args.lpips_weights,
                              device=args.device)
    if "psnr" in result and "ssim" in result:
        comparison = folder_baselines({r["name"] for r in result["per_image"]}, args.source or args.fake, args.real,
                                      target_domain=args.target_domain, source_domain=args.source_domain,
                                      plain_sources=args.source is not None)
        if comparison is not None:
            result["baselines"] = comparison
            result.update(margins(result, comparison["baselines"]))
    print_scores(result, args.format, label="fake", no_baselines="no baselines: pass --source with the inputs to "
                 "compare with doing nothing, a constant image ...")
    return 0


# --- download, report ---------------------------------------------------------------------------


def add_download_parser(subparsers) -> None:
    parser = subparsers.add_parser("download", help="the reference's data sets, pretrained generators, FID weights")
    kinds = parser.add_subparsers(dest="download_command", required=True)
    dataset = kinds.add_parser("dataset", help="a CycleGAN data set into <root>/<name>/trainA ..., or a pix2pix "
                                                  "one into <root>/<name>/train ... (A|B pairs)")
    dataset.add_argument("name", choices=sorted(set(DATASETS) | set(PIX2PIX_DATASETS)),
                         help="the data set, by the reference's name")
    dataset.add_argument("--root", default="./datasets", help="the data set goes to <root>/<name>/")
    dataset.add_argument("--paired", action="store_true",
                         help="the pix2pix (A|B) version of facades, cityscapes or maps; the pix2pix-only sets "
                              "(edges2shoes, edges2handbags, night2day) are always paired")
    pretrained = kinds.add_parser("pretrained", help="a published generator into <checkpoints_dir>/<name>_pretrained "
                                                        "(CycleGAN's, pix2pix's, or CUT's *_cut / *_fastcut)")
    pretrained.add_argument("name", choices=PRETRAINED_NAMES, help="the model, by its publisher's name")
    pretrained.add_argument("--checkpoints_dir", default="./checkpoints",
                            help="the generator goes to <checkpoints_dir>/<name>_pretrained/latest_net_G.pth")
    pretrained.add_argument("--paired", action="store_true",
                            help="pix2pix's generator of sat2map, map2sat or facades_label2photo (without it: "
                                 "CycleGAN's); edges2shoes and day2night are always pix2pix's")
    inception = kinds.add_parser("inception", help="the Inception-v3 weights `cyclegan eval --metrics fid` reads")
    inception.add_argument("--cache", default=None, help="cache folder (default: $CYCLEGAN_CACHE or ~/.cache/cyclegan)")
    inception.add_argument("--url", default=None, help="another place to fetch the weights from (default: "
                                                        "torch-fidelity's release)")
    for sub in (dataset, pretrained, inception):
        sub.add_argument("--sha256", default=None, help="expected checksum (full or a prefix of ≥ 8 hex digits)")
    for sub in (dataset, pretrained):
        sub.add_argument("--base", default=None, help="mirror URL (default: $CYCLEGAN_DOWNLOAD_BASE or the reference's)")
    parser.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    if args.download_command == "dataset":
        if args.paired or args.name not in download.DATASETS:
            path = download.download_pix2pix_dataset(args.name, args.root, base=args.base, sha256=args.sha256)
        else:
            path = download.download_dataset(args.name, args.root, base=args.base, sha256=args.sha256)
    elif args.download_command == "pretrained" and download.pretrained_source(args.name, args.paired) == "pix2pix":
        path = download.download_pix2pix_pretrained(args.name, args.checkpoints_dir, base=args.base,
                                                    sha256=args.sha256)
        direction = download.pretrained_direction(args.name, "pix2pix")  # as the reference tests it
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model pix2pix --direction {direction}  (DIR: its pix2pix data set)")
    elif args.download_command == "pretrained" and args.name in download.CUT_PRETRAINED:
        path = download.download_cut_pretrained(args.name, args.checkpoints_dir, base=args.base, sha256=args.sha256)
        mode = "FastCUT" if args.name.endswith("_fastcut") else "CUT"
        direction = " --direction BtoA" if args.name.startswith("cityscapes") else ""  # as CUT tests it
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model cut --CUT_mode {mode}{direction}")
    elif args.download_command == "pretrained":
        path = download.download_pretrained(args.name, args.checkpoints_dir, base=args.base, sha256=args.sha256)
        print(f"translate with: cyclegan test --dataroot DIR --name {args.name}_pretrained --checkpoints_dir "
              f"{args.checkpoints_dir} --model test --dataset_mode single --no_dropout")
    else:
        path = download.download_inception(args.cache, args.url, sha256=args.sha256)
    print(path)
    return 0


def add_report_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="one static HTML page: scores, loss curves, samples of a run")
    parser.add_argument("--name", required=True, help="the run")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--results_dir", default=None, help="a `cyclegan test` results folder to include")
    parser.add_argument("--out", default=None, help="the page (default: <run>/report.html)")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    results = args.results_dir
    default_results = Path("results") / args.name / "test_latest"
    if results is None and default_results.is_dir():
        results = default_results
    print(write_run_report(Path(args.checkpoints_dir) / args.name, results_dir=results, out=args.out))
    return 0


# --- inspect, export, data ----------------------------------------------------------------------


def add_inspect_parser(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="per-layer shapes, receptive field, parameters and MACs")
    add_inspect_arguments(parser)
    parser.set_defaults(handler=run_inspect)


def add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's networks for other tools")
    parser.add_argument("--name", required=True, help="the run to export")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where --name's run folder is")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest, best, or an epoch number")
    parser.add_argument("--format", choices=("reference", "onnx", "torch_export"), default="reference",
                        help="reference: <epoch>_net_G_A.pth ... for the reference's test.py; onnx / torch_export (.pt2): "
                             "the generators, with a parity check against PyTorch")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--height", type=int, default=256, help="example input height (sizes stay dynamic)")
    parser.add_argument("--width", type=int, default=256, help="example input width (sizes stay dynamic)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (18 or later)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="int8 (with --format onnx): also write <name>.int8.onnx, statically quantised and "
                             "calibrated on the run's training crops; fast on AVX2 CPUs (prints its PSNR vs fp32)")
    parser.add_argument("--dataroot", default=None,
                        help="training set for the int8 calibration (default: the run's --dataroot)")
    parser.add_argument("--calibration_images", type=int, default=32,
                        help="how many training crops per generator calibrate the int8 activation ranges")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    result = run_export_model(Path(args.checkpoints_dir) / args.name, args.epoch, args.format, args.out,
                              height=args.height, width=args.width, opset=args.opset, quantize=args.quantize,
                              dataroot=args.dataroot, calibration_images=args.calibration_images)
    print(format_export_summary(result))
    return 0


def add_data_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="data set tools")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    synthetic = data_sub.add_parser("synthetic", help="write a synthetic unpaired data set with known true translations",
                                    epilog="tasks:\n" + describe_tasks(),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    synthetic.add_argument("out", help="the data set's folder")
    synthetic.add_argument("--task", default=DEFAULT_TASK, choices=SYNTHETIC_TASKS.names(), metavar="NAME",
                           help=f"which mapping B is drawn under (default: {DEFAULT_TASK}, the built-in set); one of "
                                f"{', '.join(SYNTHETIC_TASKS.names())} (listed below; cyclegan.data.synthetic_tasks)")
    synthetic.add_argument("--n", type=int, default=SYNTHETIC_DEFAULTS["n"], help="training images per domain")
    synthetic.add_argument("--n_test", type=int, default=SYNTHETIC_DEFAULTS["n_test"], help="test images per domain")
    synthetic.add_argument("--size", type=int, default=SYNTHETIC_DEFAULTS["size"], help="image side in pixels")
    synthetic.add_argument("--seed", type=int, default=SYNTHETIC_DEFAULTS["seed"],
                           help="the set is a pure function of the seed")
    synthetic.add_argument("--overwrite", action="store_true", help="replace a data set already in OUT")
    synthetic.add_argument("--paired", action="store_true",
                           help="pix2pix data: train/ val/ test/ of A|B files, B the true translation of A")
    synthetic.set_defaults(handler=run_data_synthetic)
    combine = data_sub.add_parser("combine", help="pair two folders by file name into A|B files (combine_A_and_B.py)")
    combine.add_argument("--fold_A", required=True, help="A images, in split subfolders (train/ val/ test/) or not")
    combine.add_argument("--fold_B", required=True, help="B images with the same file names and sizes")
    combine.add_argument("--out", "--fold_AB", dest="out", required=True, help="where the A|B files go")
    combine.set_defaults(handler=run_data_combine)


def run_data_synthetic(args: argparse.Namespace) -> int:
    task = SYNTHETIC_TASKS.get(getattr(args, "task", DEFAULT_TASK))  # an unknown name lists the known ones
    sizes = {"n": args.n, "size": args.size, "seed": args.seed, "n_test": args.n_test, "overwrite": args.overwrite}
    if args.paired:
        root = write_paired_task_dataset(task.name, args.out, **sizes)
        print(f"wrote {root} (task {task.name}): train/ val/ test/ of A|B pairs (B = the true translation of A)")
        return 0
    root = write_task_dataset(task.name, args.out, **sizes)
    truths = "testA_gt/ testB_gt/" if task.invertible else "testA_gt/"
    print(f"wrote {root} (task {task.name}: {task.formula}): trainA/ trainB/ testA/ testB/ and the true "
          f"translations {truths}")
    return 0


def run_data_combine(args: argparse.Namespace) -> int:
    counts = combine_folders(args.fold_A, args.fold_B, args.out)
    for split, count in counts.items():
        print(f"{Path(args.out) / split}: {count} A|B pair(s)")
    return 0
