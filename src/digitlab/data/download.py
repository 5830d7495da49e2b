"""Fetch MNIST from public mirrors, verified by sha256 (pooch), into a cache folder.

yann.lecun.com has answered 403/404 since 2021, so we try several mirrors in order and trust none: a file
is kept only if its hash matches the published one. pooch downloads to a temporary name and renames, so
an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from digitlab.errors import DigitlabError

SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def cache_dir() -> Path:
    """`$DIGITLAB_CACHE/mnist`, else the platform's user cache folder."""
    root = os.environ.get("DIGITLAB_CACHE")
    if root:
        return Path(root) / "mnist"
    import pooch  # with requests behind it: imported only when there is something to fetch

    return Path(pooch.os_cache("digitlab")) / "mnist"


def mirrors() -> list[str]:
    """The mirror list; `$DIGITLAB_MNIST_MIRRORS` (comma-separated base URLs) replaces it."""
    env = os.environ.get("DIGITLAB_MNIST_MIRRORS")
    urls = [u.strip() for u in env.split(",") if u.strip()] if env else list(MIRRORS)
    return [u if u.endswith("/") else u + "/" for u in urls]


def download_mnist(dest: str | os.PathLike | None = None, urls: list[str] | None = None) -> Path:
    """Make sure the four MNIST files are in `dest` with the right hashes, downloading what is missing."""
    dest = Path(dest) if dest is not None else cache_dir()
    urls = urls if urls is not None else mirrors()
    import pooch

    logging.getLogger("pooch").setLevel(logging.WARNING)
    for name, digest in SHA256.items():
        failures = []
        for base in urls:
            try:
                pooch.retrieve(base + name, known_hash=f"sha256:{digest}", fname=name, path=dest,
                               progressbar=False)
                break
            except ValueError as exc:  # pooch's hash mismatch: the mirror served something else
                failures.append(f"{base}: {str(exc).splitlines()[0][:120]}")
            except Exception as exc:  # network errors come from requests, in many types
                failures.append(f"{base}: {type(exc).__name__}")
        else:
            raise DigitlabError(
                f"could not download {name} from any mirror ({'; '.join(failures)}). If you are offline, "
                "point --data (or $DIGITLAB_DATA) at a folder holding the four MNIST *-ubyte.gz files"
            )
    return dest
