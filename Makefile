# Two commands do all the set-up on a fresh clone:
#   make run    - create .venv, install, train the tutorial CNN on the shipped MNIST, report test accuracy
#   make test   - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint weights weights-tutorial weights-strong weights-chain weights-line weights-combine weights-verdict weights-point weights-refuse bench lessons serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/digitlab train --out runs/tutorial

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# Retrain the weights shipped inside the package (src/digitlab/weights/); each NAME.json records the command.
weights: weights-tutorial weights-strong weights-refuse weights-chain weights-line weights-combine weights-verdict weights-point

# A trained model's model.json records its `digitlab train` command; the shipped copy also names the make target.
REPRODUCE = $(BIN)/python -c "import json, sys; p, t = sys.argv[1:]; m = json.load(open(p)); \
	m['training']['reproduce'] = t; open(p, 'w').write(json.dumps(m, indent=2) + '\n')"

weights-tutorial: $(STAMP)
	$(BIN)/digitlab train --arch tutorial --epochs 4 --seed 0 --out runs/weights-tutorial
	cp runs/weights-tutorial/model.safetensors src/digitlab/weights/tutorial.safetensors
	cp runs/weights-tutorial/model.json src/digitlab/weights/tutorial.json
	$(REPRODUCE) src/digitlab/weights/tutorial.json "make weights-tutorial"

# The shipped strong model is seed 0 of the longer recipe with the handwriting augmentation, pens included,
# (since stop 34) 5 distorted copies of the training fonts' digits, data/hands, and (since stop 36) the digits
# read cuts out of 4,000 photos of numbers in MNIST's training digits and 1,500 in the training fonts
# (~20 min on 2 cores with bf16, ~80 without: 4,923 s at stop 40); 2,000 images are held out for fitting its
# temperature (honest confidence) and everything fitted after it, so none are used for measuring.
weights-strong: $(STAMP)
	$(BIN)/digitlab train --arch strong --epochs 40 --val-size 2000 --seed 0 --hands 5 --cuts 4000 --hand-cuts 1500 --out runs/weights-strong
	cp runs/weights-strong/model.safetensors src/digitlab/weights/strong.safetensors
	cp runs/weights-strong/model.json src/digitlab/weights/strong.json
	$(REPRODUCE) src/digitlab/weights/strong.json "make weights-strong"

# How `digitlab read` chooses which runs of slices are the digits (digitlab/chain.py): the checker (one whole
# digit, or a fragment, or two?) and the weights of the chain's score, learned on made-up photos of numbers
# written with MNIST's training digits (~8 min here). After weights-strong and weights-refuse: it learns how
# much to trust both.
weights-chain: $(STAMP)
	$(BIN)/python -m digitlab.chain --model strong --seed 0 --per-length 400 --epochs 6 --out src/digitlab/weights/chain

# The line reader's second opinion (digitlab/line.py): a CTC reader of the whole line of ink, trained on 48,000
# made-up photos of numbers written with MNIST's training digits and (since stop 34) 8,000 written in the
# training fonts of data/hands (~15 min to make them, ~18 min to train here).
weights-line: $(STAMP)
	$(BIN)/python -m digitlab.line --seed 0 --per-length 6000 --epochs 10 --hands 1000 --out src/digitlab/weights/line

# When the chain and the line reader disagree, which to believe (digitlab/combine.py): a regression fitted on
# 4,500 photos of the strong model's held-out digits and reported on 1,500 more (~7 min). After weights-chain
# and weights-line.
weights-combine: $(STAMP)
	$(BIN)/python -m digitlab.combine --model strong --seed 0 --per-length 1000 --out src/digitlab/weights/combine.json

# Whether a reading is a number at all (digitlab/verdict.py): one learned score over all its digits, fitted on
# made-up numbers written with the strong model's held-out digits and on hand-drawn non-digits (~6 min here).
# After weights-chain, weights-line and weights-combine: it weighs the chain's scores and the line reader's opinion.
weights-verdict: $(STAMP)
	$(BIN)/python -m digitlab.verdict --out src/digitlab/weights/verdict.json

# Whether a small piece of ink between two digits is a decimal point, a comma or neither (digitlab/point.py,
# fitted by point_fit.py): a small CNN on the candidates of 15,000 made-up photos of the strong model's held-out
# digits (~13 min here). After weights-strong and the reading's other weights: the candidates are what `read`
# leaves between its digits.
weights-point: $(STAMP)
	$(BIN)/python -m digitlab.point_fit --seed 0 --photos 15000 --epochs 12 --out src/digitlab/weights/point

# The "is this a digit?" checks (digitlab.refuse, 10-20 min each here): refuse for whole pictures (`predict`,
# /api/predict), refuse_pieces for the pieces `read` cuts out; each NAME.json records the threshold and the
# validation numbers. Then weights-chain, weights-combine and weights-verdict, which learn from its margins.
weights-refuse: $(STAMP)
	$(BIN)/python -m digitlab.refuse --out runs/weights-refuse --seed 0
	$(BIN)/python -m digitlab.refuse --pieces --out runs/weights-refuse --seed 0
	cp runs/weights-refuse/refuse.safetensors runs/weights-refuse/refuse.json src/digitlab/weights/
	cp runs/weights-refuse/refuse_pieces.safetensors runs/weights-refuse/refuse_pieces.json src/digitlab/weights/

bench: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py

lessons: $(STAMP)
	$(BIN)/digitlab lesson all

serve: $(STAMP)
	$(BIN)/digitlab serve

clean:
	rm -rf runs lessons-out test-artifacts .pytest_cache
