"""torchrun + DistributedDataParallel, the standard way, and nothing when running as one process.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; we join the process group (gloo on CPU, nccl on CUDA),
and everything else asks `is_main()` before logging, downloading or writing files.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; returns whether this run is distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(minutes=10)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # Under torchrun the agent's key-value store outlives restarted workers, and gloo's address keys
        # from the crashed attempt can be read by the new one ("connection refused"). A prefix per attempt
        # keeps each generation of workers to its own keys.
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                               int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timeout)
        dist.init_process_group(backend=backend, store=dist.PrefixStore(f"digitlab/attempt-{attempt}", client),
                                rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                                timeout=timeout)
    else:
        dist.init_process_group(backend=backend, timeout=timeout)
    return True


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks (every rank gets the same result)."""
    if world_size() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_object(obj: object) -> object:
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_tensors(tensors: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """Rank 0's CPU tensors on every rank; the others pass None. For data that is slow to make (the cuts of
    `train --cuts`): made once instead of once per process. Only shapes and dtypes go through pickle; the
    data goes by `dist.broadcast`, on the GPU under nccl, which only moves CUDA tensors."""
    if world_size() == 1:
        if tensors is None:
            raise ValueError("a single process must pass its tensors")
        return tensors
    if is_main() and tensors is None:
        raise ValueError("rank 0 must pass the tensors it broadcasts")
    meta = broadcast_object([(tuple(t.shape), t.dtype) for t in tensors] if is_main() else None)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    out = []
    for k, (shape, dtype) in enumerate(meta):
        t = tensors[k].to(device).contiguous() if is_main() else torch.empty(shape, dtype=dtype, device=device)
        dist.broadcast(t, src=0)
        out.append(t.cpu())
    return out
