"""`python -m digitlab ...` — also what `torchrun -m digitlab train ...` runs on every rank."""

from digitlab.cli import main

raise SystemExit(main())
