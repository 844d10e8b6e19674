"""The downloader against a local HTTP server (127.0.0.1, a thread inside the test): checksums, resume
with Range, a server that ignores Range, zip path traversal, the offline message, and where data sets
and pretrained generators land. No outside network."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from cyclegan.core import download as dl
from cyclegan.core.download import (
    DownloadError,
    download,
    download_dataset,
    download_inception,
    download_pretrained,
    safe_extract,
)

from .conftest import code_pickle

pytestmark = pytest.mark.timeout(60)


@dataclass
class FileServer:
    """In-memory files over HTTP with optional Range support; records what was asked and sent."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return f"{self.url}{path}"


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            data = state.files.get(self.path)
            rng = self.headers.get("Range")
            record = {"path": self.path, "range": rng, "sent": 0, "status": None}
            state.requests.append(record)
            if data is None:
                record["status"] = 404
                self.send_error(404)
                return
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and state.honour_range:
                start = int(m.group(1))
                if start >= len(data):
                    record["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                record["status"] = 206
            else:
                body = data
                self.send_response(200)
                record["status"] = 200
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes" if state.honour_range else "none")
            self.end_headers()
            self.wfile.write(body)
            record["sent"] = len(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks


def test_download_and_checksum(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/f.bin", PAYLOAD)
    dest = download(url, tmp_path / "sub" / "f.bin", sha256=_sha(PAYLOAD), progress=False, timeout=10)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    # Present and matching: nothing is requested again.
    n = len(server.requests)
    download(url, dest, sha256=_sha(PAYLOAD)[:8], progress=False, timeout=10)
    assert len(server.requests) == n


def test_resume_requests_only_missing_bytes(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:100_000])
    download(url, dest, sha256=_sha(PAYLOAD), progress=False, timeout=10)
    assert dest.read_bytes() == PAYLOAD
    (req,) = server.requests
    assert req["range"] == "bytes=100000-" and req["status"] == 206
    assert req["sent"] == len(PAYLOAD) - 100_000


def test_server_ignoring_range_restarts_cleanly(server: FileServer, tmp_path: Path) -> None:
    server.honour_range = False
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    # A partial file whose bytes are wrong: appending the whole body to it would corrupt the result.
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 5000)
    download(url, dest, sha256=_sha(PAYLOAD), progress=False, timeout=10)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0]["range"] == "bytes=5000-" and server.requests[0]["status"] == 200


def test_oversized_partial_file_restarts(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/f.bin", PAYLOAD[:1000])
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)  # longer than the file: 416, then from scratch
    download(url, tmp_path / "f.bin", progress=False, timeout=10)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD[:1000]
    assert [r["status"] for r in server.requests] == [416, 200]


