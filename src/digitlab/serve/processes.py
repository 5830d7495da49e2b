"""Decoding image uploads in worker processes, so that the GIL does not queue them one behind another.

Decoding a PNG and `to_mnist` take about 2 ms of Python and numpy per picture, all of it holding the GIL: in
one process every upload waits for the one before it, and a 2-core server answered ~200 PNG requests a second
against ~500 JSON ones (benchmarks/serve_load.py). `digitlab serve` therefore decodes uploads in a pool of
processes, one per core by default (`--decode-processes`); the model still runs in the server's worker
threads, where ONNX Runtime and torch release the GIL. `decode_processes=0` (what `create_app` defaults to, so
tests and embedding code start no processes) decodes in those worker threads instead.

The processes are spawned, not forked: the server has threads (the event loop, ONNX Runtime's pool), and a fork
copies their locks in whatever state they are. They ignore Ctrl-C (the server shuts them down itself), start
and import before the first request (`start`), and are replaced if one dies (that request gets a 503). Each
holds about 250 MB (numpy, scipy, Pillow, and torch through `digitlab.data`).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Annotated, NoReturn

import anyio
import numpy as np
from fastapi import Depends, Request

from digitlab.serve.decode import decode_files
from digitlab.serve.errors import ApiError
from digitlab.serve.runner import Backlog


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DecodePool:
    """`processes` decoding processes (0: none; `decode` is then not used and routes decode in threads)."""

    def __init__(self, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError(f"decode processes must be >= 0, got {processes}")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._backlog = Backlog()
        self._starting = threading.Lock()

    def start(self) -> None:
        """Spawn the processes and let each import the decoder now, not during the first requests."""
        with self._starting:
            if self.processes and self._pool is None:
                pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_ignore_interrupts)
                blank = [("warm-up", b"")]  # an empty file: refused at once, after the imports
                for job in [pool.submit(_try_decode, blank) for _ in range(self.processes)]:
                    job.result()
                self._pool = pool

    async def decode(self, files: list[tuple[str, bytes]]) -> tuple[np.ndarray, float]:
        """`decode_files(files)` in a decoding process: the images, and the seconds it took (queue included)."""
        if self._pool is None:  # not started yet, or restarted after a crash: off the event loop
            await anyio.to_thread.run_sync(self.start)
        with self._backlog.slot():
            start = time.perf_counter()
            pool = self._pool
            try:
                if pool is None:  # closed by a request that found it broken first
                    raise BrokenProcessPool("closed meanwhile")
                # submit raises BrokenProcessPool, or a RuntimeError once another request has shut it down;
                # the result, BrokenProcessPool when a decoding process died (killed, out of memory).
                images = await asyncio.wrap_future(pool.submit(decode_files, files))
            except BrokenProcessPool:
                self._restart(pool)
            except RuntimeError as exc:
                if "shutdown" not in str(exc):
                    raise  # RecursionError, say: not the pool's, not ours to hide
                self._restart(pool)
            return images, time.perf_counter() - start

    def _restart(self, pool: ProcessPoolExecutor | None) -> NoReturn:
        """Drop a broken pool (the next request starts a fresh one) and answer this request 503."""
        if pool is not None and self._pool is pool:  # not one another request has replaced already
            self.close()
        raise ApiError(503, "the image decoder restarted; retry the request")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _try_decode(files: list[tuple[str, bytes]]) -> None:
    with contextlib.suppress(ApiError):
        decode_files(files)


async def current_decoder(request: Request) -> DecodePool:
    """The app's decoding processes (a FastAPI dependency: routes declare `decoder: Decoder`)."""
    return request.app.state.decoder


Decoder = Annotated[DecodePool, Depends(current_decoder)]
