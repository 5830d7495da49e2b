"""The run folder (`--out`): its stored config, getting it ready, and what a finished run leaves in it.

    out/train-config.json        the resolved config, read back by --resume, and the command that started it
    out/ckpt-*.pt, ckpt-*.json   checkpoints and their hashes (digitlab.checkpoint)
    out/model.safetensors, model.json, metrics.json, loss.png, confusion.png

Nothing is created until the data has loaded and the model is built (`prepare` is called last), and
`prepare` removes any folder it made itself when it then fails: bad input leaves the disk as it was.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from digitlab.config import TrainConfig
from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write_text

CONFIG = "train-config.json"


def command_line() -> str:
    """This process's command as a user would type it again: `digitlab ...` for the console script or
    `python -m digitlab`, else the argv as given (torchrun's workers, a test's argv)."""
    if sys.argv[0].endswith(("digitlab", "__main__.py")):
        return " ".join(["digitlab", *sys.argv[1:]])
    return " ".join(sys.argv)


def read_stored(out: str | Path) -> dict[str, Any] | None:
    """The config a previous run in `out` was started with, or None when there is none."""
    path = Path(out) / CONFIG
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DigitlabError(f"{path}: cannot read the stored run's config ({exc})") from None
    if not isinstance(stored, dict):
        raise DigitlabError(f"{path}: not a digitlab train config")
    return stored


def prepare(cfg: TrainConfig, command: str) -> Path:
    """Make `cfg.out` ready for this run and store `cfg` there, with the `command` that started the run;
    on failure remove what this made."""
    out = Path(cfg.out)
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
        if shutil.disk_usage(out).free < 20 * 2**20:
            raise DigitlabError(f"--out {out}: less than 20 MB of free disk space")
    except OSError as exc:
        _remove_made(made)
        raise DigitlabError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    except DigitlabError:
        _remove_made(made)
        raise
    if not cfg.resume:
        # A fresh run must never resume later from an older run's checkpoints in the same folder.
        for stale in out.glob("ckpt-*"):
            stale.unlink()
    atomic_write_text(out / CONFIG, json.dumps({**dataclasses.asdict(cfg), "command": command}, indent=2))
    return out


def _remove_made(made: list[Path]) -> None:
    for folder in made:  # deepest first; each is empty unless something else wrote there meanwhile
        try:
            folder.rmdir()
        except OSError:
            return


class Figures:
    """The run's two figures, drawn in a thread while the main thread tests, calibrates and saves.

    Importing matplotlib and drawing take about a second of a short run; the test pass runs in torch with
    the GIL released, so the figures come almost free beside it instead of after the printed result.
    `wait()` re-raises anything that went wrong in the thread, so a figure that cannot be written still
    fails the run.
    """

    def __init__(self, out: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out = out
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-figures")
        self._jobs: list[Any] = []

    def loss(self, history: dict[str, list]) -> None:
        def draw() -> None:
            from digitlab import plots

            plots.loss_curve(history["step"], history["loss"], self.out / "loss.png", history["val_step"],
                             history["val_loss"])
        self._jobs.append(self._pool.submit(draw))

    def confusion(self, matrix: list[list[int]], title: str) -> None:
        def draw() -> None:
            from digitlab import plots

            plots.confusion(matrix, self.out / "confusion.png", title)
        self._jobs.append(self._pool.submit(draw))

    def run(self, function: Any, *args: Any) -> Any:
        """Any other work that can wait for the test pass (calibration): a Future of `function(*args)`."""
        job = self._pool.submit(function, *args)
        self._jobs.append(job)
        return job

    def wait(self) -> None:
        self._pool.shutdown(wait=True)
        for job in self._jobs:
            job.result()


def write_outputs(out: Path, model: Any, meta: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The model and its metrics, each file written whole (temp + rename); the figures are `Figures`'."""
    from digitlab.models import save_model

    save_model(model, meta, out)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
