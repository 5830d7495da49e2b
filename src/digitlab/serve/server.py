"""Running the app under uvicorn: `digitlab serve` (`serve`), and a server in a background thread (`running`),
which the tests and the browser checks use to talk to the app over a real socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from digitlab.errors import DigitlabError
from digitlab.serve.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """Listen before starting uvicorn, so a taken port is a one-line error rather than a log and exit 1."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise DigitlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: FastAPI, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=3,
                            timeout_keep_alive=5, server_header=False)
    return uvicorn.Server(config)


def serve(model: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          engine: str = "auto", feedback: str | os.PathLike | None = None,
          models_roots: list[str | os.PathLike] | None = None, decode_processes: int | None = None) -> None:
    """Load the model, then serve the page and the API on http://host:port until interrupted; corrections
    made in the page are saved to `feedback` (None: not saved); POST /api/model may load models from the
    current folder and `models_roots`. Image uploads are decoded in `decode_processes` processes (default:
    one per core; 0: in the worker threads; serve/processes.py)."""
    import torch

    # One intra-op thread per model call: a 28x28 batch is too small to split, and the worker threads
    # already run up to one call per core (benchmarks/serve_load.py measures it). OMP_NUM_THREADS overrides.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    if decode_processes is None:
        decode_processes = os.cpu_count() or 1
    if decode_processes < 0:
        raise DigitlabError(f"--decode-processes must be 0 or more, got {decode_processes}")
    app = create_app(model, engine, feedback=feedback, models_roots=models_roots,
                     decode_processes=decode_processes)
    sock = bind(host, port)
    app.state.decoder.start()
    bound = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    runner = app.state.runner
    print(f"digitlab: serving {runner.info['arch']} model ({runner.engine.name}) on http://{where}:{bound}/ "
          "- Ctrl-C to stop", flush=True)
    store = app.state.feedback
    print(f"digitlab: corrections are saved to {store.root} ({store.counts()['total']:,} so far)" if store else
          "digitlab: corrections are not saved (--no-feedback)", flush=True)
    try:
        uvicorn_server(app, "warning").run(sockets=[sock])
    finally:
        app.state.decoder.close()


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` from a background thread on a free port; yields its base URL (for tests and demos)."""
    sock = bind(host, 0)
    server = uvicorn_server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="digitlab-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        decoder = getattr(app.state, "decoder", None)
        if decoder is not None:
            decoder.close()
