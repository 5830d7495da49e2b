"""Is this a digit? A small CNN that refuses letters, symbols, scribbles, drawings and smudges.

    from digitlab.refuse import refusals
    reasons = refusals(crops)   # uint8 (N, 28, 28) to_mnist crops -> [None, 'blank', 'not a digit', ...]

It judges the 28x28 `to_mnist` crop, the very input the digit classifier sees (14,561 parameters; a batch
of 1,000 crops in ~0.1-0.25 s on this 2-core machine). `digitlab predict` on images, /api/predict and
`digitlab read` (on every candidate of all pictures at once: the chain uses the logits to choose the digits,
and read.py's `digit_verdicts` and `_refusal` judge the chosen ones) ask it once per batch. `--accept-all`
skips the refusing. The shipped weights are
src/digitlab/weights/refuse.safetensors, with refuse.json recording the command, seed, threshold and
validation numbers. Retrain them (10-20 min on 2 CPU cores; longer while other jobs run) with
`make weights-refuse`, i.e.

    python -m digitlab.refuse --out runs/weights-refuse --seed 0

Digits: MNIST train digits (5,000 held out for validation), with the project's augmentation (affine, pen
width, blur, low resolution, contrast), and the same digits written large, photographed and put through
`to_mnist`. Non-digits: digitlab.refuse_negatives (hand-drawn strokes, never fonts or digitlab.synth). The
threshold refuses at most REFUSE_DIGITS of the held-out digits.
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
def load_gate(path: str | None = None) -> tuple[Gate, float]:
    """The trained check and its threshold (safetensors + JSON; nothing is unpickled)."""
    from safetensors.torch import load_file

    from digitlab.models import shipped_weights

    weights = Path(path) if path else shipped_weights("refuse")
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


def margins(crops: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (N, 28, 28) -> float (N,): the shipped check's logit less its threshold (< 0: not a digit)."""
    gate, threshold = load_gate()
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


def _drawing_code() -> str:
    """A short hash of the code that draws the pools: this file (`_pools`, `_one`), the non-digits and
    `to_mnist`. Keyed by seed and sizes alone, a cache drawn before `to_mnist` changed was reused after it, and
    a refit then learned from crops today's code never makes."""
    import hashlib

    from digitlab import refuse_negatives
    from digitlab.data import images

    digest = hashlib.sha256()
    for source in (__file__, refuse_negatives.__file__, images.__file__):
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


def train(out: str | Path, seed: int = 0, steps: int = 3000, negatives: int = 20000, photos: int = 12000,
          data: str | Path | None = None) -> dict:
    """Train the check, pick its threshold on held-out digits, write out/refuse.safetensors + refuse.json."""
    from safetensors.torch import save_file

    from digitlab.data.augment import handwriting
    from digitlab.data.idx import load_idx_split
    from digitlab.refuse_negatives import KINDS

    began = time.perf_counter()
    root = Path(data) if data else Path(__file__).resolve().parents[2] / "data" / "mnist"
    images = load_idx_split(root, "train")[0].numpy()
    order = np.random.default_rng(seed).permutation(len(images))
    held, train_digits = images[order[:5000]], images[order[5000:]]
    # The drawn pictures take minutes; a second run with the same seed, sizes and drawing code reuses them.
    cache = Path(out) / f"pools-{seed}-{negatives}-{photos}-{_drawing_code()}.npz"
    if cache.is_file():
        stored = np.load(cache)
        neg, photo, val_photo = stored["neg"], stored["photo"], stored["val_photo"]
        val_neg = {kind: stored[f"val_{kind}"] for kind in KINDS}
    else:
        print(f"drawing {negatives:,} non-digits and {photos:,} photographed digits...", file=sys.stderr)
        neg, photo = _pools(train_digits, seed + 1, negatives, photos)
        val_neg = {kind: np.stack([_one(kind, np.random.default_rng([seed, 7, i, k])) for k in range(300)])
                   for i, kind in enumerate(KINDS)}
        val_photo = _pools(held, seed + 2, 0, 2000)[1]
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, neg=neg, photo=photo, val_photo=val_photo,
                            **{f"val_{kind}": v for kind, v in val_neg.items()})
    print(f"data ready in {time.perf_counter() - began:.0f} s; training {steps} steps", file=sys.stderr)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    gate = Gate()
    optimiser = torch.optim.AdamW(gate.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    t_digits, t_photo, t_neg = (torch.from_numpy(a) for a in (train_digits, photo, neg))
    loss_fn = nn.BCEWithLogitsLoss()
    gate.train()
    for step in range(steps):
        pick = lambda pool, n: pool[torch.randint(len(pool), (n,), generator=generator)]  # noqa: E731
        batch = torch.cat([pick(t_digits, 80), pick(t_photo, 48), pick(t_neg, 128)]).unsqueeze(1).float() / 255
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
                           "held_out_photographed": _rates(digit_logits(val_photo, gate), threshold),
                           "mnist_test": _rates(digit_logits(test, gate), threshold)},
        "non_digits_refused": {kind: _rates(digit_logits(v, gate), threshold) for kind, v in val_neg.items()},
        "validation_sizes": {"held_out_digits": len(held), "photographed": len(val_photo),
                             "non_digits_per_kind": 300},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in gate.state_dict().items()}, str(out / "refuse.safetensors"))
    meta = {"format": "digitlab-refuse/1", "parameters": sum(p.numel() for p in gate.parameters()),
            "threshold": round(threshold, 6), "metrics": metrics,
            "training": {"command": f"python -m digitlab.refuse --out {out} --seed {seed} --steps {steps}",
                         "reproduce": "make weights-refuse", "seed": seed, "steps": steps,
                         "negatives": negatives, "photographed_digits": photos,
                         "digits": "MNIST train minus 5,000 held out (seeded permutation)",
                         "seconds": round(time.perf_counter() - began, 1)},
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]}}
    (out / "refuse.json").write_text(json.dumps(meta, indent=2) + "\n")
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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        meta = train(args.out, args.seed, args.steps, args.negatives, args.photos, args.data)
    except DigitlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
