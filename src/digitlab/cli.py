"""The `digitlab` command: parse arguments, call the library, print. No logic lives here.

Bad input anywhere below raises DigitlabError, which becomes one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from digitlab.errors import DigitlabError


def _train(args: argparse.Namespace) -> int:
    from digitlab.config import from_namespace

    if getattr(args, "init", None):  # fine-tuning a trained model on a small dataset (issue 13): digitlab.finetune
        from digitlab.finetune import config_from_args, finetune

        finetune(config_from_args(args))
        return 0
    cfg, explicit = from_namespace(args)
    ensemble = getattr(args, "ensemble", 0)
    if getattr(args, "nproc", 0) > 1:
        from digitlab.config import to_argv
        from digitlab.launch import launch_torchrun

        return launch_torchrun(args.nproc, to_argv(cfg, explicit) + (["--ensemble", str(ensemble)] if ensemble else []))
    if ensemble:
        from digitlab.train import train_ensemble

        train_ensemble(cfg, ensemble, explicit)
        return 0
    from digitlab import prefetch

    prefetch.start(cfg.data)  # the data is read while digitlab.train imports torch
    from digitlab.train import train

    train(cfg, explicit)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from digitlab.data import load_labelled
    from digitlab.device import pick_device
    from digitlab.evaluate import evaluate
    from digitlab.models import describe_models
    from digitlab.predict import load_engine

    if args.robustness:
        from digitlab import robustness

        return robustness.main(args)
    device = pick_device(args.device)
    meta = describe_models(args.model)
    model = load_engine(args.model, args.engine, device)
    digits = load_labelled(args.data)
    result = evaluate(model, digits.images, digits.labels, device)
    result.update(model=[str(m) for m in args.model] if args.model else "shipped", arch=meta["arch"],
                  data=digits.source)
    if args.reliability:
        from digitlab import plots

        plots.reliability([("uncalibrated", result["reliability_uncalibrated"]),
                           (f"temperature {result['temperature']}", result["reliability"])], args.reliability,
                          f"{meta['arch']} on {digits.source}")
        print(f"wrote {args.reliability}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    console = Console(highlight=False)
    table = Table(title=f"{meta['arch']} on {digits.source}: accuracy {result['accuracy']:.2%} "
                        f"({result['errors']} errors in {result['n']:,})")
    for column in ("digit", "precision", "recall", "support"):
        table.add_column(column, justify="right")
    for d in range(10):
        table.add_row(str(d), f"{result['precision'][d]:.4f}", f"{result['recall'][d]:.4f}",
                      str(result["support"][d]))
    console.print(table)
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for d in range(10):
        confusion.add_column(str(d), justify="right")
    for d, row in enumerate(result["confusion"]):
        confusion.add_row(str(d), *(f"[bold]{v}[/]" if i == d else (str(v) if v else "·") for i, v in enumerate(row)))
    console.print(confusion)
    temperatures = result["temperature"] if isinstance(result["temperature"], list) else [result["temperature"]]
    console.print(f"confidence: ECE {result['ece']:.2%} (uncalibrated {result['ece_uncalibrated']:.2%}), "
                  f"mean {result['mean_confidence']:.2%}, T {', '.join(f'{t:.4g}' for t in temperatures)}")
    if args.plot:
        from digitlab import plots

        plots.confusion(result["confusion"], args.plot, f"{meta['arch']}: {result['accuracy']:.2%}")
        console.print(f"wrote {args.plot}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from digitlab.calibrate import calibrate
    from digitlab.device import pick_device

    result = calibrate(args.model, args.data, args.engine, pick_device(args.device))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"temperature {result['temperature']:.4f} (fitted {result['fitted_temperature']:.4f}) on "
              f"{result['data']}: ECE {result['ece_before']:.2%} -> {result['ece_after']:.2%}, "
              f"NLL {result['nll_before']:.4f} -> {result['nll_after']:.4f}; wrote {result['path']}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from digitlab import predict
    from digitlab.data import images
    from digitlab.device import pick_device

    kind, paths = predict.gather_inputs(args.inputs)
    device = pick_device(args.device)
    engine = predict.load_engine(args.model, args.engine, device)
    if kind == "csv":
        output = Path(args.output or "submission.csv")
        labels = predict.write_submission_from_csv(engine, paths[0], output, device)
        print(f"wrote {output}: {len(labels):,} predictions (ImageId 1..{len(labels)})", file=sys.stderr)
        return 0
    if not 1 <= args.top_k <= 10:
        raise DigitlabError(f"--top-k must be between 1 and 10, got {args.top_k}")
    pixels = images.load_images(paths)
    if args.save_inputs:
        predict.save_inputs(args.save_inputs, paths, pixels)
    probs = predict.predict_proba(engine, pixels, device)
    if args.accept_all:
        reasons: list[str | None] = [None] * len(paths)
    else:
        from digitlab.refuse import refusals

        reasons = refusals(pixels.numpy())  # blank pictures, letters, drawings...: an empty label, and why
    names = [str(p) for p in paths]
    if args.output:
        predict.write_image_predictions(args.output, names, probs, args.top_k, reasons)
        refused = sum(r is not None for r in reasons)
        print(f"wrote {args.output}: {len(names):,} predictions ({refused:,} refused)", file=sys.stderr)
    else:
        sys.stdout.write(predict.format_image_predictions(names, probs, args.top_k, reasons))
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from digitlab.datatools import info

    info(args.path)
    return 0


def _data_convert(args: argparse.Namespace) -> int:
    from digitlab.datatools import convert

    convert(args.source, args.dest, args.to, args.split)
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from digitlab.data.download import download_mnist

    print(download_mnist(args.dest))
    return 0


def _lesson(args: argparse.Namespace) -> int:
    from digitlab import lessons

    return lessons.run(args)


def _serve(args: argparse.Namespace) -> int:
    from digitlab.serve.server import serve

    feedback = None
    if not args.no_feedback:
        from digitlab.feedback import default_dir

        feedback = args.feedback or default_dir()
    serve(model=args.model, host=args.host, port=args.port, engine=args.engine, feedback=feedback,
          models_roots=args.models_root, decode_processes=args.decode_processes)
    return 0


def _export(args: argparse.Namespace) -> int:
    from digitlab.export import export

    path = export(args.model, args.format, args.output)
    print(f"wrote {path}", file=sys.stderr)
    return 0


MODEL_HELP = ("a run folder, a .safetensors file, or a shipped model's name: strong, tutorial "
              "(default: the best shipped)")


class _Parser(argparse.ArgumentParser):
    """No abbreviations (`--npro 2` is an error, not --nproc), for every subcommand's parser too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(
        prog="digitlab", formatter_class=fmt,
        description="Handwritten-digit recognition with PyTorch: learn, train, evaluate, predict, serve.")
    from digitlab import __version__

    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (the tutorial CNN by default)", formatter_class=fmt)
    from digitlab.config import add_arguments

    add_arguments(p)  # one flag per TrainConfig field
    p.add_argument("--nproc", type=int, default=0, help="launch N processes with torchrun (DDP)")
    p.add_argument("--ensemble", type=int, default=0, help="train N models (seeds seed..seed+N-1) and vote")
    p.add_argument("--init", metavar="MODEL", help="fine-tune this model (a shipped name or a model folder) on "
                   "--data, e.g. the web page's feedback folder, with MNIST replay; --arch is the model's own")
    p.add_argument("--steps", type=int, help="with --init: training steps (default 200)")
    p.add_argument("--replay-limit", type=int, help="with --init: MNIST train digits replayed (default 15000)")
    p.add_argument("--holdout", type=float, help="with --init: share of each digit's samples held out (0.25)")
    p.add_argument("--eval-limit", type=int, help="with --init: measure on the first N MNIST test digits only")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class table and confusion matrix", formatter_class=fmt)
    p.add_argument("--model", action="append", help=MODEL_HELP + "; repeat it to evaluate an ensemble")
    p.add_argument("--data", help="labelled data; MNIST's test split by default")
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", default="auto", help="auto (ONNX Runtime on CPU), torch or onnx")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", help="also save the confusion matrix as this PNG")
    p.add_argument("--robustness", action="store_true",
                   help="accuracy per family and severity of pens, scans and photos of test digits, each through "
                        "file -> to_mnist -> model; writes robustness.json and robustness.png into --out")
    p.add_argument("--limit", type=int, default=500,
                   help="--robustness: test digits drawn per family and severity (all, if there are fewer)")
    p.add_argument("--seed", type=int, default=0, help="--robustness: which digits, and how each is drawn")
    p.add_argument("--out", default="runs/robustness", help="--robustness: output folder")
    p.add_argument("--baseline", metavar="JSON", help="--robustness: an earlier robustness.json, shown beside")
    p.add_argument("--reliability", metavar="FILE.png",
                   help="also save the reliability diagram (uncalibrated and calibrated) as this PNG")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("calibrate", help="fit the temperature that makes confidences honest; store it in model.json",
                       formatter_class=fmt)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--data", help="labelled digits the model did not train on (default: the validation split "
                                  "train held out, rebuilt from model.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", default="auto", help="auto (ONNX Runtime on CPU), torch or onnx")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("predict", help="label a Kaggle test.csv or image files/folders", formatter_class=fmt)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="test.csv, image files or folders")
    p.add_argument("--model", action="append", help=MODEL_HELP + "; repeat it to predict with an ensemble")
    p.add_argument("--output", "-o", help="output CSV (default: submission.csv for a test.csv, else stdout)")
    p.add_argument("--top-k", type=int, default=1, help="also list the next most likely labels")
    p.add_argument("--engine", default="auto", help="auto (ONNX Runtime on CPU), torch or onnx")
    p.add_argument("--device", default="auto")
    p.add_argument("--save-inputs", metavar="DIR", help="also save the 28x28 image the model was given for each "
                                                        "input, as DIR/<name>.png")
    p.add_argument("--accept-all", action="store_true",
                   help="images: never refuse (by default a blank picture, a letter or a drawing gets an empty "
                        "label and a reason); a Kaggle test.csv is never refused")
    p.set_defaults(func=_predict)

    p = sub.add_parser("read", help="read the number (one digit or several) in each picture", formatter_class=fmt)
    from digitlab import read_command

    read_command.add_arguments(p)

    data = sub.add_parser("data", help="inspect, convert or download data").add_subparsers(
        dest="data_command", required=True, metavar="ACTION")
    p = data.add_parser("info", help="counts, class balance and checksums", formatter_class=fmt)
    p.add_argument("path", nargs="?", help="data source (default: resolved as for train)")
    p.set_defaults(func=_data_info)
    p = data.add_parser("convert", help="convert between IDX, Kaggle CSV and PNG folders", formatter_class=fmt)
    p.add_argument("source")
    p.add_argument("dest", help="a .csv file, or a folder for idx/png")
    p.add_argument("--to", choices=["idx", "csv", "png"], help="output format (default: csv for *.csv, else png)")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.set_defaults(func=_data_convert)
    p = data.add_parser("download", help="fetch MNIST from mirrors, sha256-verified", formatter_class=fmt)
    p.add_argument("--dest", help="folder (default: the user cache)")
    p.set_defaults(func=_data_download)

    p = sub.add_parser("lesson", help="run one of the tutorial's six lessons (or all)", formatter_class=fmt)
    from digitlab import lessons

    lessons.add_arguments(p)
    p.set_defaults(func=_lesson)

    p = sub.add_parser("serve", help="web page + HTTP API: draw a digit, see the answer", formatter_class=fmt)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", default="auto", help="auto (ONNX Runtime on CPU: 512 JSON requests/s against torch's "
                                                    "318, benchmarks/serve_load.py), torch or onnx")
    p.add_argument("--models-root", action="append", metavar="DIR",
                   help="POST /api/model may also load models from here (always: the current folder); repeatable")
    p.add_argument("--decode-processes", type=int, metavar="N",
                   help="decode image uploads in N processes, out of the GIL's way (default: one per core; "
                        "0: in the worker threads)")
    saving = p.add_mutually_exclusive_group()
    saving.add_argument("--feedback", metavar="DIR",
                        help="save answers confirmed or corrected in the page here (default: "
                             "$XDG_DATA_HOME/digitlab/feedback, i.e. ~/.local/share/digitlab/feedback)")
    saving.add_argument("--no-feedback", action="store_true", help="save nothing; the page offers no corrections")
    p.set_defaults(func=_serve)

    p = sub.add_parser("export", help="export a model to ONNX or TorchScript", formatter_class=fmt)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--output", required=True)
    p.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DigitlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `digitlab` command (console script and `python -m digitlab`): `main()`, then leave at once.

    Tearing the interpreter down frees torch's, matplotlib's and scipy's modules and objects one by one:
    about half a second after the work is done (benchmarks/startup.py), for memory the OS takes back anyway.
    Every file is written whole and closed by the time `main()` returns, so the output streams are flushed
    and the process exits without that teardown. An exception that escapes `main()` (a bug) still ends the
    normal way, with its traceback.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        # `digitlab ... | head` may have closed the pipe already; there is nothing left to tell it then.
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
