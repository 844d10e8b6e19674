"""Tests for cyclegan.data: listing, decoding rules, bad files, transforms and the data set modes."""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import DataConfig
from cyclegan.data import (
    BadImageError,
    DatasetError,
    EpochSampler,
    create_dataloader,
    create_dataset,
    epoch_order,
    get_params,
    get_transform,
    is_image_file,
    list_images,
    load_image,
    scan_images,
)
from cyclegan.data import images as images_module


def noise(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def save_rgb(path: Path, h: int = 20, w: int = 24, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(h, w, seed)).save(path)
    return path


def make_unaligned(root: Path, n_a: int = 5, n_b: int = 3, size: tuple[int, int] = (40, 36)) -> Path:
    for i in range(n_a):
        save_rgb(root / "trainA" / f"a{i}.png", size[1], size[0], seed=i)
    for i in range(n_b):
        save_rgb(root / "trainB" / f"b{i}.png", size[1], size[0], seed=100 + i)
    return root


def config(root: Path, **kw: object) -> DataConfig:
    base: dict[str, object] = dict(
        dataroot=str(root), load_size=36, crop_size=32, num_threads=0, batch_size=2
    )
    base.update(kw)
    return DataConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- listing


def test_is_image_file_case_insensitive() -> None:
    for name in ["a.JPG", "b.jpeg", "c.Png", "d.bmp", "e.TIF", "f.tiff", "g.WebP"]:
        assert is_image_file(name)
    assert not is_image_file("notes.txt")
    assert not is_image_file("png")


def test_list_images_recursive_sorted_and_counts_skipped(tmp_path: Path) -> None:
    save_rgb(tmp_path / "b.png")
    save_rgb(tmp_path / "a.JPG")
    save_rgb(tmp_path / "sub" / "c.bmp")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub" / "meta.json").write_text("{}")
    paths, skipped = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a.JPG", "b.png", "sub/c.bmp"]
    assert skipped == 2
    limited, _ = list_images(tmp_path, max_dataset_size=2)
    assert limited == paths[:2]


def test_missing_folder_names_folder_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        list_images(tmp_path / "trainA")
    message = str(info.value)
    assert str(tmp_path / "trainA") in message and "trainB" in message and "testA" in message
    assert isinstance(info.value, ValueError)


def test_folder_without_images_errors(tmp_path: Path) -> None:
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainA" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images.*trainA.*testB"):
        list_images(tmp_path / "trainA")


# ---------------------------------------------------------------- decoding rules


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tif", "webp"])
def test_formats_load_rgb_and_gray(tmp_path: Path, ext: str) -> None:
    path = save_rgb(tmp_path / f"x.{ext}", h=10, w=14)
    rgb = load_image(path, 3)
    assert rgb.mode == "RGB" and rgb.size == (14, 10)
    gray = load_image(path, 1)
    assert gray.mode == "L" and gray.size == (14, 10)


def test_rgb_png_lossless_and_luma_rule(tmp_path: Path) -> None:
    arr = noise(6, 5)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    assert np.array_equal(np.asarray(load_image(path, 3)), arr)
    gray = np.asarray(load_image(path, 1)).astype(float)
    luma = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    assert np.abs(gray - luma).max() <= 1.0


def test_grayscale_replicated_to_rgb(tmp_path: Path) -> None:
    arr = noise(6, 5, channels=1)
    path = tmp_path / "g.png"
    Image.fromarray(arr).save(path)
    rgb = np.asarray(load_image(path, 3))
    assert rgb.shape == (6, 5, 3)
    for c in range(3):
        assert np.array_equal(rgb[..., c], arr)
    assert np.array_equal(np.asarray(load_image(path, 1)), arr)


def test_sixteen_bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(load_image(path, 1))
    # 1000 / 257 = 3.9: clipping would give 255 and a high-byte shift 3.
    assert out.tolist() == [[0, 1, 4, 128, 255]]
    assert np.asarray(load_image(path, 3))[0, 2].tolist() == [4, 4, 4]


def test_palette_expanded_through_palette(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2))
    palette = [0] * 768
    palette[3:6] = [10, 200, 30]
    img.putpalette(palette)
    img.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    img.save(path)
    rgb = np.asarray(load_image(path, 3))
    assert rgb[0, 1].tolist() == [10, 200, 30] and rgb[0, 0].tolist() == [0, 0, 0]


def test_alpha_dropped_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images_module, "_alpha_warned", False)
    arr = noise(4, 4, channels=4)
    arr[..., 3] = 0  # fully transparent: the colour must still be kept, not blacked out
    for name in ("a.png", "b.png"):
        Image.fromarray(arr).save(tmp_path / name)  # a 4-channel uint8 array is RGBA
    Image.fromarray(noise(4, 4, channels=2)).save(tmp_path / "la.png")  # 2 channels: LA
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = load_image(tmp_path / "a.png", 3)
        load_image(tmp_path / "b.png", 3)
        gray = load_image(tmp_path / "la.png", 1)
    alpha_warnings = [w for w in caught if "alpha" in str(w.message)]
    assert len(alpha_warnings) == 1
    assert first.mode == "RGB" and np.array_equal(np.asarray(first), arr[..., :3])
    assert gray.mode == "L"