def test_checksum_mismatch_deletes_and_errors(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(url, dest, sha256="0" * 64, progress=False, timeout=10)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(ValueError, match="hex"):
        download(url, dest, sha256="not-a-digest", progress=False)


def test_http_error_and_offline_message(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.bin", tmp_path / "m.bin", progress=False, timeout=10)
    # A local port nobody listens on: connection refused, like an unreachable host, without network.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/f.bin"
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.bin", progress=False, timeout=5)
    msg = str(info.value)
    assert url in msg and "offline" in msg and str(tmp_path / "f.bin") in msg
    assert not (tmp_path / "f.bin").exists()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "x/../../evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_path_traversal_rejected(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"ok/a.txt": b"a", bad: b"evil"}))
    with pytest.raises(DownloadError, match="leaves the destination"):
        safe_extract(archive, tmp_path / "out")
    # Checked before writing anything: not even the good member was unpacked.
    assert not (tmp_path / "out" / "ok").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        z.writestr(info, "/etc/passwd")
    (tmp_path / "l.zip").write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="symbolic links"):
        safe_extract(tmp_path / "l.zip", tmp_path / "out")


def test_dataset_layout(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {f"horse2zebra/{split}/{i}.jpg": b"jpeg%d" % i for split in ("trainA", "trainB", "testA", "testB")
               for i in range(2)}
    entries["__MACOSX/horse2zebra/._x"] = b"junk"
    server.add("/datasets/horse2zebra.zip", _zip(entries))
    monkeypatch.setenv("CYCLEGAN_DOWNLOAD_BASE", server.url + "/")
    root = tmp_path / "datasets"
    out = download_dataset("horse2zebra", root, progress=False)
    assert out == root / "horse2zebra"
    for split in ("trainA", "trainB", "testA", "testB"):
        assert sorted(p.name for p in (out / split).iterdir()) == ["0.jpg", "1.jpg"]
    # The zip and the temporary unpack folder are gone; only the data set remains.
    assert sorted(p.name for p in root.iterdir()) == ["horse2zebra"]
    assert server.requests[0]["path"] == "/datasets/horse2zebra.zip"
    # Present: returned without a request.
    n = len(server.requests)
    assert download_dataset("horse2zebra", root, progress=False) == out and len(server.requests) == n
    with pytest.raises(ValueError, match="available: apple2orange"):
        download_dataset("nope", root)


def test_dataset_zip_without_its_folder(server: FileServer, tmp_path: Path) -> None:
    server.add("/datasets/maps.zip", _zip({"other/trainA/a.jpg": b"x"}))
    with pytest.raises(DownloadError, match="does not hold a maps/ folder"):
        download_dataset("maps", tmp_path, base=server.url, progress=False)
    assert not (tmp_path / "maps").exists()


def test_pretrained_lands_where_cyclegan_test_finds_it(server: FileServer, tmp_path: Path) -> None:
    from cyclegan.config import ModelConfig, TrainConfig
    from cyclegan.networks import define_G
    from cyclegan.recipes.loading import load_generators

    net = define_G(3, 3, 4, "resnet_6blocks", norm="instance", use_dropout=False)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    server.add("/pretrained_models/horse2zebra.pth", buffer.getvalue())
    ckpt = tmp_path / "checkpoints"
    path = download_pretrained("horse2zebra", ckpt, base=server.url, progress=False)
    assert path == ckpt / "horse2zebra_pretrained" / "latest_net_G.pth"
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest_net_G.pth"]
    # What `cyclegan test --name horse2zebra_pretrained --model test --no_dropout --netG resnet_6blocks
    # --ngf 4` does to load it: the reference's file layout, weights only.
    flags = TrainConfig(model=ModelConfig(netG="resnet_6blocks", ngf=4, no_dropout=True))
    loaded = load_generators(path.parent, names=("G",), flags=flags)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.nets["G"].state_dict()[key], value)


def test_pretrained_refuses_pickled_code(server: FileServer, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    server.add("/pretrained_models/style_monet.pth", code_pickle(marker))
    with pytest.raises(DownloadError, match="not a usable generator"):
        download_pretrained("style_monet", tmp_path, base=server.url, progress=False)
    assert not any(tmp_path.rglob("*.pth")) and not marker.exists()


def test_inception_into_cache(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in with the Inception layer names (the real file is 95 MB and comes from the network).
    buffer = io.BytesIO()
    torch.save({k: torch.zeros(2) for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight",
                                             "fc.weight", "fc.bias")}, buffer)
    data = buffer.getvalue()
    url = server.add("/weights-inception.pth", data)
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    path = download_inception(url=url, sha256=_sha(data), progress=False)
    assert path == tmp_path / "cache" / "inception" / "pt_inception-2015-12-05-6726825d.pth"
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    # The FID code finds it there without being told.
    from cyclegan.metrics.fid import resolve_inception_weights

    assert resolve_inception_weights() == path
    # Something else served under that URL (an HTML error page, another network) is refused and deleted.
    bad = server.add("/other.pth", b"<html>not weights</html>")
    with pytest.raises(DownloadError, match="not the FID Inception-v3"):
        download_inception(cache=tmp_path / "other", url=bad, progress=False)
    assert not any((tmp_path / "other").rglob("*.pth*"))


def test_inception_url_matches_torch_fidelity() -> None:
    tf = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    assert tf.URL_INCEPTION_V3 == dl.INCEPTION_URL
    assert dl.INCEPTION_URL.rsplit("-", 1)[1].startswith(dl.INCEPTION_SHA256_PREFIX)


def test_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYCLEGAN_DOWNLOAD_BASE", raising=False)
    assert len(dl.DATASETS) == 13 and "grumpifycat" in dl.DATASETS
    assert len(dl.PRETRAINED) == 18 and "style_vangogh" in dl.PRETRAINED
    assert dl.base_url(None).startswith("http://efrosgans.eecs.berkeley.edu/cyclegan")


def _tar(entries: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar archive (gzipped; ``mode="w"``: plain, as CUT's pretrained_models.tar is)."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pix2pix_dataset_layout(server: FileServer, tmp_path: Path) -> None:
    """The reference's download_pix2pix_dataset.sh: <base>/datasets/<name>.tar.gz → <root>/<name>/train ..."""
    entries = {f"facades/{split}/{i}.jpg": b"jpeg%d" % i for split in ("train", "val", "test") for i in range(2)}
    server.add("/datasets/facades.tar.gz", _tar(entries))
    root = tmp_path / "datasets"
    out = dl.download_pix2pix_dataset("facades", root, base=server.url, progress=False)
    assert out == root / "facades"
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (out / split).iterdir()) == ["0.jpg", "1.jpg"]
    assert sorted(p.name for p in root.iterdir()) == ["facades"]  # archive and temporary folder gone
    assert server.requests[0]["path"] == "/datasets/facades.tar.gz"
    assert set(dl.PIX2PIX_DATASETS) == {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    with pytest.raises(ValueError, match="available: cityscapes"):
        dl.download_pix2pix_dataset("horse2zebra", root)


def test_pix2pix_cli_picks_the_paired_archive(server: FileServer, tmp_path: Path) -> None:
    from cyclegan.cli import main

    server.add("/datasets/edges2shoes.tar.gz", _tar({"edges2shoes/train/1.jpg": b"x"}))
    assert main(["download", "dataset", "edges2shoes", "--root", str(tmp_path), "--base", server.url]) == 0
    assert (tmp_path / "edges2shoes" / "train" / "1.jpg").read_bytes() == b"x"
    server.add("/datasets/maps.tar.gz", _tar({"maps/train/1.jpg": b"y"}))
    assert main(["download", "dataset", "maps", "--paired", "--root", str(tmp_path), "--base", server.url]) == 0
    assert server.requests[-1]["path"] == "/datasets/maps.tar.gz" and (tmp_path / "maps" / "train").is_dir()


@pytest.mark.parametrize("bad", ["../evil.jpg", "/abs/evil.jpg"])
def test_tar_path_traversal_rejected(tmp_path: Path, bad: str) -> None:
    (tmp_path / "bad.tar.gz").write_bytes(_tar({bad: b"x"}))
    with pytest.raises(DownloadError, match="leaves the destination"):
        dl.safe_extract_tar(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert not (tmp_path / "evil.jpg").exists()


def test_cut_pretrained_tar_unpacks_every_generator_where_cyclegan_test_finds_it(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """CUT's one tar (checkpoints/<name>_pretrained/latest_net_G.pth inside) → every generator in place;
    `cyclegan test --model cut` then loads it with CUT's test flags."""
    from cyclegan.cli import main
    from cyclegan.recipes.cut.objective import CUTConfig, build_generator
    from cyclegan.recipes.loading import load_generators

    torch.manual_seed(0)
    generators = {name: build_generator(CUTConfig(netG="resnet_6blocks", ngf=4)) for name in ("horse2zebra_cut",
                                                                                            "horse2zebra_fastcut")}
    entries = {}
    for name, net in generators.items():
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        entries[f"checkpoints/{name}_pretrained/latest_net_G.pth"] = buffer.getvalue()
    server.add("/CUT/pretrained_models.tar", _tar(entries, mode="w"))
    ckpt = tmp_path / "checkpoints"
    assert main(["download", "pretrained", "horse2zebra_fastcut", "--checkpoints_dir", str(ckpt),
                 "--base", f"{server.url}/CUT"]) == 0
    assert "--model cut --CUT_mode FastCUT" in capsys.readouterr().out
    assert sorted(p.name for p in ckpt.iterdir()) == ["horse2zebra_cut_pretrained", "horse2zebra_fastcut_pretrained"]
    # Already unpacked: no second download.
    assert dl.download_cut_pretrained("horse2zebra_cut", ckpt, base=f"{server.url}/CUT", progress=False) == (
        ckpt / "horse2zebra_cut_pretrained" / "latest_net_G.pth")
    assert len(server.requests) == 1
    from cyclegan.recipes import default_config

    flags = default_config("cut")
    flags.model.netG, flags.model.ngf = "resnet_6blocks", 4
    loaded = load_generators(ckpt / "horse2zebra_fastcut_pretrained", flags=flags)
    for key, value in generators["horse2zebra_fastcut"].state_dict().items():
        assert torch.equal(loaded.nets["G"].state_dict()[key], value)
    with pytest.raises(ValueError, match="available: horse2zebra_cut"):
        dl.download_cut_pretrained("horse2zebra", ckpt)


def test_cut_pretrained_refuses_pickled_code_and_a_tar_without_the_model(server: FileServer, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    server.add("/CUT/pretrained_models.tar", _tar(mode="w", entries={
        "checkpoints/cat2dog_cut_pretrained/latest_net_G.pth": code_pickle(marker)}))
    with pytest.raises(DownloadError, match="not a usable state dict"):
        dl.download_cut_pretrained("cat2dog_cut", tmp_path / "a", base=f"{server.url}/CUT", progress=False)
    assert not any((tmp_path / "a").rglob("*.pth")) and not marker.exists()
    assert not any((tmp_path / "a").rglob("*.tar"))  # deleted: the next try downloads it again
    with pytest.raises(DownloadError, match="holds no cityscapes_cut_pretrained"):
        dl.download_cut_pretrained("cityscapes_cut", tmp_path / "b", base=f"{server.url}/CUT", progress=False)
