"""Bad input, table-driven, through the CLI: a clear message, and nothing an earlier run wrote is lost.

Every case runs `cyclegan train` (or `test`) against a copy of a finished run; afterwards that
run's checkpoint must be byte-for-byte what it was unless the case trains successfully.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.cli import main

from .conftest import code_pickle

TINY = ["--load_size", "36", "--crop_size", "32", "--ngf", "4", "--ndf", "4", "--netG", "resnet_6blocks",
        "--pool_size", "2", "--num_threads", "0", "--seed", "0", "--no_progress_bar", "--no_tensorboard",
        "--device", "cpu", "--save_epoch_freq", "1000"]


def image(path: Path, size=(40, 40), mode="RGB", seed=0, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    if mode == "P":
        img = img.quantize(16)
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(path, **save)
    return path


def good_folder(root: Path, side: str, n: int = 12) -> None:
    for i in range(n):
        image(root / f"train{side}" / f"{side}{i}.png", seed=i + (100 if side == "B" else 0))


def exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    image(path, size=(48, 40), exif=exif.tobytes(), format="JPEG")


def sixteen_bit(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).save(path)


def truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[:400])


@dataclass
class Case:
    name: str
    prepare: Callable[[Path], None]  # changes the data folder (starts with 12 good images per domain)
    flags: tuple[str, ...] = ()
    code: int = 0
    messages: tuple[str, ...] = ()  # each must appear in the output


CASES = [
    Case("missing dataroot", lambda d: shutil.rmtree(d), code=2, messages=("trainA", "<dataroot>/trainA")),
    Case("empty phase folder", lambda d: [p.unlink() for p in (d / "trainB").iterdir()], code=2,
         messages=("trainB",)),
    Case("non-image files are skipped and counted",
         lambda d: [(d / "trainA" / n).write_text("x") for n in ("notes.txt", "Thumbs.db")],
         messages=("skipped 2 non-image file(s)",)),
    Case("truncated jpeg", lambda d: truncated_jpeg(d / "trainA" / "broken.jpg"), messages=("broken.jpg",)),
    Case("zero-byte png", lambda d: (d / "trainA" / "empty.png").write_bytes(b""), messages=("empty.png",)),
    Case("text file named png", lambda d: (d / "trainB" / "fake.png").write_text("not an image"),
         messages=("fake.png",)),
    Case("too many bad files stop with the list",
         lambda d: [(d / "trainA" / f"bad{i}.png").write_bytes(b"") for i in range(3)], code=2,  # 3 of 15
         messages=("bad0.png", "bad2.png")),
    Case("1x1 image is upscaled", lambda d: image(d / "trainA" / "dot.png", size=(1, 1)), messages=("smaller than --crop_size 32 will be upscaled: dot.png (1×1)",)),
    Case("10000 px image", lambda d: image(d / "trainB" / "wide.png", size=(10000, 12))),
    Case("16-bit png", lambda d: sixteen_bit(d / "trainA" / "deep.png")),
    Case("palette png", lambda d: image(d / "trainA" / "pal.png", mode="P")),
    Case("cmyk jpeg", lambda d: image(d / "trainB" / "print.jpg", mode="CMYK")),
    Case("rgba png", lambda d: image(d / "trainA" / "alpha.png", mode="RGBA"), messages=("alpha",)),
    Case("exif-rotated jpeg", lambda d: exif_rotated(d / "trainA" / "phone.jpg")),
    Case("input_nc the data cannot give", lambda d: None, flags=("--input_nc", "2"), code=2, messages=("input_nc",)),
    Case("crop not a multiple of the generator's", lambda d: None, flags=("--crop_size", "30"), code=2,
         messages=("--crop_size 30 is not a multiple of 4", "use 28 or 32")),
    Case("checkpoint from another architecture", lambda d: None, flags=("--ngf", "8"), code=2,
         messages=("--ngf: saved 4, now 8",)),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    data = root / "data"
    good_folder(data, "A")
    good_folder(data, "B")
    assert main(["train", "--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(root / "ck"),
                 "--max_iters", "1", *TINY]) == 0
    return root


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, finished_run: Path, tmp_path: Path, capsys, caplog):
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    data, run_dir = tmp_path / "data", tmp_path / "ck" / "run"
    before = (run_dir / "latest.safetensors").read_bytes()
    case.prepare(data)
    flags = list(TINY)
    if "--ngf" in case.flags:  # the case's own value replaces the tiny one
        index = flags.index("--ngf")
        del flags[index:index + 2]
    with caplog.at_level("INFO"):
        code = main(["train", "--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(tmp_path / "ck"),
                     "--max_iters", "2", *flags, *case.flags])
    captured = capsys.readouterr()
    output = captured.out + captured.err + caplog.text
    assert code == case.code, output
    for message in case.messages:
        assert message in output, f"{message!r} not in output:\n{output}"
    if code != 0:  # a refused run leaves the earlier checkpoint exactly as it was
        assert (run_dir / "latest.safetensors").read_bytes() == before
        assert not list(run_dir.glob(".*.tmp"))


def test_html_pages_escape_file_names(finished_run: Path, tmp_path: Path):
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    data = tmp_path / "data"
    hostile = "x<script>alert('1')<b>\"q"
    image(data / "testA" / f"{hostile}.png")
    image(data / "testB" / "plain.png")
    assert main(["test", "--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(tmp_path / "ck"),
                 "--results_dir", str(tmp_path / "res"), "--device", "cpu"]) == 0
    page = (tmp_path / "res" / "run" / "test_latest" / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    training_page = (tmp_path / "ck" / "run" / "web" / "index.html").read_text()
    assert "<script>" not in training_page


def test_a_training_page_title_with_markup_is_escaped(tmp_path: Path):
    data = tmp_path / "data"
    good_folder(data, "A", 2)
    good_folder(data, "B", 2)
    name = 'run"<img src=x onerror=alert(1)>'
    assert main(["train", "--dataroot", str(data), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"),
                 "--max_iters", "2", "--display_freq", "1", *TINY]) == 0
    page = (tmp_path / "ck" / name / "web" / "index.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_a_checkpoint_pickle_carrying_code_is_refused_by_test(tmp_path: Path, capsys):
    marker = tmp_path / "executed"
    run = tmp_path / "ck" / "evil"
    run.mkdir(parents=True)
    (run / "latest_net_G.pth").write_bytes(code_pickle(marker, legacy=True))
    image(tmp_path / "in" / "a.png")
    code = main(["test", "--dataroot", str(tmp_path / "in"), "--name", "evil", "--checkpoints_dir",
                 str(tmp_path / "ck"), "--model", "test", "--dataset_mode", "single", "--device", "cpu",
                 "--results_dir", str(tmp_path / "results")])
    assert code == 2 and "refused to load" in capsys.readouterr().err
    assert not marker.exists()
