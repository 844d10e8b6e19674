"""``cyclegan test``: translate whole folders, write the reference's file names and a results page.

- ``--model cycle_gan`` (default): every image of ``<dataroot>/<phase>A`` goes A→B→A and every
  image of ``<phase>B`` goes B→A→B, written as ``<stem>_real_A.png``, ``<stem>_fake_B.png``,
  ``<stem>_rec_A.png`` and ``<stem>_real_B.png``, ``<stem>_fake_A.png``, ``<stem>_rec_B.png``, each
  named by its own input (the reference names the B results after the paired A file);
- ``--model test --dataset_mode single``: one direction over the folder ``<dataroot>`` itself,
  ``<stem>_real.png`` and ``<stem>_fake.png``, with ``<epoch>_net_G<model_suffix>``.

No silent 50-image cap: every image is translated unless ``--num_test`` is given. When the data
set holds the true translations (``<phase>A_gt``, as the synthetic set does), PSNR / SSIM are
computed and shown on the page beside each image, next to the trivial baselines' scores on the same
images (:mod:`cyclegan.metrics.baselines`), and the true translation is shown beside ``fake_B``
(copied in as ``<stem>_true_B.png``).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan.config import TrainConfig
from cyclegan.metrics.baselines import dataset_baselines, margins, page_items
from cyclegan.translate import folder_images, save_tensor_image, translate_folder

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
    model: str = "cycle_gan",
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
) -> TestSummary:
    """Translate the test folders and write the results page.

    ``backend``: ``torch`` or ``onnxruntime`` (the generators exported once to ONNX beside the
    checkpoint, see :mod:`cyclegan.backends`). ``batch_size``: images of the same size translated
    together.
    """
    from cyclegan.backends import BACKENDS, load_backend_generators
    from cyclegan.fileio import atomic_write
    from cyclegan.metrics import evaluate_folders, to_json
    from cyclegan.report import collect_result_rows, write_results_page
    from cyclegan.trainer import resolve_device

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    torch_device = resolve_device(device)
    dataroot = Path(dataroot)
    run_dir = Path(checkpoints_dir) / name
    out_dir = Path(results_dir) / name / f"{phase}_{epoch}"
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    if model == "test":
        suffix_name = f"G{model_suffix}"
        loaded = load_backend_generators(run_dir, epoch, names=(suffix_name,), backend=backend, flags=flags,
                                         device=torch_device)
        if dataset_mode not in (None, "single"):
            raise ValueError("--model test translates one folder: use --dataset_mode single")
        jobs = [(dataroot, loaded.nets[suffix_name], None, ("real", "fake", "rec"), loaded.config.data.input_nc)]
    else:
        if dataset_mode not in (None, "unaligned"):
            raise ValueError("--model cycle_gan translates <dataroot>/<phase>A and B: use --dataset_mode unaligned")
        loaded = load_backend_generators(run_dir, epoch, names=("G_A", "G_B"), backend=backend, flags=flags,
                                         device=torch_device)
        G_A, G_B = loaded.nets["G_A"], loaded.nets["G_B"]
        direction = direction or loaded.config.data.direction
        folder_A, folder_B = dataroot / f"{phase}A", dataroot / f"{phase}B"
        if direction == "BtoA":  # G_A then maps the B folder's images
            folder_A, folder_B = folder_B, folder_A
        input_nc, output_nc = loaded.config.data.input_nc, loaded.config.data.output_nc
        jobs = []
        if folder_A.is_dir():
            jobs.append((folder_A, G_A, G_B, ("real_A", "fake_B", "rec_A"), input_nc))
        if folder_B.is_dir():
            jobs.append((folder_B, G_B, G_A, ("real_B", "fake_A", "rec_B"), output_nc))
        if not jobs:
            raise FileNotFoundError(
                f"no {folder_A} or {folder_B}: --model cycle_gan expects <dataroot>/{phase}A and {phase}B "
                f"(for one folder use --model test --dataset_mode single)"
            )

    data_cfg = None
    if preprocess != "none":
        data_cfg = dataclasses.replace(loaded.config.data, preprocess=preprocess, load_size=load_size,
                                       crop_size=crop_size, no_flip=True)
    count = 0
    for folder, forward, backward, labels, channels in jobs:
        paths = folder_images(folder, num_test)
        log.info("translating %d image(s) from %s", len(paths), folder)
        for item in translate_folder(paths, forward, backward, channels, labels, torch_device, data_cfg,
                                     batch_size=batch_size, precision=precision if backend == "torch" else "fp32"):
            for label, tensor in item.images.items():
                save_tensor_image(tensor, images_dir / f"{item.stem}_{label}.png")
            count += 1

    scores = None
    ground_truth = dataroot / f"{phase}A_gt"
    if model == "cycle_gan" and ground_truth.is_dir() and (direction or "AtoB") == "AtoB":
        scores = evaluate_folders(images_dir, ground_truth, fake_label="fake_B")
        for record in scores["per_image"]:  # the truth beside each fake_B on the page
            truth = next(iter(sorted(ground_truth.glob(f"{glob.escape(record['name'])}.*"))), None)
            if truth is not None:
                shutil.copyfile(truth, images_dir / f"{record['name']}_true_B{truth.suffix}")
        comparison = dataset_baselines(dataroot, phase, "AtoB", loaded.config.data.input_nc,
                                       loaded.config.data.output_nc, stems={r["name"] for r in scores["per_image"]})
        if comparison is not None:
            scores["baselines"] = comparison
            scores.update(margins(scores, comparison["baselines"]))
        atomic_write(out_dir / "scores.json", to_json(scores) + "\n")  # `cyclegan report` reads it
    rows = collect_result_rows(out_dir)
    title = f"{name}: {phase} results, epoch {epoch}"
    page = write_results_page(out_dir, rows, title=title, scores=_page_scores(scores),
                              per_image_scores=scores["per_image"] if scores else None)
    return TestSummary(out_dir, images_dir, page, count, scores)


def _page_scores(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    if not scores:
        return None
    items = page_items(scores, scores.get("baselines"), model_label="fake_B vs ground truth")
    return {**items, "images scored": scores["count"]}


__all__ = ["TestSummary", "run_test"]