def test_cmyk_jpeg_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    rgb = load_image(path, 3)
    assert rgb.mode == "RGB" and rgb.size == (8, 6)
    r, g, b = np.asarray(rgb)[3, 4].tolist()
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :10] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    img = np.asarray(load_image(path, 3))
    assert img.shape == (40, 20, 3)
    # Rotating 90 degrees clockwise moves the left band to the top.
    assert img[:8].mean() > 200 and img[12:].mean() < 50


def test_truncated_jpeg_raises_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.fromarray(noise(64, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError) as info:
        load_image(path, 3)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_zero_byte_and_text_png_raise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image at all")
    with pytest.raises(BadImageError, match="empty.png.*empty"):
        load_image(empty, 3)
    with pytest.raises(BadImageError, match="text.png"):
        load_image(text, 3)


def test_bad_image_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(BadImageError("/x/y.png", "truncated")))
    assert error.path == "/x/y.png" and "y.png" in str(error) and "truncated" in str(error)


def test_scan_images_skips_and_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = [save_rgb(tmp_path / f"g{i}.png", seed=i) for i in range(9)]
    bad = tmp_path / "bad.png"
    bad.write_text("junk")
    paths = sorted([*good, bad])
    with caplog.at_level("WARNING"):
        kept = scan_images(paths, max_bad_fraction=0.1)
    assert kept == sorted(good)
    assert "bad.png" in caplog.text
    with pytest.raises(DatasetError, match="bad.png"):
        scan_images(paths, max_bad_fraction=0.05)


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    ("preprocess", "size", "expected"),
    [
        ("resize_and_crop", (50, 30), (32, 32)),
        ("crop", (50, 40), (32, 32)),
        ("scale_width", (72, 30), (32, 36)),  # width 36, height max(36 * 30 / 72, 32)
        ("scale_width", (36, 72), (72, 36)),
        ("scale_width_and_crop", (72, 90), (32, 32)),
        ("none", (50, 30), (32, 48)),  # multiples of 4 by Python round, as the reference: 12.5 -> 12
    ],
)
def test_preprocess_output_shapes(preprocess: str, size: tuple[int, int], expected: tuple[int, int]) -> None:
    cfg = DataConfig(preprocess=preprocess, load_size=36, crop_size=32)
    img = Image.fromarray(noise(size[1], size[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "none" warns about the rounding
        out = get_transform(cfg)(img)
        gray = get_transform(cfg, grayscale=True)(img)
    assert out.shape == (3, *expected) and out.dtype == torch.float32
    assert gray.shape == (1, *expected)
    assert type(out) is torch.Tensor
    assert -1.0 <= out.min() < -0.5 and 0.5 < out.max() <= 1.0


def test_unknown_preprocess_lists_known() -> None:
    with pytest.raises(ValueError, match="resize_and_crop.*scale_width"):
        get_transform(DataConfig(preprocess="zoom"))


def test_small_image_upscaled_with_warning() -> None:
    cfg = DataConfig(preprocess="crop", crop_size=32)
    img = Image.fromarray(noise(10, 20))
    with pytest.warns(UserWarning, match="smaller than crop_size"):
        out = get_transform(cfg)(img)
    assert out.shape == (3, 32, 32)


def test_get_params_fixed_crop_and_flip() -> None:
    cfg = DataConfig(preprocess="resize_and_crop", load_size=40, crop_size=32)
    params = get_params(cfg, (100, 60), random.Random(3))
    x, y = params["crop_pos"]
    assert 0 <= x <= 8 and 0 <= y <= 8 and isinstance(params["flip"], bool)
    assert get_params(cfg, (100, 60), random.Random(3)) == params
    img = Image.fromarray(noise(40, 40))
    fixed = get_transform(cfg, params={"crop_pos": (5, 2), "flip": True}, convert=False)(img)
    expected = img.crop((5, 2, 37, 34)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert np.array_equal(np.asarray(fixed), np.asarray(expected))


# ---------------------------------------------------------------- data sets


def test_unaligned_item_is_pure_function_of_seed_epoch_index(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path)
    ds = create_dataset(config(root), seed=7)
    assert len(ds) == 5
    state = torch.get_rng_state()
    ds.set_epoch(2)
    first = ds[3]
    other = create_dataset(config(root), seed=7)
    _ = other[(5, 1)], other[(2, 0)]  # fetching other items first must not matter
    again = other[(2, 3)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    assert first["A_paths"] == again["A_paths"] and first["B_paths"] == again["B_paths"]
    assert torch.equal(first["A"], again["A"]) and torch.equal(first["B"], again["B"])
    assert first["A_paths"].endswith("a3.png")
    # Over epochs the random B choice and crops change.
    b_choices = {ds[(e, 3)]["B_paths"] for e in range(20)}
    crops = {ds[(e, 3)]["A"].sum().item() for e in range(6)}
    assert len(b_choices) > 1 and len(crops) > 1
    # Picklable (DataLoader workers started with spawn) and still the same function after the trip.
    copied = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copied[(2, 3)]["B"], first["B"])
    different_seed = create_dataset(config(root), seed=8)
    assert not torch.equal(different_seed[(2, 3)]["A"], first["A"])


def test_unaligned_serial_batches(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path)
    ds = create_dataset(config(root, serial_batches=True))
    for i in range(len(ds)):
        item = ds[i]
        assert Path(item["A_paths"]).name == f"a{i % 5}.png"
        assert Path(item["B_paths"]).name == f"b{i % 3}.png"
    assert epoch_order(5, 0, 0, shuffle=False) == [0, 1, 2, 3, 4]


def test_unaligned_direction_btoa_swaps_channels(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path)
    ab = create_dataset(config(root, input_nc=1, output_nc=3))[0]
    assert ab["A"].shape[0] == 1 and ab["B"].shape[0] == 3
    ba = create_dataset(config(root, input_nc=1, output_nc=3, direction="BtoA"))[0]
    # As in the reference: keys stay the folders, the channel counts swap, the model swaps roles.
    assert ba["A"].shape[0] == 3 and ba["B"].shape[0] == 1
    assert Path(ba["A_paths"]).parent.name == "trainA"


def test_bad_channel_count_is_clear(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path)
    with pytest.raises(ValueError, match="input_nc=4"):
        create_dataset(config(root, input_nc=4))


def test_unknown_dataset_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aligned.*single.*unaligned"):
        create_dataset(config(tmp_path, dataset_mode="paired"))


def test_unaligned_skips_bad_files_and_counts(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path, n_a=10)
    (root / "trainA" / "broken.png").write_bytes(b"")
    (root / "trainA" / "notes.txt").write_text("x")
    ds = create_dataset(config(root))
    assert ds.A_size == 10 and ds.skipped_bad == 1 and ds.skipped_non_images == 1
    with pytest.raises(DatasetError, match="broken.png"):
        create_dataset(config(root, max_bad_fraction=0.0))


def test_aligned_shares_crop_and_flip(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    for i in range(3):
        half = noise(40, 40, seed=i)
        Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "train" / f"p{i}.png")
    ds = create_dataset(config(tmp_path, dataset_mode="aligned", preprocess="crop", crop_size=24), seed=1)
    assert len(ds) == 3
    seen = set()
    for epoch in range(8):
        item = ds[(epoch, 0)]
        assert item["A"].shape == (3, 24, 24)
        assert torch.equal(item["A"], item["B"])  # identical halves stay identical: same crop and flip
        seen.add(item["A"].sum().item())
    assert len(seen) > 1  # the shared crop does vary
    assert torch.equal(ds[(4, 2)]["A"], ds[(4, 2)]["A"])


def test_single_dataset(tmp_path: Path) -> None:
    for i in range(3):
        save_rgb(tmp_path / "imgs" / f"s{i}.jpg", 40, 40, seed=i)
    ds = create_dataset(config(tmp_path / "imgs", dataset_mode="single", preprocess="none", no_flip=True))
    item = ds[1]
    assert set(item) == {"A", "A_paths"} and item["A"].shape == (3, 40, 40)
    assert item["A_paths"].endswith("s1.jpg")


def test_epoch_order_and_sampler() -> None:
    order = epoch_order(10, seed=3, epoch=1, shuffle=True)
    assert sorted(order) == list(range(10)) and order == epoch_order(10, 3, 1, True)
    assert order != epoch_order(10, 3, 2, True)
    sampler = EpochSampler(10, seed=3, shuffle=True, epoch=1, start=4)
    assert list(sampler) == [(1, i) for i in order[4:]] and len(sampler) == 6


def test_dataloader_workers_match_in_process(tmp_path: Path) -> None:
    root = make_unaligned(tmp_path)
    cfg = config(root)
    ds = create_dataset(cfg, seed=5)

    def collect(workers: int) -> list[torch.Tensor]:
        loader = create_dataloader(ds, cfg, shuffle=True, seed=5, num_workers=workers)
        loader.sampler.set_epoch(3, start=1)  # type: ignore[attr-defined]
        return [batch["A"] for batch in loader] + [batch["B"] for batch in loader]

    serial, parallel = collect(0), collect(2)
    assert [t.shape[0] for t in serial[:2]] == [2, 2]  # 4 items left after start=1, batches of 2
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
