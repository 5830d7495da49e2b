"""Honest confidence of the shipped models: calibrate each, then ECE on MNIST's test set before and after.

    python benchmarks/calibration.py                  # calibrates strong and tutorial, then measures
    python benchmarks/calibration.py --measure-only   # measures the temperatures already stored

Each model is calibrated as `digitlab calibrate` does it (the temperature is written into
src/digitlab/weights/NAME.json): on the validation split recorded in its model.json where training held one
out; a model trained on all 60,000 images (--val-size 0) is calibrated on the last --held-out images of
MNIST's train split instead. Those are NOT unseen by such a model, so its temperature is fitted on digits it
was trained on (it is more sure of them than of new ones; the fitted T is, if anything, too cold). The test
split is never used to fit, only to measure. Writes benchmarks/results/calibration.md and docs/reliability.png
(the default model, before and after).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from digitlab import calibrate, plots  # noqa: E402
from digitlab.data import load  # noqa: E402
from digitlab.data.idx import FILES, write_idx  # noqa: E402
from digitlab.engine import load_engine  # noqa: E402
from digitlab.evaluate import evaluate  # noqa: E402
from digitlab.models import SHIPPED, read_meta, shipped_weights  # noqa: E402


def held_out_folder(folder: Path, count: int) -> Path:
    """An MNIST-layout folder whose train split is the last `count` images of MNIST's train split."""
    train = load(ROOT / "data" / "mnist", "train")
    images, labels = FILES["train"]
    write_idx(folder / f"{images}.gz", train.images[-count:].numpy())
    write_idx(folder / f"{labels}.gz", train.labels[-count:].numpy().astype("uint8"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure-only", action="store_true", help="use the temperatures already stored")
    parser.add_argument("--held-out", type=int, default=5000,
                        help="for a model with no validation split: the last N train images")
    args = parser.parse_args()
    test = load(ROOT / "data" / "mnist", "test")
    rows, fits, diagrams = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHIPPED:
            if not shipped_weights(name).is_file():
                continue
            if not args.measure_only:
                has_split = (read_meta(shipped_weights(name)).get("training") or {}).get("val_size")
                data = None if has_split else held_out_folder(Path(tmp) / name, args.held_out)
                described = None if has_split else \
                    f"the last {args.held_out:,} of MNIST train (seen in training: biased, no unseen digits left)"
                calibrate.calibrate(name, data, data_name=described)
            stored = json.loads(calibrate.meta_json(shipped_weights(name)).read_text()).get("calibration")
            if stored:
                fits.append((name, stored))
            result = evaluate(load_engine(name, "auto"), test.images, test.labels)
            rows.append((name, result))
            diagrams[name] = result
    lines = ["# Calibration: ECE (15 bins) on MNIST test, before and after temperature scaling", "",
             f"`python benchmarks/calibration.py` on {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}. Temperatures are never fitted on the test set "
             "(what each was fitted on is listed below).", "",
             "| model | accuracy | temperature | mean confidence | ECE uncalibrated | ECE calibrated |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        raw = r["reliability_uncalibrated"]
        lines.append(f"| {name} | {r['accuracy']:.2%} | {r['temperature']:.4f} | {raw['mean_confidence']:.2%} → "
                     f"{r['mean_confidence']:.2%} | {r['ece_uncalibrated']:.2%} | {r['ece']:.2%} |")
    if fits:
        lines += ["", "Fitted on:", ""]
        for name, f in fits:
            kept = "" if f["temperature"] == f["fitted_temperature"] else \
                f" (fitted {f['fitted_temperature']:.4f} raised its ECE to {f['ece_fitted']:.2%}: T = 1 kept)"
            lines.append(f"- {name}: {f['data']}: T = {f['temperature']:.4f}{kept}, ECE {f['ece_before']:.2%} → "
                         f"{f['ece_after']:.2%}, NLL {f['nll_before']:.4f} → {f['nll_after']:.4f}")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "calibration.md").write_text(text)
    default = next(name for name, _ in rows)
    r = diagrams[default]
    plots.reliability([("uncalibrated", r["reliability_uncalibrated"]),
                       (f"temperature {r['temperature']:.3f}", r["reliability"])],
                      ROOT / "docs" / "reliability.png", f"{default} (shipped default) on MNIST test")
    print("wrote benchmarks/results/calibration.md and docs/reliability.png")


if __name__ == "__main__":
    main()
