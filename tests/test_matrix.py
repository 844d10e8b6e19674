"""Every registered recipe through every door: one parametrised matrix, driven by the registry.

Each recipe (and each of its ``variants``, e.g. CUT's FastCUT) trains 2 steps on the synthetic set in
its own data layout, then goes through resume, ``test``, ``translate`` (an image, a tiled image, a
10-frame video), the serve page's translate function, every export format, int8 quantisation, the
report page and ``demo --iters 2``. A new recipe is tested by registering it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli.demo import run_demo
from cyclegan.config import TrainConfig
from cyclegan.core.checkpoint import load_checkpoint
from cyclegan.data.datasets import DATASETS
from cyclegan.data.paired import write_synthetic_for_layout
from cyclegan.deploy.export import EXPORT_FORMATS, run_export_model
from cyclegan.inference.serve import translate_upload
from cyclegan.inference.test_run import run_test
from cyclegan.inference.translator import Translator
from cyclegan.recipes import MODELS, default_config
from cyclegan.report import write_run_report
from cyclegan.training.trainer import Trainer

from .test_translate import make_clip, save_photo

pytestmark = pytest.mark.slow

VARIANTS = [(name, variant) for name in MODELS.names() for variant in ("", *MODELS.get(name).variants)]


def variant_id(case: tuple[str, str]) -> str:
    return "-".join(part for part in case if part)


def matrix_config(model: str, variant: str, dataroot: Path, checkpoints: Path, name: str, iters: int) -> TrainConfig:
    """The recipe's (and variant's) own defaults at toy size: 32 px, ngf / ndf 4, resnet_6blocks, no pool."""
    settings = MODELS.get(model).variants.get(variant, {})
    sections: dict[str, dict] = {}
    for key, value in settings.items():
        section, field = key.split(".")
        sections.setdefault(section, {})[field] = value
    pristine = TrainConfig()
    config = default_config(model, **{s: dataclasses.replace(getattr(pristine, s), **v) for s, v in sections.items()})
    config.data = dataclasses.replace(config.data, dataroot=str(dataroot), load_size=36, crop_size=32, num_threads=0)
    config.model = dataclasses.replace(config.model, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=0)
    config.optim = dataclasses.replace(config.optim, n_epochs=1, n_epochs_decay=1, max_iters=iters)
    config.runtime = dataclasses.replace(
        config.runtime, name=name, checkpoints_dir=str(checkpoints), device="cpu", seed=0, deterministic=True,
        print_freq=1, display_freq=1, save_latest_freq=1000, save_epoch_freq=1, progress_bar=False,
        precision="fp32", tensorboard=False)
    return config


@dataclasses.dataclass
class Run:
    model: str
    variant: str
    data: Path
    root: Path
    run_dir: Path
    config: TrainConfig

    @property
    def recipe(self):
        return MODELS.get(self.model)


@pytest.fixture(scope="module", params=VARIANTS, ids=variant_id)
def run(request, tmp_path_factory) -> Run:
    model, variant = request.param
    root = tmp_path_factory.mktemp(variant_id(request.param))
    layout = DATASETS.get(default_config(model).data.dataset_mode).layout
    data = write_synthetic_for_layout(layout, root / "data", n=4, size=32, n_test=2, n_val=2)
    config = matrix_config(model, variant, data, root / "a", "run", iters=2)
    result = Trainer(config).fit()
    assert result.progress.total_iters == 2 and result.checkpoint.exists()
    return Run(model, variant, data, root, result.run_dir, config)


def test_resume_is_bitwise(run: Run):
    Trainer(matrix_config(run.model, run.variant, run.data, run.root / "b", "run", iters=1)).fit()
    resumed = Trainer(matrix_config(run.model, run.variant, run.data, run.root / "b", "run", iters=2),
                      resume="required")
    assert resumed.resumed_from is not None
    resumed.fit()
    whole = load_checkpoint(run.run_dir / "latest.safetensors")
    split = load_checkpoint(run.root / "b" / "run" / "latest.safetensors")
    for name, state in whole["nets"].items():
        for key, value in state.items():
            assert torch.equal(value, split["nets"][name][key]), f"{name}.{key} differs after resume"


def test_test_writes_every_direction_and_scores(run: Run):
    summary = run_test(run.data, "run", checkpoints_dir=run.root / "a", results_dir=run.root / "res", device="cpu")
    labels = {p.stem.split("_", 2)[-1] for p in summary.images_dir.glob("*.png")}
    for direction in run.recipe.directions:
        assert "fake_" + direction.target in labels
    assert summary.count >= 2 and summary.page.exists()
    if summary.scores is not None:  # paired layouts and unpaired sets with *_gt folders
        assert summary.scores["count"] >= 1 and "margin_psnr" in summary.scores


def test_translate_an_image_a_tiled_image_and_a_video(run: Run, tmp_path):
    photo = save_photo(tmp_path / "photo.png", 40, 56)
    for direction in run.recipe.directions:
        whole = Translator.from_run(run.run_dir, direction=direction.name, tile=0)
        assert whole.info["directions"] == tuple(d.name for d in run.recipe.directions)
        out = whole(photo)
        assert out.size == (56, 40) and len(out.getbands()) == whole.output_nc
        # Tiles of 16 px with the default (receptive-field) margin give back the whole image.
        tiled = Translator.from_run(run.run_dir, direction=direction.name, tile=16)(photo)
        difference = np.abs(np.asarray(tiled, np.int16) - np.asarray(out, np.int16))
        assert difference.max() <= 1, f"{direction.name}: tiles differ from the whole image by {difference.max()}"
    pytest.importorskip("av")
    from cyclegan.inference.video import probe, translate_video

    clip = make_clip(tmp_path / "clip.mp4", frames=10, size=(48, 32), audio=False)
    summary = translate_video(Translator.from_run(run.run_dir), clip, tmp_path / "clip_fake.mp4")
    assert summary.frames == 10 and probe(summary.path)["frames"] == 10


def test_one_direction_runs_say_which_direction_they_have(run: Run):
    have = {d.name for d in run.recipe.directions}
    for missing in {"AtoB", "BtoA"} - have:
        with pytest.raises(ValueError, match=f"translates {'|'.join(have)} only"):
            Translator.from_run(run.run_dir, direction=missing)


def test_serve_page_translates_an_upload(run: Run, tmp_path):
    photo = save_photo(tmp_path / "up" / "upload.jpg", 24, 40, mode="L")  # a grey upload: any recipe reads it
    target = translate_upload(Translator.from_run(run.run_dir), photo, tmp_path)
    assert target.name.startswith("upload_fake") and Image.open(target).size == (40, 24)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_format(run: Run, fmt, tmp_path):
    result = run_export_model(run.run_dir, fmt=fmt, out_dir=tmp_path / fmt, height=32, width=32)
    if fmt == "reference":
        assert set(result["files"]) == set(load_checkpoint(run.run_dir / "latest.safetensors")["nets"])
    else:
        assert set(result["files"]) == {d.net for d in run.recipe.directions}
        assert max(result["parity"].values()) < 1e-4 and max(result["parity_dynamic"].values()) < 1e-4


def test_int8_is_calibrated_on_the_recipes_own_data(run: Run, tmp_path):
    pytest.importorskip("onnxruntime")
    result = run_export_model(run.run_dir, fmt="onnx", out_dir=tmp_path / "int8", height=32, width=32,
                              quantize="int8", calibration_images=4)
    assert set(result["int8_files"]) == {d.net for d in run.recipe.directions}
    assert result["calibration"]["images"] == 4 and run.config.data.dataset_mode in result["calibration"]["source"]
    assert min(result["int8_psnr"].values()) > 20  # random-ish 2-step weights: a loose bar, not a quality claim


def test_report_page(run: Run, tmp_path):
    page = write_run_report(run.run_dir, out=tmp_path / "report.html")
    assert run.recipe.title in Path(page).read_text() or run.model in Path(page).read_text()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("model", MODELS.names())
def test_demo_runs_for_every_recipe(model, tmp_path):
    result = run_demo(tmp_path / "demo", iters=2, device="cpu", seed=0, precision="fp32", model=model)
    assert result.iterations == 2 and result.results_page.exists() and result.training_page.exists()
    assert "margin_psnr" in result.scores and result.translator == MODELS.get(model).directions[0].net
    assert result.summary()
