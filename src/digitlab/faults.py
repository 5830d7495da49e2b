"""Fault injection for the crash tests, as a training hook: the loop itself knows nothing of it.

`DIGITLAB_FAULT_KILL_AT=STEP[:RANK]` makes that rank kill -9 itself just before global step STEP, once
(not again after torchrun restarts it). tests/test_distributed.py sets it on `digitlab train` processes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def kill_at_from_env(rank: int) -> Callable[[int], None] | None:
    """A hook `train` calls with the global step before each step; None when no fault is asked for."""
    spec = os.environ.get("DIGITLAB_FAULT_KILL_AT")
    if not spec or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
        return None
    step, _, who = spec.partition(":")
    if rank != int(who or 0):
        return None

    def hook(global_step: int) -> None:
        if global_step == int(step):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
