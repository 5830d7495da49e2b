"""Load test for `digitlab serve`: requests/s and latency of single-image predictions, per engine.

For each engine (torch, onnx) this starts `digitlab serve --engine E` as a subprocess on a free port of
127.0.0.1, then sends single-image requests from this process (asyncio + httpx, `--clients` keep-alive
connections, each sending its next request as soon as the last one is answered):

  json  POST /api/predict {"pixels": [784]}: an MNIST test digit (no image decoding; polarity fix only)
  png   POST /api/predict multipart `file`: the same digit as a 280x280 PNG, what the drawing page sends,
        so the server decodes it and runs the full to_mnist preprocessing

Client-side latency is measured around each request; server-side time is the response's X-Process-Time
header (from the request's arrival in the app to its response, preprocessing and model included).
Client and server share the machine's cores, as they would on a laptop demo.

    python benchmarks/serve_load.py                       # ~1-2 minutes on 2 cores
    python benchmarks/serve_load.py --requests 20000 --clients 16 --engines onnx --payloads json

The markdown table is printed and written to benchmarks/results/serve_load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.md"
BOUNDARY = "digitlab-load-test-boundary"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(engine: str, model: str | None):
    """`digitlab serve` in a subprocess; yields its base URL once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "digitlab", "serve", "--port", str(port), "--engine", engine]
    if model:
        command += ["--model", model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # the onnx engine exports the model on its first start
        while True:
            if process.poll() is not None:
                raise SystemExit(f"digitlab serve exited with {process.returncode}: {process.stderr.read()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("digitlab serve did not come up within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def payloads(kind: str, count: int = 100) -> list[tuple[bytes, dict[str, str]]]:
    """`count` request bodies (with headers) of one kind, made from the first MNIST test digits."""
    from digitlab.data import load

    digits = load(ROOT / "data" / "mnist", "test")
    assert digits is not None
    bodies = []
    for image in digits.images[:count].numpy():
        if kind == "json":
            bodies.append((json.dumps({"pixels": image.ravel().tolist()}).encode(),
                           {"content-type": "application/json"}))
            continue
        buffer = io.BytesIO()
        Image.fromarray(image).resize((280, 280), Image.Resampling.BILINEAR).save(buffer, format="PNG")
        # Multipart built once here, so the client spends its time sending, not encoding.
        head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.png\"\r\n"
                "Content-Type: image/png\r\n\r\n")
        body = head.encode() + buffer.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()
        bodies.append((body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}))
    return bodies


async def load_test(url: str, bodies: list[tuple[bytes, dict[str, str]]], total: int, clients: int) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        latency: list[float] = []
        server_ms: list[float] = []
        work_ms: list[float] = []
        failures = 0

        async def worker(jobs: iter, record: bool) -> None:
            nonlocal failures
            for i in jobs:
                body, headers = bodies[i % len(bodies)]
                start = time.perf_counter()
                response = await client.post("/api/predict", content=body, headers=headers)
                elapsed = time.perf_counter() - start
                if not record:
                    continue
                if response.status_code != 200:
                    failures += 1
                    continue
                latency.append(elapsed * 1000)
                server_ms.append(float(response.headers["x-process-time"]))
                stages = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
                work_ms.append(float(stages["preprocess"]) + float(stages["model"]))

        warmup = iter(range(min(200, total)))
        await asyncio.gather(*(worker(warmup, False) for _ in range(clients)))
        jobs = iter(range(total))  # shared: each worker takes the next request number
        start = time.perf_counter()
        await asyncio.gather(*(worker(jobs, True) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {
        "rps": total / elapsed,
        "p50": float(np.percentile(latency, 50)),
        "p99": float(np.percentile(latency, 99)),
        "server_p50": float(np.percentile(server_ms, 50)),
        "server_p99": float(np.percentile(server_ms, 99)),
        "work_p50": float(np.percentile(work_ms, 50)),
        "failures": failures,
        "seconds": elapsed,
    }


def describe(model: str | None) -> str:
    from digitlab.models import read_meta, resolve_model_path

    meta = read_meta(resolve_model_path(model))
    accuracy = (meta.get("metrics") or {}).get("test_accuracy")
    return f"{meta['arch']} ({meta.get('parameters', '?')} parameters" + (
        f", {accuracy:.2%} test accuracy)" if accuracy else ")")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per engine and payload")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--engines", default="torch,onnx")
    parser.add_argument("--payloads", default="json,png")
    parser.add_argument("--model", help="weights to serve (default: the shipped model)")
    parser.add_argument("--output", default=str(RESULTS), help="markdown file for the results table")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from digitlab import __version__

    rows = []
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure: say how busy it was
    bodies = {kind: payloads(kind) for kind in args.payloads.split(",")}
    for engine in args.engines.split(","):
        with server(engine, args.model) as url:
            for kind, kind_bodies in bodies.items():
                result = asyncio.run(load_test(url, kind_bodies, args.requests, args.clients))
                rows.append((engine, kind, result))
                print(f"{engine:5} {kind:4}  {result['rps']:7.0f} req/s  p50 {result['p50']:6.2f} ms  "
                      f"p99 {result['p99']:6.2f} ms  server p50 {result['server_p50']:5.2f} ms  "
                      f"p99 {result['server_p99']:5.2f} ms  work p50 {result['work_p50']:5.2f} ms  "
                      f"failures {result['failures']}", file=sys.stderr)

    lines = [
        "# `digitlab serve` under load",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores · Python {platform.python_version()} · torch {torch.__version__} · "
        f"onnxruntime {onnxruntime.__version__} · digitlab {__version__} · 1-minute load average "
        f"{load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after",
        "",
        f"Model: {describe(args.model)}. {args.requests} timed requests per row (after 200 warm-up) from "
        f"{args.clients} concurrent keep-alive clients (asyncio + httpx) in a second process on the same "
        "machine. *json*: `{\"pixels\": [784]}`; *png*: a 280x280 PNG upload (what the drawing page "
        "sends, decoded and preprocessed with to_mnist). Server time = `X-Process-Time` (request in to "
        "response out, waiting for a worker included); work = preprocessing + model in the worker thread "
        "(`Server-Timing`).",
        "",
        "| engine | payload | req/s | p50 ms | p99 ms | server p50 ms | server p99 ms | work p50 ms | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, kind, r in rows:
        lines.append(f"| {engine} | {kind} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['server_p50']:.2f} | {r['server_p99']:.2f} | {r['work_p50']:.2f} | {r['failures']} |")
    lines.append("")
    lines.append(f"Reproduce: `python benchmarks/serve_load.py --requests {args.requests} "
                 f"--clients {args.clients}`")
    table = "\n".join(lines) + "\n"
    print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table, encoding="utf-8")
    return 1 if any(r["failures"] for _, _, r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
