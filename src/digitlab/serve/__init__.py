"""The web app and HTTP API: draw a digit in the browser, see what the model reads.

`digitlab serve` runs `digitlab.serve.app.serve`; tests build the app with `create_app`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # lazy, so `import digitlab.serve` does not import FastAPI
    if name in __all__:
        from digitlab.serve import app

        return getattr(app, name)
    raise AttributeError(name)
