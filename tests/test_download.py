"""The downloader against mirrors on 127.0.0.1: a good one, a corrupted one, a dead one. Never the internet."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitlab.data import download
from digitlab.errors import DigitlabError
from tests.conftest import MNIST


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two local HTTP mirrors: 'good' serves the real files, 'bad' serves a corrupted train-images file."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for name in download.SHA256:
        data = (MNIST / name).read_bytes()
        (good / name).write_bytes(data)
        (bad / name).write_bytes(data[:-10] + b"corrupted!" if name.startswith("train-images") else data)
    servers, urls = [], {}
    for label, folder in (("good", good), ("bad", bad)):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[label] = f"http://127.0.0.1:{server.server_address[1]}/"
    urls["dead"] = "http://127.0.0.1:9/"
    yield urls
    for server in servers:
        server.shutdown()


def test_download_verifies_and_falls_back(tmp_path: Path, mirrors: dict[str, str]) -> None:
    dest = tmp_path / "cache"
    download.download_mnist(dest, [mirrors["dead"], mirrors["bad"], mirrors["good"]])
    for name in download.SHA256:
        assert (dest / name).read_bytes() == (MNIST / name).read_bytes()


def test_corrupted_mirror_is_rejected(tmp_path: Path, mirrors: dict[str, str]) -> None:
    dest = tmp_path / "cache"
    with pytest.raises(DigitlabError, match="train-images-idx3-ubyte.gz.*point --data"):
        download.download_mnist(dest, [mirrors["bad"]])
    assert not (dest / "train-images-idx3-ubyte.gz").exists()  # never kept, not even half
    assert not [p for p in dest.iterdir() if p.name.startswith("train-images")]


def test_offline_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match="offline.*DIGITLAB_DATA"):
        download.download_mnist(tmp_path / "cache", ["http://127.0.0.1:9/"])


def test_resolution_downloads_into_cache(tmp_path: Path, mirrors: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from digitlab.data import load

    monkeypatch.chdir(tmp_path)  # no ./data/mnist here
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("DIGITLAB_MNIST_MIRRORS", mirrors["good"])
    test = load(None, "test")
    assert len(test) == 10000 and (tmp_path / "c" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
