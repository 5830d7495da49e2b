"""`digitlab train --nproc N`: hand the run to torchrun's elastic agent rather than forking ourselves."""

from __future__ import annotations

import sys


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run `torchrun --standalone --nproc_per_node=N -m digitlab train <argv>` in this process.

    `argv` is built from the parsed config (digitlab.config.to_argv), so it holds no --nproc.
    """
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(["--standalone", f"--nproc_per_node={nproc}", "-m", "digitlab", "train", *argv])
    except Exception as exc:  # torchrun raises ChildFailedError after printing the worker's own error
        print(f"error: distributed training failed ({type(exc).__name__})", file=sys.stderr)
        return 1
    return 0
