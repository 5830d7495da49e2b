"""Is this a digit? A small CNN that refuses letters, symbols, scribbles, drawings and smudges.

    from digitlab.refuse import refusals
    reasons = refusals(crops)   # uint8 (N, 28, 28) to_mnist crops -> [None, 'blank', 'not a digit', ...]

It judges the 28x28 `to_mnist` crop, the very input the digit classifier sees (14,561 parameters; a batch
of 1,000 crops in ~0.1-0.25 s on this 2-core machine). Two of them are shipped, one network trained twice:
- `refuse` judges whole pictures: `digitlab predict` on images and /api/predict ask it once per batch;
- `refuse_pieces` (`pieces=True`) judges the pieces `digitlab read` cuts out of a picture: every candidate of
  all pictures at once; the chain uses its margins to choose the digits and digitlab.verdict to judge them.
`--accept-all` skips the refusing. The weights are src/digitlab/weights/NAME.safetensors, with NAME.json
recording the command, seed, threshold and validation numbers. Retrain both (10-20 min each on 2 CPU cores;
longer while other jobs run) with `make weights-refuse`, i.e.

    python -m digitlab.refuse --out runs/weights-refuse --seed 0
    python -m digitlab.refuse --pieces --out runs/weights-refuse --seed 0

Digits: MNIST train digits (5,000 held out for validation), with the project's augmentation (affine, pen
width, blur, low resolution, contrast), and the same digits written large, photographed and put through
`to_mnist`. Non-digits: digitlab.refuse_negatives (hand-drawn strokes, never fonts or digitlab.synth). The
threshold refuses at most REFUSE_DIGITS of the held-out digits.

`read` asks about pieces it cut out of a photo, not about whole pictures, so `refuse_pieces` learns from such
pieces too, a quarter of each batch (`_cut_pools`): the candidates `digitlab.segment` cuts from digitlab.synth
photos of numbers that cover one true digit, and candidates cut from photos of refuse_negatives' non-digits.
The check trained on whole pictures refused 3.3% of digits cut from numbers of held-out digits (this one
0.5%), so `read` refused numbers it had read right (issue 12); and the same net trained on both kinds
refuses fewer whole non-digit pictures (70.8% of synth's development non-digits against 83.3%), which
`predict` has nothing else to refuse with: hence two.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitlab.engine import one_torch_thread
from digitlab.errors import DigitlabError

REFUSE_DIGITS = 0.002  # share of held-out MNIST digits the threshold may refuse (the brief allows 0.3%)
CHUNK = 1024


class Gate(nn.Module):
    """28x28 -> one logit: > threshold means a digit."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            # No BatchNorm: on a CPU its backward pass took 80% of a training step here.
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]

        # Three 3x3 stages (28 -> 14 -> 7): strokes, then their junctions and ends, then the layout of the
        # whole shape, which the flat linear layer reads where it is (a digit's parts have fixed places).
        self.body = nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 32),
                                  nn.MaxPool2d(2, ceil_mode=True))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4 * 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


@functools.lru_cache(maxsize=4)
def load_gate(path: str | None = None, pieces: bool = False) -> tuple[Gate, float]:
    """The trained check and its threshold (safetensors + JSON; nothing is unpickled): the shipped one for
    whole pictures, or with `pieces` the one for pieces `read` cuts out."""
    from safetensors.torch import load_file

    from digitlab.models import shipped_weights

    weights = Path(path) if path else shipped_weights(_name(pieces))
    meta = weights.with_suffix(".json")
    if not weights.is_file() or not meta.is_file():
        raise DigitlabError(f"{weights}: no such refusal check (retrain it with `make weights-refuse`)")
    gate = Gate()
    gate.load_state_dict(load_file(str(weights)))
    gate.eval()
    return gate, float(json.loads(meta.read_text())["threshold"])


def digit_logits(crops: np.ndarray | torch.Tensor, gate: Gate | None = None) -> np.ndarray:
    """uint8 (N, 28, 28) -> float (N,): how much each crop looks like a digit (the threshold: refuse.json)."""
    gate = gate or load_gate()[0]
    x = torch.as_tensor(np.asarray(crops)).reshape(-1, 1, 28, 28)
    if len(x) == 0:
        return np.zeros(0, np.float32)
    # One thread: between ONNX Runtime's calls (read and predict run the classifier there) torch's pool
    # spins against it, ~40 ms a call of 1-8 crops here; one thread ~1 ms.
    with one_torch_thread(), torch.inference_mode():
        return torch.cat([gate(x[i:i + CHUNK].float() / 255) for i in range(0, len(x), CHUNK)]).numpy()


