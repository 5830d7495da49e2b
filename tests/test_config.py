"""Training's options in one place: typed vs default, the --resume rules, abbreviations, torchrun's argv
(issue 14, item 5)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from digitlab.cli import build_parser, main
from digitlab.config import TrainConfig, from_namespace, resolve, to_argv
from digitlab.errors import DigitlabError

STORED = dataclasses.asdict(TrainConfig(data="data/mnist", arch="strong", epochs=20, batch_size=128, lr=3e-3,
                                        augment=True, label_smoothing=0.1, handwriting=True, out="runs/x",
                                        device="cpu", quiet=True))


def parse(*argv: str) -> tuple[TrainConfig, frozenset[str]]:
    return from_namespace(build_parser().parse_args(["train", *argv]))


def test_only_typed_options_count_as_given() -> None:
    cfg, explicit = parse("--out", "runs/x", "--resume", "--epochs", "40")
    assert explicit == {"out", "resume", "epochs"}
    assert (cfg.epochs, cfg.arch, cfg.seed, cfg.val_size) == (40, "tutorial", 0, 5000)  # the rest: defaults


def test_resume_honours_more_epochs_and_a_new_device() -> None:
    cfg, explicit = parse("--out", "runs/x", "--resume", "--epochs", "40", "--device", "auto")
    resolved = resolve(cfg, STORED, explicit)
    assert (resolved.epochs, resolved.device, resolved.quiet) == (40, "auto", False)
    assert (resolved.arch, resolved.lr, resolved.augment, resolved.resume) == ("strong", 3e-3, True, True)


def test_resume_without_options_continues_the_stored_run() -> None:
    cfg, explicit = parse("--out", "runs/x", "--resume")
    resolved = resolve(cfg, STORED, explicit)
    assert dataclasses.asdict(resolved) == {**STORED, "resume": True, "device": "auto", "quiet": False}


@pytest.mark.parametrize(("argv", "message"), [
    (["--lr", "0.01"], "--lr cannot change on --resume (stored 0.003"),
    (["--arch", "fast"], "--arch cannot change on --resume (stored 'strong'"),
    (["--no-augment"], "--augment cannot change on --resume (stored True"),
    (["--epochs", "10"], "--epochs cannot change on --resume (stored 20"),
    (["--data", "train.csv"], "--data cannot change on --resume"),
])
def test_resume_refuses_what_cannot_change(argv: list[str], message: str) -> None:
    cfg, explicit = parse("--out", "runs/x", "--resume", *argv)
    with pytest.raises(DigitlabError, match=message.replace("(", r"\(")):
        resolve(cfg, STORED, explicit)


def test_typing_the_stored_value_again_is_not_a_change() -> None:
    cfg, explicit = parse("--out", "runs/x", "--resume", "--arch", "strong", "--lr", "0.003", "--augment")
    assert resolve(cfg, STORED, explicit).lr == 3e-3


def test_abbreviations_are_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--npro", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--epo", "2"])


def test_workers_argv_comes_from_the_parsed_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--nproc` hands torchrun the typed options rebuilt from the config: not sys.argv, never --nproc."""
    import digitlab.launch

    seen: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(digitlab.launch, "launch_torchrun", lambda n, argv: seen.append((n, argv)) or 0)
    monkeypatch.setattr(sys, "argv", ["digitlab", "something", "else"])
    assert main(["train", "--nproc", "2", "--out", "runs/d", "--epochs", "3", "--no-augment", "--sync-bn"]) == 0
    assert seen == [(2, ["--epochs", "3", "--out", "runs/d", "--no-augment",
                         "--sync-bn"])]


def test_to_argv_round_trips() -> None:
    argv = ["--data", "x.csv", "--arch", "fast", "--lr", "0.0123", "--handwriting", "--quiet", "--limit", "7"]
    cfg, explicit = parse(*argv)
    again, explicit_again = parse(*to_argv(cfg, explicit))
    assert again == cfg and explicit_again == explicit


def test_resume_with_more_epochs_trains_on(synthetic_idx: Path, tmp_path: Path) -> None:
    """End to end: `--resume --epochs 2` after a 1-epoch run trains the second epoch (it used to be ignored)."""
    run = tmp_path / "run"
    common = ["train", "--data", str(synthetic_idx), "--out", str(run), "--val-size", "100", "--batch-size", "50",
              "--quiet"]
    assert main([*common, "--epochs", "1"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["epochs"] == 2
    assert json.loads((run / "train-config.json").read_text())["epochs"] == 2  # a later --resume sees 2
    refused = subprocess.run([sys.executable, "-m", "digitlab", "train", "--out", str(run), "--resume",
                              "--batch-size", "64"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("error: --batch-size cannot change on --resume (stored 50, given 64); "
                                      "start a new run with another --out to change it")
