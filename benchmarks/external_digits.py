"""A held-out check on handwriting from outside MNIST: the UCI optical digits (13 writers, 1,797 digits).

    pip download scikit-learn --no-deps -d /tmp/skl     # the data ships inside scikit-learn's wheel
    python benchmarks/external_digits.py --wheel /tmp/skl/scikit_learn-*.whl [--model strong --model OLD]

E. Alpaydin and C. Kaynak's digits (UCI "Optical Recognition of Handwritten Digits", the test set of 1998,
as scikit-learn ships it): 32x32 bitmaps from NIST forms counted into 8x8 blocks, values 0-16. Nothing in
digitlab was trained or tuned on them; this script only measures. Each digit becomes a picture the way a
user would have one -- dark ink on white paper, at 8x8 as stored and scaled up to 32x32 (bicubic) -- and
goes through the same file -> `to_mnist` -> model path as `digitlab predict`. Columns: the current
preprocessing, the preprocessing from before issue 11 (benchmarks/legacy_preprocess.py), and a plain
crop-and-centre (these two as benchmarks/robustness.py has them), each with each --model (default: the
shipped strong). Writes benchmarks/results/external_digits.md.
"""

from __future__ import annotations

import argparse
import gzip
import io
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from robustness import legacy, plain  # noqa: E402  (benchmarks/robustness.py)

from digitlab.data.images import open_image, to_mnist  # noqa: E402
from digitlab.engine import load_engine  # noqa: E402

MEMBER = "sklearn/datasets/data/digits.csv.gz"


def load(wheel: Path | None, csv: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) values 0-16 and labels, from scikit-learn's wheel or its digits.csv.gz."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            raw = gzip.decompress(archive.read(MEMBER))
    elif csv is not None:
        raw = gzip.decompress(csv.read_bytes())
    else:
        raise SystemExit("error: give --wheel (pip download scikit-learn --no-deps) or --csv digits.csv.gz")
    table = np.loadtxt(io.StringIO(raw.decode()), delimiter=",")
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(int)


def picture(values: np.ndarray, side: int) -> bytes:
    """Dark ink on white paper, `side` pixels square, as PNG bytes."""
    gray = Image.fromarray(np.rint(255 - values * 255 / 16).astype(np.uint8))
    if side != 8:
        gray = gray.resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    gray.save(buffer, format="PNG")
    return buffer.getvalue()


# The other two columns are the robustness benchmark's, so both tables compare the same three paths.
PATHS = {"current to_mnist": lambda data: to_mnist(open_image(data)), "before issue 11": legacy,
         "plain crop-and-centre": plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--model", action="append", help="repeatable; default: the shipped strong")
    parser.add_argument("--output", default="benchmarks/results/external_digits.md")
    args = parser.parse_args()
    start = time.perf_counter()
    values, labels = load(args.wheel, args.csv)
    models = args.model or ["strong"]
    engines = {m: load_engine(m) for m in models}
    rows = []
    for side in (8, 32):
        files = [picture(v, side) for v in values]
        for name, path in PATHS.items():
            batch = torch.from_numpy(np.stack([path(f) for f in files]))
            for model, engine in engines.items():
                right = (engine.logits(batch).argmax(1).numpy() == labels).mean()
                rows.append(f"| {side}x{side} | {name} | `{model}` | {right:.2%} |")
    lines = [
        "# Handwriting from outside MNIST: the UCI optical digits (issue 11's held-out check)",
        "",
        f"`python benchmarks/external_digits.py {' '.join('--model ' + m for m in models)}`: {len(labels):,} "
        f"digits by 13 writers (UCI test set, as shipped in scikit-learn), dark on white PNGs; "
        f"{platform.machine()}, Python {platform.python_version()}; took {time.perf_counter() - start:.0f} s. "
        "Never trained or tuned on.",
        "",
        "| picture | preprocessing | model | accuracy |",
        "|---|---|---|---:|",
        *rows,
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
