"""Read and un-gzip the MNIST files in a thread while `import torch` still runs.

`digitlab train` spends its first seconds importing torch, with the CPU mostly idle in between; the data
it will need next can be read meanwhile (zlib releases the GIL while it inflates). Best effort: only an
MNIST folder's .gz files are prefetched, and any problem is left for the normal reader to report.
This module imports nothing heavy on purpose.
"""

from __future__ import annotations

import gzip
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
_pending: dict[Path, Future[bytes]] = {}


def start(data: str | None) -> None:
    """Begin reading the IDX files that `--data` (or its default) resolves to, if it is an MNIST folder."""
    folder = Path(data) if data else Path(os.environ.get("DIGITLAB_DATA") or "data/mnist")
    paths = [folder / name for name in NAMES if (folder / name).is_file()]
    if not paths:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-prefetch")
    for path in paths:
        _pending[path.resolve()] = pool.submit(lambda p=path: gzip.decompress(p.read_bytes()))
    pool.shutdown(wait=False)


def take(path: Path) -> bytes | None:
    """The decompressed bytes of `path` if they were prefetched and read cleanly, else None."""
    future = _pending.pop(path.resolve(), None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001 - the normal reader reads it again and reports the problem itself
        return None
