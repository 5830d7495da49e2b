"""`digitlab train` imports only what it uses (issue 14, item 3): no pyplot, no downloader.

The seconds themselves are measured by benchmarks/startup.py, not here; this guards the cause.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CODE = """
import json, sys
from digitlab.cli import main
code = main(["train", "--data", sys.argv[1], "--out", sys.argv[2], "--epochs", "1", "--quiet"])
print(json.dumps([code, sorted(m for m in sys.modules if m.split(".")[0] in ("pooch", "requests")
                               or m == "matplotlib.pyplot")]))
"""


def test_train_imports_no_pyplot_or_downloader(synthetic_idx: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", CODE, str(synthetic_idx), str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    code, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert code == 0 and loaded == []
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # figures still drawn
    assert (tmp_path / "run" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prefetched_idx_files_load_the_same(synthetic_idx: Path) -> None:
    """The files read in a thread during start-up are used once, and give exactly what a plain read gives."""
    import torch

    from digitlab import prefetch
    from digitlab.data.idx import load_idx_split

    plain = load_idx_split(synthetic_idx, "train")
    prefetch.start(str(synthetic_idx))
    assert len(prefetch._pending) == 4
    fetched = load_idx_split(synthetic_idx, "train")
    assert all(torch.equal(a, b) for a, b in zip(plain, fetched, strict=True))
    assert len(prefetch._pending) == 2  # the test split's files wait for their reader
    load_idx_split(synthetic_idx, "test")
    assert not prefetch._pending