def margins(crops: np.ndarray | torch.Tensor, pieces: bool = False) -> np.ndarray:
    """uint8 (N, 28, 28) -> float (N,): the shipped check's logit less its threshold (< 0: not a digit); with
    `pieces`, the check for pieces cut out of a picture."""
    gate, threshold = load_gate(pieces=pieces)
    return digit_logits(crops, gate) - threshold


def refusals(crops: np.ndarray | torch.Tensor) -> list[str | None]:
    """Why each crop is not read as a digit ('blank', 'not a digit'), or None: one model call for all."""
    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.shape[1:] != (28, 28):
        raise DigitlabError(f"expected crops of shape (N, 28, 28), got {crops.shape}")
    blank = ~crops.reshape(len(crops), -1).any(1)
    return ["blank" if b else ("not a digit" if m < 0 else None) for b, m in zip(blank, margins(crops), strict=True)]


# ------------------------------------------------------------------------------------------------ training


def _pools(digits: np.ndarray, seed: int, negatives: int, photos: int) -> tuple[np.ndarray, np.ndarray]:
    from digitlab.refuse_negatives import digit_crop, negative_crop

    g = np.random.default_rng(seed)
    neg = [negative_crop(g) for _ in range(negatives)]
    pos = [digit_crop(digits[k], g) for k in g.integers(0, len(digits), photos)]
    return (np.stack(neg) if neg else np.zeros((0, 28, 28), np.uint8),
            np.stack(pos) if pos else np.zeros((0, 28, 28), np.uint8))


