"""torchrun + DDP on CPU (gloo, 127.0.0.1) and faults: kill -9, resume, restarts, corrupted checkpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from digitlab import checkpoint
from tests.conftest import MNIST

pytestmark = [pytest.mark.mnist, pytest.mark.slow]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# Small, quick runs: 1,500 images (1,200 train / 300 validation), batch 32 per process.
RUN = ["--data", str(MNIST), "--limit", "1500", "--val-size", "300", "--epochs", "2", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=240,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def digitlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitlab", *args]


def torchrun(nproc: int, *args: str) -> list[str]:
    return [*TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "-m", "digitlab", *args]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "ddp"
    run(digitlab("train", *RUN, "--batch-size", "32", "--out", str(out), "--nproc", "2"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_batch_size"] == 64
    assert metrics["replicas_identical"] is True
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]  # one output folder, from rank 0
    single = tmp_path / "single"
    run(digitlab("train", *RUN, "--batch-size", "64", "--out", str(single)))
    single_metrics = json.loads((single / "metrics.json").read_text())
    assert abs(metrics["test_accuracy"] - single_metrics["test_accuracy"]) < 0.03
    assert metrics["test_accuracy"] > 0.85


def test_logs_are_not_duplicated(tmp_path: Path) -> None:
    args = [a for a in RUN if a != "--quiet"]
    result = run(torchrun(2, "train", *args, "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path)))
    assert result.stdout.count("test accuracy:") == 1, result.stdout
    assert result.stdout.count("epoch 1/1: validation") == 1
    assert "2 processes · global batch 64" in result.stdout


@pytest.mark.parametrize("nproc", [1, 2])
def test_kill_9_mid_epoch_then_resume_is_bit_identical(tmp_path: Path, nproc: int) -> None:
    """Kill -9 in epoch 2 (37 steps an epoch at nproc 1, 18 at 2), resume: weights equal an unbroken run."""
    batch = "32" if nproc == 1 else "16"  # per process: a global batch of 32 either way
    args = ["train", *RUN, "--batch-size", batch, "--checkpoint-every", "5"]
    launch = (lambda *a: digitlab(*a)) if nproc == 1 else (lambda *a: torchrun(nproc, *a))
    run(launch(*args, "--out", str(tmp_path / "unbroken")))
    kill_at = "50" if nproc == 1 else "28:1"  # mid epoch 2; at nproc 2, rank 1 is the one that dies
    crashed = run(launch(*args, "--out", str(tmp_path / "broken")), env={"DIGITLAB_FAULT_KILL_AT": kill_at},
                  check=False)
    assert crashed.returncode != 0
    assert not (tmp_path / "broken" / "model.safetensors").exists()
    assert list((tmp_path / "broken").glob("ckpt-*.pt"))
    run(launch("train", "--out", str(tmp_path / "broken"), "--resume", "--quiet"))
    assert same_weights(tmp_path / "unbroken", tmp_path / "broken")


def test_torchrun_restarts_a_killed_worker_which_resumes_by_itself(tmp_path: Path) -> None:
    args = ["train", *RUN, "--batch-size", "16", "--checkpoint-every", "5"]
    run(torchrun(2, *args, "--out", str(tmp_path / "unbroken")))
    restarted = [*TORCHRUN, "--standalone", "--nproc_per_node=2", "--max-restarts=1", "-m", "digitlab", *args,
                 "--out", str(tmp_path / "restarted")]
    run(restarted, env={"DIGITLAB_FAULT_KILL_AT": "28:1"})
    assert same_weights(tmp_path / "unbroken", tmp_path / "restarted")


def test_two_agents_rendezvous_like_two_nodes(tmp_path: Path) -> None:
    """Multi-node, simulated: two torchrun agents (one process each) meet at a c10d endpoint on loopback."""
    endpoint = f"127.0.0.1:{free_port()}"
    common = [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
              f"--rdzv-endpoint={endpoint}", "--rdzv-id=digitlab-test"]
    tail = ["-m", "digitlab", "train", *RUN, "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agents = [subprocess.Popen([*common, "--node-rank=0", "--rdzv-conf=is_host=true", *tail], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
              subprocess.Popen([*common, "--node-rank=1", "--rdzv-conf=is_host=false", *tail], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [a.communicate(timeout=240)[0] for a in agents]
    assert all(a.returncode == 0 for a in agents), outputs
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["replicas_identical"] is True


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    for step in (10, 20):
        checkpoint.save(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))})
    newest = tmp_path / "ckpt-00000020.pt"
    newest.write_bytes(newest.read_bytes()[:-7])  # truncated, as by a crash mid-copy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = checkpoint.load_latest(tmp_path)
    assert state["step"] == 10 and torch.equal(state["w"], torch.full((3,), 10.0))
    assert any("ckpt-00000020.pt is unusable" in str(w.message) for w in caught)
    (tmp_path / "ckpt-00000010.pt").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert checkpoint.load_latest(tmp_path) is None


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    result = run(digitlab("train", *RUN, "--out", str(tmp_path / "nan"), "--lr", "1e30", "--checkpoint-every", "1"),
                 check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: training diverged"), result.stderr
    assert list((tmp_path / "nan").glob("ckpt-*.pt"))  # the steps before the blow-up were checkpointed


# Rank 1 may not make the cuts: under torchrun, rank 0 makes them once and sends them (digitlab.data.splits).
SPLITS = """
import sys
import torch
from safetensors.torch import save_file
from digitlab import distributed
from digitlab.config import TrainConfig
from digitlab.data import splits

distributed.setup(torch.device("cpu"))
if not distributed.is_main():
    def refuse(*args, **kwargs):
        raise RuntimeError("rank 1 made the cuts itself")
    splits.cut_digits = splits.cut_hands = refuse
cfg = TrainConfig(data=sys.argv[1], out="unused", limit=2000, val_size=300, seed=0, quiet=True, cuts=5, hand_cuts=6)
train, _, _ = splits.load_splits(cfg, distributed.is_main())
save_file({"images": train.images, "labels": train.labels}, f"{sys.argv[2]}/rank{distributed.rank()}.safetensors",
          metadata={"source": train.source})
distributed.teardown()
"""


def test_torchrun_makes_the_cuts_once_on_rank_0_and_sends_them(tmp_path: Path) -> None:
    from digitlab.config import TrainConfig
    from digitlab.data.splits import load_splits

    script = tmp_path / "splits.py"
    script.write_text(SPLITS)
    run([*TORCHRUN, "--standalone", "--nproc_per_node=2", str(script), str(MNIST), str(tmp_path)])
    alone, _, _ = load_splits(TrainConfig(data=str(MNIST), out="unused", limit=2000, val_size=300, seed=0,
                                          quiet=True, cuts=5, hand_cuts=6), True)
    for rank in (0, 1):
        got = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        assert torch.equal(got["images"], alone.images) and torch.equal(got["labels"], alone.labels)
