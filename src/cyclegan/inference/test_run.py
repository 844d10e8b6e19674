"""``cyclegan test``: translate whole folders, write the reference's file names and a results page.

The run's recipe says which networks translate (``TrainingRecipe.directions``) and its data mode
where the images are:

- ``--model cycle_gan`` (unaligned data): every image of ``<dataroot>/<phase>A`` goes A→B→A and every
  image of ``<phase>B`` goes B→A→B, written as ``<stem>_real_A.png``, ``<stem>_fake_B.png``,
  ``<stem>_rec_A.png`` and ``<stem>_real_B.png``, ``<stem>_fake_A.png``, ``<stem>_rec_B.png``, each
  named by its own input (the reference names the B results after the paired A file);
- ``--model pix2pix`` (aligned data): every A|B file of ``<dataroot>/<phase>`` gives
  ``<stem>_real_A.png``, ``<stem>_fake_B.png``, ``<stem>_real_B.png``, scored against real_B;
- ``--model test --dataset_mode single``: one direction over the folder ``<dataroot>`` itself,
  ``<stem>_real.png`` and ``<stem>_fake.png``, with ``<epoch>_net_G<model_suffix>``.

Networks run in train mode, as the reference's ``test.py`` does, unless ``--eval`` (see
:mod:`cyclegan.recipes.loading`); dropout then draws from a generator seeded with ``--seed``. No silent
50-image cap: every image is translated unless ``--num_test`` is given. When the data set holds the
true translations (``<phase>A_gt``, as the synthetic set does, or the B half of paired data), PSNR /
SSIM are computed and shown on the page beside each image, next to the trivial baselines' scores on
the same images (:mod:`cyclegan.metrics.baselines`: doing nothing, a constant image, colour transfer,
histogram matching) and the margin over the best of them; the true translation is shown beside
``fake_B`` (unpaired data: copied in as ``<stem>_true_B.png``; paired data: its ``real_B``).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cyclegan.config import DataConfig, TrainConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.core.runtime import resolve_device
from cyclegan.data.datasets import DATASETS
from cyclegan.data.transforms import image_tensor
from cyclegan.deploy.backends import BACKENDS, load_backend_generators
from cyclegan.deploy.fastest import PRECISION_CHOICES, FastestPath, network_key
from cyclegan.inference.folders import aligned_halves, folder_images, save_tensor_image, translate_folder
from cyclegan.metrics import evaluate_folders, to_json
from cyclegan.metrics.baselines import dataset_baselines, folder_baselines, margins, page_items
from cyclegan.recipes import MODELS, TrainingRecipe
from cyclegan.recipes.codec import ImageCodec, picture_network
from cyclegan.report import collect_result_rows, write_results_page

log = logging.getLogger(__name__)


@dataclass
class TestSummary:
    results_dir: Path
    images_dir: Path
    page: Path
    count: int
    scores: dict[str, Any] | None


def run_test(
    dataroot: str | Path,
    name: str,
    checkpoints_dir: str | Path = "./checkpoints",
    results_dir: str | Path = "./results",
    model: str | None = None,
    model_suffix: str = "",
    dataset_mode: str | None = None,
    phase: str = "test",
    epoch: str = "latest",
    num_test: int | None = None,
    direction: str | None = None,
    device: str = "auto",
    flags: TrainConfig | None = None,
    preprocess: str = "none",
    load_size: int = 256,
    crop_size: int = 256,
    backend: str = "torch",
    batch_size: int = 1,
    precision: str = "fp32",
    eval_mode: bool = False,
    seed: int = 0,
    quantize: str = "none",
) -> TestSummary:
    """Translate the test folders and write the results page.

    ``model``: ``test`` (one generator over one folder) or a recipe name; ``None`` or a recipe name
    means the run's own recipe (from its config; a different one is an error). ``backend``: ``torch``
    or ``onnxruntime`` (the generators exported once to ONNX beside the checkpoint, see
    :mod:`cyclegan.deploy.backends`), ``openvino``, or ``auto``; ``precision``: ``fp32``, ``bf16`` or
    ``auto``. With ``auto`` in either, each network runs by the fastest path that agrees with fp32 on
    its first batch (:class:`cyclegan.deploy.fastest.FastestPath`, in eval mode). ``batch_size``:
    images of the same size translated together (one at a time when a network runs in train mode,
    whose batch statistics would mix them). ``eval_mode``:
    the reference's ``--eval``. ``quantize="int8"`` (onnxruntime): the int8 graphs, calibrated on
    ``<dataroot>/train<A|B>`` when that folder exists, else on the run's own dataroot.
    """
    _check_test_arguments(backend, batch_size, model, dataset_mode, precision, quantize)
    torch_device = resolve_device(device)
    dataroot = Path(dataroot)
    run_dir = Path(checkpoints_dir) / name
    out_dir = Path(results_dir) / name / f"{phase}_{epoch}"
    images_dir = out_dir / "images"  # made once the networks load: a failed load leaves no empty folders
    # Train mode is the reference's default; ONNX graphs are exported in eval mode, and ``auto``
    # compares paths that all run in eval mode.
    automatic = "auto" in (backend, precision)
    mode_eval = eval_mode or backend != "torch" or automatic
    calibration_dataroot = dataroot if any((dataroot / folder).is_dir() for folder in ("trainA", "trainB", "train")) else None
    suffix_name = f"G{model_suffix}"  # --model test: the lone generator <epoch>_net_G<suffix>.pth
    loaded = load_backend_generators(run_dir, epoch, names=(suffix_name,) if model == "test" else None,
                                     backend="torch" if automatic else backend, flags=flags, device=torch_device,
                                     eval_mode=mode_eval,
                                     quantize=quantize, calibration_dataroot=calibration_dataroot,
                                     **({"precision": precision} if backend == "openvino" else {}))
    config = loaded.config
    jobs, recipe, layout = _jobs(loaded.nets, config, model, suffix_name, run_dir, dataroot, dataset_mode, direction,
                                 phase, preprocess, load_size, crop_size)

    if automatic:
        jobs = [fastest_job(job, torch_device, precision, backend, config) for job in jobs]
    if not mode_eval and any(getattr(job.forward, "training", False) for job in jobs):
        if batch_size > 1:
            log.info("networks run in train mode (the reference's default; --eval to change): one image at a time")
            batch_size = 1
        torch.manual_seed(seed)  # dropout masks: the same results on every run
    images_dir.mkdir(parents=True, exist_ok=True)
    count = run_jobs(jobs, images_dir, num_test, torch_device, _test_preprocess(config.data, preprocess, load_size,
                     crop_size), batch_size, precision if backend == "torch" and not automatic else "fp32")
    scores = None if recipe is None else score_results(recipe, config, layout, images_dir, dataroot, phase, direction)
    if scores is not None:
        atomic_write(out_dir / "scores.json", to_json(scores) + "\n")  # `cyclegan report` reads it
    page = _write_page(out_dir, jobs, f"{name}: {phase} results, epoch {epoch}", scores)
    return TestSummary(out_dir, images_dir, page, count, scores)


def _jobs(nets: dict[str, Any], config: TrainConfig, model: str | None, suffix_name: str, run_dir: Path,
          dataroot: Path, dataset_mode: str | None, direction: str | None, phase: str, preprocess: str,
          load_size: int, crop_size: int) -> tuple[list[Job], type[TrainingRecipe] | None, str]:
    """The jobs ``test`` runs, the run's recipe (None for ``--model test``) and the data layout."""
    if model == "test":
        codec = ImageCodec(config.data.input_nc, config.data.output_nc)
        return [Job(dataroot, nets[suffix_name], None, ("real", "fake", "rec"), codec.read_nc)], None, "single"
    if model is not None and model != config.model.model:
        raise ValueError(f"{run_dir} holds a {config.model.model} run, not {model}: use --model "
                         f"{config.model.model} (or --model test for a lone generator)")
    recipe = MODELS.get(config.model.model)
    layout = DATASETS.get(dataset_mode or config.data.dataset_mode).layout
    data = dataclasses.replace(config.data, direction=direction or config.data.direction)
    jobs = recipe_jobs(recipe, nets, dataclasses.replace(config, data=data), layout, dataroot, phase,
                       _test_preprocess(data, preprocess, load_size, crop_size))
    return jobs, recipe, layout