def _cut_pools(mnist: tuple[np.ndarray, np.ndarray], seed: int, numbers: int, non_digits: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """What `read` shows the check: candidates cut out of photos of `numbers` numbers of 1-6 digits written
    with `mnist` that cover one whole digit (chain.is_digit; fragments and pairs are the chain's business, not
    this check's), and up to four candidates of each of `non_digits` photos of hand-drawn non-digits, less
    those the strong model reads as a 1: any one stroke cut out of a drawing is a fair 1 (17% of the pieces),
    and taught that they are not digits, the check refused a ruler-straight 1 drawn on the canvas."""
    from PIL import Image

    from digitlab.chain import is_digit
    from digitlab.data.images import open_image, to_mnist
    from digitlab.refuse_negatives import negative_ink, photograph
    from digitlab.segment import segment
    from digitlab.synth import number_photo, photo_of

    def cut(layout, which) -> list[np.ndarray]:
        return [to_mnist(layout.crop(layout.piece(*layout.candidates[c])), look_for_field=False) for c in which]

    pos: list[np.ndarray] = []
    for k in range(numbers):
        info: dict = {}
        photo, _ = number_photo(mnist, np.random.default_rng([seed, k]), 1 + k % 6, info=info)
        layout = segment(open_image(photo))
        if layout.candidates:
            pos += cut(layout, np.flatnonzero(is_digit(layout, info["columns"])))
    neg: list[np.ndarray] = []
    for k in range(non_digits):
        g = np.random.default_rng([seed, 11, k])
        ink, _ = negative_ink(g)
        layout = segment(open_image(photo_of(ink, g)) if k % 2 else Image.fromarray(photograph(ink, g)))
        if layout.candidates:
            neg += cut(layout, g.choice(len(layout.candidates), min(4, len(layout.candidates)), replace=False))
    empty = np.zeros((0, 28, 28), np.uint8)
    if neg:
        from digitlab.engine import load_engine

        engine = load_engine("strong")
        pieces = np.stack(neg)
        read_as = np.concatenate([engine.logits(torch.from_numpy(pieces[i:i + CHUNK])).argmax(1).numpy()
                                  for i in range(0, len(pieces), CHUNK)])
        neg = list(pieces[read_as != 1])
    return np.stack(neg) if neg else empty, np.stack(pos) if pos else empty


def _drawing_code() -> str:
    """A short hash of the code that draws the pools: this file (`_pools`, `_one`, `_cut_pools`), the
    non-digits, `to_mnist`, and the segmenter and photo generator the pieces are cut from. Keyed by seed and
    sizes alone, a cache drawn before `to_mnist` changed was reused after it, and a refit then learned from
    crops today's code never makes."""
    import hashlib

    from digitlab import refuse_negatives, segment, synth
    from digitlab.data import images

    digest = hashlib.sha256()
    for source in (__file__, refuse_negatives.__file__, images.__file__, segment.__file__, synth.__file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    from digitlab.data.augment import handwriting, random_affine

    # The same warps for digits and non-digits, so that a warp says nothing about which it is.
    return handwriting(random_affine(x, degrees=12, scale=0.12, shift=0.06, generator=generator), p=0.35,
                       generator=generator)


def _rates(logits: np.ndarray, threshold: float) -> float:
    """The share refused."""
    return round(float((logits < threshold).mean()), 5)


def _name(pieces: bool) -> str:
    return "refuse_pieces" if pieces else "refuse"


def train(out: str | Path, seed: int = 0, steps: int = 3000, negatives: int = 20000, photos: int = 12000,
          data: str | Path | None = None, pieces: bool = False, cut_numbers: int = 2100, cut_non_digits: int = 2500
          ) -> dict:
    """Train a check (with `pieces`: the one for pieces `read` cuts out), pick its threshold on held-out digits,
    write out/NAME.safetensors + NAME.json (NAME: refuse or refuse_pieces)."""
    from safetensors.torch import save_file

    from digitlab.data.augment import handwriting
    from digitlab.data.idx import load_idx_split
    from digitlab.line import strong_split
    from digitlab.refuse_negatives import KINDS

    began = time.perf_counter()
    root = Path(data) if data else Path(__file__).resolve().parents[2] / "data" / "mnist"
    images, labels = (t.numpy() for t in load_idx_split(root, "train"))
    order = np.random.default_rng(seed).permutation(len(images))
    held, train_digits = images[order[:5000]], images[order[5000:]]
    # Numbers are written with neither these 5,000 nor the strong model's 2,000 held-out digits, which
    # digitlab.verdict and digitlab.combine are fitted on: their margins there must be those of unseen digits.
    writing = np.ones(len(images), bool)
    writing[order[:5000]] = False
    writing[strong_split(len(images))[1]] = False
    # The drawn pictures take minutes; a second run with the same seed, sizes and drawing code reuses them.
    cut = f"cut{cut_numbers}-{cut_non_digits}-" if pieces else ""
    cache = Path(out) / f"pools-{seed}-{negatives}-{photos}-{cut}{_drawing_code()}.npz"
    if cache.is_file():
        stored = dict(np.load(cache))
        val_neg = {kind: stored.pop(f"val_{kind}") for kind in KINDS}
    else:
        print(f"drawing {negatives:,} non-digits and {photos:,} photographed digits...", file=sys.stderr)
        stored = dict(zip(("neg", "photo"), _pools(train_digits, seed + 1, negatives, photos), strict=True))
        if pieces:
            print(f"and cutting pieces from {cut_numbers:,} photos of numbers and {cut_non_digits:,} of "
                  "non-digits...", file=sys.stderr)
            stored["cut_neg"], stored["cut_pos"] = _cut_pools((images[writing], labels[writing]), seed + 4,
                                                              cut_numbers, cut_non_digits)
        val_neg = {kind: np.stack([_one(kind, np.random.default_rng([seed, 7, i, k])) for k in range(300)])
                   for i, kind in enumerate(KINDS)}
        stored["val_photo"] = _pools(held, seed + 2, 0, 2000)[1]
        if pieces:
            stored["val_cut_neg"], stored["val_cut_pos"] = _cut_pools((held, labels[order[:5000]]), seed + 5,
                                                                      600, 600)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **stored, **{f"val_{kind}": v for kind, v in val_neg.items()})
    print(f"data ready in {time.perf_counter() - began:.0f} s; training {steps} steps", file=sys.stderr)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    gate = Gate()
    optimiser = torch.optim.AdamW(gate.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    t_digits = torch.from_numpy(train_digits)
    t = {name: torch.from_numpy(stored[name]) for name in ("photo", "neg", "cut_pos", "cut_neg") if name in stored}
    loss_fn = nn.BCEWithLogitsLoss()
    gate.train()
    for step in range(steps):
        pick = lambda pool, n: pool[torch.randint(len(pool), (n,), generator=generator)]  # noqa: E731
        if pieces:
            parts = [pick(t_digits, 64), pick(t["photo"], 32), pick(t["cut_pos"], 32), pick(t["neg"], 80),
                     pick(t["cut_neg"], 48)]
        else:
            parts = [pick(t_digits, 80), pick(t["photo"], 48), pick(t["neg"], 128)]
        batch = torch.cat(parts).unsqueeze(1).float() / 255
        target = torch.cat([torch.ones(128), torch.zeros(128)])
        loss = loss_fn(gate(_augment(batch, generator)), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.4f}", file=sys.stderr)
    gate.eval()

    held_logits = digit_logits(held, gate)
    threshold = float(np.quantile(held_logits, REFUSE_DIGITS))
    augmented = handwriting(torch.from_numpy(held).unsqueeze(1).float() / 255, p=0.35,
                            generator=torch.Generator().manual_seed(seed + 3))
    augmented = (augmented * 255).round().clamp(0, 255).to(torch.uint8).squeeze(1)
    test = load_idx_split(root, "test")[0].numpy()
    metrics = {
        "threshold_rule": f"the {REFUSE_DIGITS:.1%} quantile of the held-out digits' logits",
        "digits_refused": {"held_out_mnist_train": _rates(held_logits, threshold),
                           "held_out_with_handwriting_augmentation": _rates(digit_logits(augmented, gate), threshold),
                           "held_out_photographed": _rates(digit_logits(stored["val_photo"], gate), threshold),
                           "mnist_test": _rates(digit_logits(test, gate), threshold)},
        "non_digits_refused": {kind: _rates(digit_logits(v, gate), threshold) for kind, v in val_neg.items()},
        "validation_sizes": {"held_out_digits": len(held), "photographed": len(stored["val_photo"]),
                             "non_digits_per_kind": 300},
    }
    if pieces:
        metrics["digits_refused"]["held_out_cut_from_numbers"] = _rates(digit_logits(stored["val_cut_pos"], gate),
                                                                        threshold)
        metrics["non_digits_refused"]["cut_from_non_digits"] = _rates(digit_logits(stored["val_cut_neg"], gate),
                                                                      threshold)
        metrics["validation_sizes"].update(cut_from_numbers=len(stored["val_cut_pos"]),
                                           cut_from_non_digits=len(stored["val_cut_neg"]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in gate.state_dict().items()}, str(out / f"{_name(pieces)}.safetensors"))
    meta = {"format": "digitlab-refuse/1", "parameters": sum(p.numel() for p in gate.parameters()),
            "threshold": round(threshold, 6), "metrics": metrics,
            "judges": "pieces digitlab.read cuts out" if pieces else "whole pictures",
            "training": {"command": f"python -m digitlab.refuse {'--pieces ' if pieces else ''}--out {out} "
                                    f"--seed {seed} --steps {steps}",
                         "reproduce": "make weights-refuse", "seed": seed, "steps": steps,
                         "negatives": negatives, "photographed_digits": photos,
                         **({"cut_from": {"numbers": cut_numbers, "non_digits": cut_non_digits,
                                          "digits": len(stored["cut_pos"]),
                                          "non_digit_pieces": len(stored["cut_neg"])}} if pieces else {}),
                         "digits": "MNIST train minus 5,000 held out (seeded permutation)",
                         "seconds": round(time.perf_counter() - began, 1)},
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]}}
    (out / f"{_name(pieces)}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _one(kind: str, g: np.random.Generator) -> np.ndarray:
    from digitlab.data.images import to_mnist
    from digitlab.refuse_negatives import negative_ink, photograph

    ink, _ = negative_ink(g, kind)
    return to_mnist(photograph(ink, g) if kind == "texture" or g.random() < 0.6 else ink)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digitlab.refuse", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/weights-refuse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--negatives", type=int, default=20000, help="non-digits drawn for training")
    parser.add_argument("--photos", type=int, default=12000, help="photographed train digits drawn for training")
    parser.add_argument("--data", help="MNIST folder (default: the repository's data/mnist)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pieces", action="store_true",
                        help="train refuse_pieces, the check for pieces `read` cuts out, instead of refuse")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        meta = train(args.out, args.seed, args.steps, args.negatives, args.photos, args.data, args.pieces)
    except DigitlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
