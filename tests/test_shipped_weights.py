"""Every shipped weights file says how to make it again: its record names the command and a make target that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "digitlab" / "weights"
TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("record", sorted(p.name for p in WEIGHTS.glob("*.json")))
def test_each_shipped_record_names_its_command_and_make_target(record: str) -> None:
    meta = json.loads((WEIGHTS / record).read_text())
    made = meta.get("training", meta)  # a trained classifier's model.json keeps them under "training"
    assert made["command"].split()[0] in {"digitlab", "python"}
    target = made["reproduce"].removeprefix("make ")
    assert target in TARGETS and target.startswith("weights-")
    # The target runs the same program (its record spells out the options the Makefile leaves at their defaults).
    recipe = (ROOT / "Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    program = made["command"].split()[2] if made["command"].startswith("python") else "digitlab train"
    assert program in recipe