def fastest_job(job: Job, device: torch.device, precision: str, backend: str, config: TrainConfig) -> Job:
    """The job with each network run by the fastest path that agrees with fp32 (``--backend auto`` /
    ``--precision auto``: measured on its first batch of each picture size, cached per machine)."""
    fields = {"netG": config.model.netG, "ngf": config.model.ngf, "norm": config.model.norm}

    def fastest(net: Any) -> FastestPath | None:
        return None if net is None else FastestPath(net, device, precision, backend, network_key(net, **fields))

    return dataclasses.replace(job, forward=fastest(job.forward), backward=fastest(job.backward))


def _check_test_arguments(backend: str, batch_size: int, model: str | None, dataset_mode: str | None,
                          precision: str = "fp32", quantize: str = "none") -> None:
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_CHOICES)}")
    if quantize != "none" and "auto" in (backend, precision):
        raise ValueError("--quantize int8 runs the onnxruntime int8 graphs as asked: use it with --backend "
                         "onnxruntime (auto compares the fp32 and bf16 paths, not int8)")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    if model == "test" and dataset_mode not in (None, "single"):
        raise ValueError("--model test translates one folder: use --dataset_mode single")


def _write_page(out_dir: Path, jobs: list[Job], title: str, scores: dict[str, Any] | None) -> Path:
    """The results page: the columns in the order the jobs write them, the truth beside each translation."""
    order = [label for job in jobs for label in (*job.labels[:2], "true_B", *job.labels[2:])]
    rows = collect_result_rows(out_dir, order=list(dict.fromkeys([*order, "real_A", "real_B"])))
    return write_results_page(out_dir, rows, title=title, scores=_page_scores(scores),
                              per_image_scores=scores["per_image"] if scores else None)


