"""Changing the served model without a restart: `POST /api/model`, and reloading a model whose file changed.

    curl -H 'Content-Type: application/json' -d '{"model": "runs/my-handwriting"}' http://127.0.0.1:8000/api/model

A switch loads a new ModelRunner in a worker thread, then replaces `app.state.runner` in one assignment.
Routes take the runner once per request (the `Runner` dependency), so a request already running finishes on
the model it started with, and every later one gets the new model. If loading fails, nothing changes.

Which models a client may ask for: a shipped model's name (strong, tutorial), or a run folder, a
.safetensors file or an .onnx file that lies, after following symbolic links, inside the folder the server
was started in or inside a `--models-root` folder. Anything else is refused (403) without being opened: a
client must not make the server read arbitrary files.

A model given as a folder or a file is watched: at most every WATCH_INTERVAL_S seconds, a request looks at
the weights file's modification time and size, and if they changed (a `digitlab train --init ... --out` run
over the same folder finished), the model is loaded again. Training writes the weights atomically (temp file,
rename), so a reload never sees half a file.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import anyio

from digitlab.errors import DigitlabError
from digitlab.models import SHIPPED, resolve_model_path
from digitlab.serve.errors import ApiError
from digitlab.serve.runner import ModelRunner

log = logging.getLogger("digitlab.serve")
WATCH_INTERVAL_S = 2.0
MODEL_SUFFIXES = (".safetensors", ".onnx")


class ModelSwitch:
    """Loads models into `state.runner` on request, and reloads the served one when its file changes."""

    def __init__(self, state: object, engine: str, roots: list[Path], interval: float = WATCH_INTERVAL_S) -> None:
        self.state = state  # the app's state: `state.runner` is the runner every route uses
        self.engine = engine
        self.roots = [root.resolve() for root in roots]
        self.interval = interval
        self._lock: anyio.Lock | None = None
        self._checked = time.monotonic()
        self._signature = file_signature(watched_file(state.runner.model))

    def allowed(self, spec: str) -> str | None:
        """The model a client asked for, as ModelRunner takes it (a shipped name or an absolute path), or
        ApiError: 403 outside the allowed folders, 404 missing, 422 not a model file or folder."""
        if not spec or "\0" in spec:
            raise ApiError(422, "model: give a shipped model's name or a run folder")
        if spec in SHIPPED and not Path(spec).exists():
            return spec
        path = Path(spec).expanduser()
        resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            places = ", ".join(str(root) for root in self.roots)
            raise ApiError(403, f"model: {spec} is outside the folders this server loads models from ({places}; "
                                "add one with digitlab serve --models-root DIR)")
        if not resolved.exists():
            raise ApiError(404, f"model: {spec}: no such folder or file")
        if resolved.is_dir():
            if not (resolved / "model.safetensors").is_file():
                raise ApiError(422, f"model: {spec} has no model.safetensors (not a finished run folder)")
        elif resolved.suffix not in MODEL_SUFFIXES:
            raise ApiError(422, f"model: {spec} is not a .safetensors or .onnx file")
        return str(resolved)

    async def switch(self, spec: str) -> ModelRunner:
        """Serve the model `spec` from now on (a client's request: checked by `allowed`)."""
        return await self._load(self.allowed(spec))

    async def refresh(self) -> None:
        """Reload the served model if its weights file changed; looks at most every `interval` seconds."""
        now = time.monotonic()
        if now - self._checked < self.interval:
            return
        self._checked = now
        runner: ModelRunner = self.state.runner
        path = watched_file(runner.model)
        if path is None or file_signature(path) == self._signature:
            return
        try:
            await self._load(runner.model)
            log.warning("reloaded the model: %s changed", path)
        except ApiError as exc:  # e.g. the folder was emptied; the loaded model keeps answering
            self._signature = file_signature(path)
            log.warning("%s changed but could not be loaded, still serving the previous model: %s", path, exc.message)

    async def _load(self, model: str | os.PathLike | None) -> ModelRunner:
        if self._lock is None:  # created lazily: it belongs to the event loop that serves the app
            self._lock = anyio.Lock()
        async with self._lock:
            old: ModelRunner = self.state.runner
            signature = file_signature(watched_file(model))
            try:
                new = await anyio.to_thread.run_sync(lambda: ModelRunner(model, self.engine, old.workers))
            except DigitlabError as exc:
                raise ApiError(422, f"model: {exc}") from None
            new.share_workers(old)
            self.state.runner = new
            self._signature = signature
            self._checked = time.monotonic()
            return new


def watched_file(model: str | os.PathLike | None) -> Path | None:
    """The file whose changes reload `model`: its weights, unless it is a shipped model (which cannot change)."""
    if model is None or (str(model) in SHIPPED and not Path(model).exists()):
        return None
    try:
        return resolve_model_path(model) if not str(model).endswith(".onnx") else Path(model)
    except DigitlabError:
        return None


def file_signature(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced: modification time, size, inode."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino
