"""Published models by name (``fetch_pretrained``, behind ``translate / serve --pretrained``) and the
pix2pix catalogue of ``cyclegan download pretrained``, against test_download's local HTTP server
(127.0.0.1, a thread inside the test): the first use downloads into the cache and checks the file,
later uses do not ask the server, a bad file is refused and deleted, and the flags build the network
the file holds. No outside network."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.core.download import PIX2PIX_PRETRAINED, DownloadError
from cyclegan.inference.pretrained import PretrainedModel, fetch_pretrained, pretrained_names
from cyclegan.networks import define_G
from cyclegan.recipes.loading import load_generators

from . import test_download
from .conftest import code_pickle
from .test_download import FileServer

pytestmark = pytest.mark.timeout(60)

# test_download's loopback HTTP server, a fixture the tests below request by name.
server = test_download.server


def _state_bytes(net: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def _tiny_weights() -> bytes:
    """A weights-only state dict: all the download check asks of a generator file."""
    buffer = io.BytesIO()
    torch.save({"model.1.weight": torch.zeros(2, 3)}, buffer)
    return buffer.getvalue()


def _assert_same_weights(net: torch.nn.Module, reference: torch.nn.Module) -> None:
    loaded = net.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.slow  # a full-size generator (43 MB) built, served, checked and built again: over 2 s
def test_cyclegan_model_downloads_once_into_the_cache_and_loads(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The published files' size: resnet_9blocks at ngf 64 (random weights), so the flags must build it.
    torch.manual_seed(0)
    net = define_G(3, 3, 64, "resnet_9blocks", norm="instance")
    server.add("/pretrained_models/horse2zebra.pth", _state_bytes(net))
    monkeypatch.setenv("CYCLEGAN_DOWNLOAD_BASE", server.url)
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))

    first = fetch_pretrained("horse2zebra", progress=False)
    assert [r["path"] for r in server.requests] == ["/pretrained_models/horse2zebra.pth"]
    assert first.run_dir == tmp_path / "cache" / "pretrained" / "cycle_gan" / "horse2zebra_pretrained"
    assert sorted(p.name for p in first.run_dir.iterdir()) == ["latest_net_G.pth"]
    assert first.model == "test"
    m = first.flags.model
    assert (m.netG, m.ngf, m.norm, m.no_dropout, m.residual_output) == ("resnet_9blocks", 64, "instance", True, False)
    assert first.flags.run_dir == first.run_dir

    # Later uses read the cache: the server is not asked again.
    second = fetch_pretrained("horse2zebra", progress=False)
    assert second == first and len(server.requests) == 1

    loaded = load_generators(second.run_dir, "latest", names=("G",), flags=second.flags)
    _assert_same_weights(loaded.nets["G"], net)

    # The doors: `cyclegan translate --pretrained` (and serve, built on the same Translator) read the cache.
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((20, 28, 3), 90, np.uint8)).save(photo)
    assert main(["translate", str(photo), "--pretrained", "horse2zebra", "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "out" / "photo_fake.png").size == (28, 20) and len(server.requests) == 1


def test_cached_model_is_read_without_the_network(server: FileServer, tmp_path: Path) -> None:
    server.add("/pretrained_models/style_monet.pth", _tiny_weights())
    first = fetch_pretrained("style_monet", cache=tmp_path, base=server.url, progress=False)
    assert first.run_dir == tmp_path / "cycle_gan" / "style_monet_pretrained"
    # A base nobody listens on: any request would fail, so passing proves none was made.
    again = fetch_pretrained("style_monet", cache=tmp_path, base="http://127.0.0.1:9", progress=False)
    assert again.run_dir == first.run_dir and len(server.requests) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.model = "cut"  # type: ignore[misc]


@pytest.mark.parametrize("body", ["html", "code"])
def test_corrupt_file_is_refused_and_deleted(server: FileServer, tmp_path: Path, body: str) -> None:
    marker = tmp_path / "executed"
    bad = b"<html>503 Service Unavailable</html>" if body == "html" else code_pickle(marker)
    server.add("/pretrained_models/zebra2horse.pth", bad)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="not a usable generator"):
        fetch_pretrained("zebra2horse", cache=cache, base=server.url, progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()] and not marker.exists()
    # Nothing of the bad file is kept to be "resumed": the next call downloads the good one whole.
    server.add("/pretrained_models/zebra2horse.pth", _tiny_weights())
    path = fetch_pretrained("zebra2horse", cache=cache, base=server.url, progress=False).run_dir / "latest_net_G.pth"
    assert path.read_bytes() == _tiny_weights() and server.requests[-1]["range"] is None


def test_unknown_name_lists_every_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pretrained model 'horse2giraffe'") as info:
        fetch_pretrained("horse2giraffe", cache=tmp_path)
    for name in ("horse2zebra", "style_vangogh", "edges2shoes", "day2night", "cat2dog_fastcut"):
        assert name in str(info.value)
    names = pretrained_names()
    assert len(names) == len(set(names)) == 18 + 2 + 6  # sat2map, map2sat, facades_label2photo once
    assert set(PIX2PIX_PRETRAINED) == {"edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"}
    with pytest.raises(ValueError, match="unknown pix2pix pretrained model 'horse2zebra'; available: edges2shoes"):
        fetch_pretrained("horse2zebra", cache=tmp_path, paired=True)
    assert not tmp_path.joinpath("cycle_gan").exists() and not tmp_path.joinpath("pix2pix").exists()


def test_pix2pix_model_with_paired_and_its_flags(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reference's pix2pix architecture (unet_256, batch norm, dropout) at ngf 4 to stay small.
    torch.manual_seed(0)
    net = define_G(3, 3, 4, "unet_256", norm="batch", use_dropout=True)
    server.add("/pix2pix/models-pytorch/sat2map.pth", _state_bytes(net))
    server.add("/cyclegan/pretrained_models/sat2map.pth", _tiny_weights())
    monkeypatch.setenv("CYCLEGAN_PIX2PIX_DOWNLOAD_BASE", f"{server.url}/pix2pix")
    monkeypatch.setenv("CYCLEGAN_DOWNLOAD_BASE", f"{server.url}/cyclegan")

    paired = fetch_pretrained("sat2map", cache=tmp_path, paired=True, progress=False)
    assert server.requests[-1]["path"] == "/pix2pix/models-pytorch/sat2map.pth"
    assert paired.run_dir == tmp_path / "pix2pix" / "sat2map_pretrained" and paired.model == "pix2pix"
    m = paired.flags.model
    assert (m.model, m.netG, m.ngf, m.norm, m.no_dropout) == ("pix2pix", "unet_256", 64, "batch", False)
    small = dataclasses.replace(paired.flags, model=dataclasses.replace(m, ngf=4))
    loaded = load_generators(paired.run_dir, "latest", names=("G",), flags=small)
    _assert_same_weights(loaded.nets["G"], net)

    # The same name without paired is CycleGAN's, in its own cache folder: both stay.
    cyclegan = fetch_pretrained("sat2map", cache=tmp_path, progress=False)
    assert server.requests[-1]["path"] == "/cyclegan/pretrained_models/sat2map.pth"
    assert cyclegan.run_dir == tmp_path / "cycle_gan" / "sat2map_pretrained" and cyclegan.model == "test"
    assert (paired.run_dir / "latest_net_G.pth").read_bytes() == _state_bytes(net)

    # A name only pix2pix publishes needs no paired; facades_label2photo reads its data set BtoA.
    server.add("/pix2pix/models-pytorch/facades_label2photo.pth", _tiny_weights())
    facades = fetch_pretrained("facades_label2photo", cache=tmp_path, paired=True, progress=False)
    assert facades.flags.data.direction == "BtoA" and paired.flags.data.direction == "AtoB"
    server.add("/pix2pix/models-pytorch/edges2shoes.pth", _tiny_weights())
    assert fetch_pretrained("edges2shoes", cache=tmp_path, progress=False).model == "pix2pix"


def test_download_pretrained_paired_cli(server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    server.add("/models-pytorch/map2sat.pth", _tiny_weights())
    server.add("/models-pytorch/day2night.pth", _tiny_weights())
    server.add("/pretrained_models/map2sat.pth", _tiny_weights())
    ckpt = tmp_path / "checkpoints"
    common = ["--checkpoints_dir", str(ckpt), "--base", server.url]

    assert main(["download", "pretrained", "map2sat", "--paired", *common]) == 0
    assert server.requests[-1]["path"] == "/models-pytorch/map2sat.pth"
    out = capsys.readouterr().out
    assert "--model pix2pix --direction BtoA" in out
    assert str(ckpt / "map2sat_pretrained" / "latest_net_G.pth") in out
    assert (ckpt / "map2sat_pretrained" / "latest_net_G.pth").read_bytes() == _tiny_weights()

    # pix2pix-only names are pix2pix's without --paired; shared ones are CycleGAN's without it.
    assert main(["download", "pretrained", "day2night", *common]) == 0
    assert server.requests[-1]["path"] == "/models-pytorch/day2night.pth"
    assert main(["download", "pretrained", "map2sat", "--checkpoints_dir", str(tmp_path / "c2"),
                 "--base", server.url]) == 0
    assert server.requests[-1]["path"] == "/pretrained_models/map2sat.pth"
    assert "--model test" in capsys.readouterr().out

    # --paired with a name pix2pix does not publish: an error naming pix2pix's list, nothing asked.
    asked = len(server.requests)
    assert main(["download", "pretrained", "horse2zebra", "--paired", *common]) == 2
    assert "available: edges2shoes" in capsys.readouterr().err and len(server.requests) == asked


def test_cut_model_flags_follow_the_name(server: FileServer, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:  # CUT's one plain tar for every model
        for name in ("horse2zebra_cut", "horse2zebra_fastcut"):
            data = _tiny_weights()
            info = tarfile.TarInfo(f"checkpoints/{name}_pretrained/latest_net_G.pth")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    server.add("/CUT/pretrained_models.tar", buffer.getvalue())

    fast = fetch_pretrained("horse2zebra_fastcut", cache=tmp_path, base=f"{server.url}/CUT", progress=False)
    assert isinstance(fast, PretrainedModel)
    assert fast.run_dir == tmp_path / "cut" / "horse2zebra_fastcut_pretrained" and fast.model == "cut"
    assert (fast.flags.model.model, fast.flags.cut.CUT_mode) == ("cut", "FastCUT")
    # The tar brought both: the other mode is read from the cache.
    cut = fetch_pretrained("horse2zebra_cut", cache=tmp_path, base=f"{server.url}/CUT", progress=False)
    assert cut.flags.cut.CUT_mode == "CUT" and len(server.requests) == 1
    with pytest.raises(ValueError, match="unknown pix2pix pretrained model 'horse2zebra_cut'"):
        fetch_pretrained("horse2zebra_cut", cache=tmp_path, paired=True)
