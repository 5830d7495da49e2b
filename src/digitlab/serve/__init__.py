"""The web app and HTTP API: draw a digit in the browser, see what the model reads.

`digitlab serve` runs `digitlab.serve.server.serve`; tests build the app with `create_app` and serve it with
`running`. The layout of the package is described in `digitlab.serve.app`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "running", "serve"]


def __getattr__(name: str) -> Any:  # lazy, so `import digitlab.serve` does not import FastAPI
    if name == "create_app":
        from digitlab.serve.app import create_app

        return create_app
    if name in ("running", "serve"):
        from digitlab.serve import server

        return getattr(server, name)
    raise AttributeError(name)
