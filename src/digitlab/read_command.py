"""`digitlab read INPUT... [--model M] [--output FILE] [--json] [--accept-all]`: the number in each picture.

    digitlab read house-number.jpg cheque.png scans/        # CSV on stdout: file,number,confidence,reason
    digitlab read scans/ --json --output numbers.json       # each digit's box, label, probabilities, reason

Every input is decoded before anything is read, and the output is written whole at the end (stdout in one
write, a file by temp + rename), so a bad input (not an image, too large, empty) is one `error:` line,
exit code 2, and no output at all. The reading itself is `digitlab.read`; this file is only the command.
"""

from __future__ import annotations

import argparse
import json
import sys

CHUNK = 64  # pictures read per batch: enough for one fast model call, few enough decoded images in memory


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of them")
    p.add_argument("--model", action="append",
                   help="a run folder, a .safetensors file, or a shipped model's name (default: the best shipped); "
                        "repeat it for an ensemble")
    p.add_argument("--output", "-o", help="write here instead of stdout (CSV, or JSON with --json)")
    p.add_argument("--json", action="store_true", help="JSON: each digit's box, label, probabilities and reason")
    p.add_argument("--accept-all", action="store_true",
                   help="never refuse: read every blob of ink as its most likely digit")
    p.add_argument("--engine", default="auto", help="auto (ONNX Runtime on CPU), torch or onnx")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from digitlab.data.images import open_image
    from digitlab.device import pick_device
    from digitlab.errors import DigitlabError
    from digitlab.fileio import atomic_write_text
    from digitlab.predict import gather_inputs, load_engine
    from digitlab.read import read_pictures

    kind, paths = gather_inputs(args.inputs)
    if kind == "csv":
        raise DigitlabError("read takes pictures; for a Kaggle test.csv use `digitlab predict`")
    for path in paths:  # every input checked before the (slow) model loads and anything is written
        open_image(path)
    device = pick_device(args.device)
    engine = load_engine(args.model, args.engine, device)
    rows = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        readings = read_pictures(engine, [open_image(p) for p in chunk], accept_all=args.accept_all)
        rows += [(str(p), r) for p, r in zip(chunk, readings, strict=True)]
    if args.json:
        text = json.dumps([{"file": name, **reading.to_json()} for name, reading in rows], indent=1) + "\n"
    else:
        lines = ["file,number,confidence,reason"]
        lines += [",".join((_csv_cell(name), _csv_cell(r.number), f"{r.confidence:.6f}", r.reason or ""))
                  for name, r in rows]
        text = "\n".join(lines) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}: {len(rows):,} pictures", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
