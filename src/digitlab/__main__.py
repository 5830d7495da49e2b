"""`python -m digitlab ...` — also what `torchrun -m digitlab train ...` runs on every rank."""

from digitlab.cli import run

run()