def run_jobs(jobs: list[Job], images_dir: Path, num_test: int | None, device: torch.device,
             data: DataConfig | None, batch_size: int, precision: str) -> int:
    """Translate every job's folder into ``images_dir`` (``<stem>_<label>.png``); returns the item count."""
    count = 0
    for job in jobs:
        paths = folder_images(job.folder, num_test)
        log.info("translating %d image(s) from %s", len(paths), job.folder)
        for item in translate_folder(paths, job.forward, job.backward, job.channels, job.labels, device, data,
                                     batch_size=batch_size, precision=precision, read=job.read):
            for label, tensor in item.images.items():
                save_tensor_image(tensor, images_dir / f"{item.stem}_{label}.png")
            count += 1
    return count


def score_results(recipe: type[TrainingRecipe], config: TrainConfig, layout: str, images_dir: Path,
                  dataroot: Path, phase: str, direction: str | None) -> dict[str, Any] | None:
    """PSNR / SSIM of the translations against the truth, beside the trivial baselines and the margin over
    the best of them; None without a truth (unpaired data without ``<phase>A_gt``)."""
    if layout in ("aligned", "pictures"):  # the truth is in each item: fake_B vs real_B
        codec = recipe.image_codec(config, recipe.directions[0])
        scores = evaluate_folders(images_dir, images_dir, fake_label="fake_B")
        comparison = folder_baselines({r["name"] for r in scores["per_image"]}, images_dir, images_dir,
                                      input_nc=codec.input_nc, output_nc=codec.image_nc, plain_sources=False)
    else:
        ground_truth = dataroot / f"{phase}A_gt"
        if not (ground_truth.is_dir() and (direction or "AtoB") == "AtoB" and recipe.directions[0].source == "A"):
            return None
        scores = evaluate_folders(images_dir, ground_truth, fake_label=recipe.directions[0].labels[1])
        stems = {r["name"] for r in scores["per_image"]}
        for stem in stems:  # the truth beside each fake_B on the page
            truth = next(iter(sorted(ground_truth.glob(f"{glob.escape(stem)}.*"))), None)
            if truth is not None:
                shutil.copyfile(truth, images_dir / f"{stem}_true_B{truth.suffix}")
        comparison = dataset_baselines(dataroot, phase, "AtoB", config.data.input_nc, config.data.output_nc,
                                       stems=stems)
    if comparison is not None:
        scores["baselines"] = comparison
        scores.update(margins(scores, comparison["baselines"]))
    return scores


@dataclass
class Job:
    """One folder through one network: ``forward`` maps pictures in [-1, 1] to pictures (the recipe's
    codec already wrapped around it), ``read(path)`` → (input, extra visuals) when an item is more than
    one picture; ``labels``: the reference's (real, fake, rec) file labels."""

    folder: Path
    forward: Any
    backward: Any
    labels: tuple[str, str, str]
    channels: int
    read: Any = None


def recipe_jobs(recipe: type[TrainingRecipe], nets: dict[str, Any], config: TrainConfig, layout: str,
                dataroot: Path, phase: str, data: DataConfig | None) -> list[Job]:
    """What ``test`` translates for a run, as its recipe and its data layout say (see
    ``BaseDataset.layout``): every direction over its own folder, or the one direction over the items
    that hold their own truth (aligned A|B files; pictures whose encoding is the input)."""
    direction = config.data.direction
    if layout in ("aligned", "pictures"):
        first = recipe.directions[0]
        folder = dataroot / phase
        if not folder.is_dir():
            raise FileNotFoundError(f"no {folder}: --dataset_mode {config.data.dataset_mode} expects "
                                    f"<dataroot>/{phase}/ of " + ("A|B images" if layout == "aligned" else "pictures"))
        codec = recipe.image_codec(config, first)
        if layout == "aligned":
            nc_in, nc_out = recipe.channels(config, first)
            # The file's halves: with BtoA the right half is the input, so the left one has its channels.
            halves = (nc_out, nc_in) if direction == "BtoA" else (nc_in, nc_out)
            read = functools.partial(_read_aligned, channels=halves, direction=direction, data=data)
            return [Job(folder, picture_network(nets[first.net], codec), None, first.labels, nc_in, read)]
        read = functools.partial(_read_picture, codec=codec, data=data)
        return [Job(folder, picture_network(nets[first.net], codec), None, ("real_B", "fake_B", "rec_B"),
                    codec.read_nc, read)]
    if layout not in ("unaligned", "single"):
        raise ValueError(f"unknown data layout {layout!r} of --dataset_mode {config.data.dataset_mode}")
    jobs = []
    for translator in recipe.directions:
        folder_domain = translator.source
        if direction == "BtoA":  # the folders stay A / B; the roles swap
            folder_domain = translator.target
        folder = dataroot if layout == "single" else dataroot / f"{phase}{folder_domain}"
        if folder.is_dir():
            codec = recipe.image_codec(config, translator)
            back = nets[translator.back] if translator.back else None
            jobs.append(Job(folder, picture_network(nets[translator.net], codec), back, translator.labels,
                            codec.read_nc))
        if layout == "single":
            break
    if not jobs:
        raise FileNotFoundError(
            f"no {dataroot / (phase + 'A')} or {dataroot / (phase + 'B')}: --dataset_mode unaligned expects "
            f"<dataroot>/{phase}A and {phase}B (for one folder use --dataset_mode single)"
        )
    return jobs


def _read_picture(path: Path, codec: ImageCodec, data: DataConfig | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A picture that is its own truth: (the picture, {"real_A": the network's encoded input})."""
    picture = image_tensor(path, codec.read_nc, data)
    return picture, {"real_A": codec.encode((picture + 1) / 2)}


def _test_preprocess(data: DataConfig, preprocess: str, load_size: int, crop_size: int) -> DataConfig | None:
    """The data config that resizes test images, or None to keep each image's own size."""
    if preprocess == "none":
        return None
    return dataclasses.replace(data, preprocess=preprocess, load_size=load_size, crop_size=crop_size, no_flip=True)


def _read_aligned(path: Path, channels: tuple[int, int], direction: str,
                  data: DataConfig | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    source, target = aligned_halves(path, channels, direction, data)
    return source, {"real_B": target}


def _page_scores(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    if not scores:
        return None
    items = page_items(scores, scores.get("baselines"), model_label="fake_B vs ground truth")
    return {**items, "images scored": scores["count"]}


__all__ = ["TestSummary", "run_test"]
