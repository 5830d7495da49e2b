"""Other hands: the digits 0-9 of about 150 handwriting fonts, as 28x28 MNIST-style images.

MNIST's 250 writers were American census staff and students, all writing with one kind of pen. Users write a
1 with a long flag, a 7 with a bar, a 4 open at the top, a 9 with a straight stem; MNIST has few of those. The
handwriting fonts of Google Fonts (SIL Open Font License or Apache 2.0) were each drawn from one person's
hand, and about 35 of them (Playwrite) are the school handwriting of a country. Their digits, rendered once and
brought to 28x28 by the same `to_mnist` every picture goes through, ship as `data/hands/hands.npz` (10 digits
x the fonts, 0.3 MB); `data/hands/README.md` lists every font with its licence.

The fonts are split by family, not by font, so that no family is on both sides: `split("train")` is what
`digitlab train --hands N` adds to MNIST's training images, `split("validation")` the fonts nothing trains on,
which development measures read. Playwrite, the largest family, is always on the training side.

    python -m digitlab.data.hands FONT_DIR [--out data/hands/hands.npz]   # render *.woff / *.ttf again
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from digitlab.data import Digits
from digitlab.data.augment import elastic_displacement
from digitlab.errors import DigitlabError

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "data" / "hands" / "hands.npz"
AMBIGUOUS = ROOT / "data" / "hands" / "ambiguous.txt"
# Families: fonts whose names share one of these prefixes were drawn by one designer or one project.
FAMILIES = ("playwrite", "edu", "nanum", "sedgwick", "shadows-into-light", "caveat", "patrick-hand", "comforter")
VALIDATION_SHARE = 0.25


def family(name: str) -> str:
    return next((f for f in FAMILIES if name.startswith(f)), name)


def is_validation(name: str) -> bool:
    """About a quarter of the families, fixed by a hash of the family's name (so adding a font moves no other)."""
    group = family(name)
    if group == "playwrite":
        return False
    digest = hashlib.sha256(group.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < VALIDATION_SHARE


def load(path: Path = DEFAULT) -> tuple[np.ndarray, list[str]]:
    """(fonts, 10, 28, 28) uint8 white-on-black images and the fonts' names."""
    try:
        with np.load(path, allow_pickle=False) as data:
            images, names = data["images"], [str(n) for n in data["names"]]
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no such file (it ships with the repository, in data/hands/)") from None
    except (OSError, KeyError, ValueError) as error:
        raise DigitlabError(f"{path}: not a hands file ({error})") from None
    if images.ndim != 4 or images.shape[1:] != (10, 28, 28) or len(names) != len(images):
        raise DigitlabError(f"{path}: expected (fonts, 10, 28, 28) images and one name per font")
    return images, names


def split(which: str, path: Path = DEFAULT, unambiguous: bool = False) -> Digits:
    """The training or the validation fonts' digits as `Digits` (labels 0-9, names 'font:digit'). With
    `unambiguous`, less the digits listed in AMBIGUOUS (see `ambiguous`)."""
    if which not in ("train", "validation"):
        raise ValueError(f"which must be 'train' or 'validation', got {which!r}")
    images, names = load(path)
    keep = [i for i, n in enumerate(names) if is_validation(n) == (which == "validation")]
    picked = torch.from_numpy(images[keep].reshape(-1, 28, 28).copy())
    labels = torch.arange(10).repeat(len(keep))
    digits = Digits(picked, labels, f"hands:{which}", [f"{names[i]}:{d}" for i in keep for d in range(10)])
    if unambiguous:
        left_out = set(AMBIGUOUS.read_text().split()) if AMBIGUOUS.is_file() else set()
        digits = digits.subset(torch.tensor([k for k, n in enumerate(digits.names) if n not in left_out]))
        digits.source = f"hands:{which}, unambiguous"
    return digits


def ambiguous(model: str, copies: int = 8, seed: int = 99, share: float = 0.25) -> list[str]:
    """The training fonts' digits that MNIST's writers would read otherwise: those `model` (a classifier
    trained on MNIST alone) reads as another digit clean, or in more than `share` of `copies` distorted copies
    with the training augmentation. Mostly 1s with a long flag, which an MNIST reader takes for a 7: trained
    on them, the classifier read MNIST's 7s as 1s in photos (stop 34), so it leaves them out."""
    from digitlab.data import augment
    from digitlab.engine import load_engine

    engine = load_engine(model)
    fonts = split("train")
    many = distorted(fonts, copies, seed=seed)
    torch.manual_seed(seed)
    x = augment.handwriting(augment.pens(augment.random_affine(many.images.float().div(255).unsqueeze(1))))
    read = engine.logits((x.squeeze(1) * 255).round().to(torch.uint8)).argmax(1)
    wrong = (read != many.labels).view(copies, -1).float().mean(0)
    clean = engine.logits(fonts.images).argmax(1) != fonts.labels
    return [fonts.names[k] for k in torch.nonzero((wrong > share) | clean).flatten().tolist()]


def distorted(digits: Digits, copies: int, seed: int = 0, alpha: float = 20.0, sigma: float = 4.0) -> Digits:
    """`copies` elastically distorted versions of each digit: one font's 7 written `copies` times, never twice
    alike. Training adds its own rotation, scale, shift, pens and blur on top, as for MNIST's digits; the
    elastic field is what makes the strokes wobble as a hand's do, which a font's never do."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    generator = torch.Generator().manual_seed(seed)
    x = digits.images.float().div(255).unsqueeze(1).repeat(copies, 1, 1, 1)
    n, _, height, width = x.shape
    identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), list(x.shape), align_corners=False)
    grid = identity + elastic_displacement(n, height, width, alpha, sigma, generator)
    moved = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    images = (moved.squeeze(1) * 255).round().clamp(0, 255).to(torch.uint8)
    labels = digits.labels.repeat(copies) if digits.labels is not None else None
    return Digits(images, labels, f"{digits.source} x{copies}")


def pools(which: str, copies: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (images, labels) pool per font of the split, `copies` distorted versions of each of its digits:
    what digitlab.synth.number_photo writes one number with, so that a number is in one hand and a repeated
    digit is not the same picture twice."""
    fonts = split(which)
    many = distorted(fonts, copies, seed=seed)
    count = len(fonts) // 10
    # distorted() repeats the fonts copy after copy: image i is font (i // 10) % count, digit i % 10.
    font_of = (np.arange(len(many)) // 10) % count
    images, labels = many.images.numpy(), many.labels.numpy()
    return [(images[font_of == f], labels[font_of == f]) for f in range(count)]


def render(font: Path, size: int = 96) -> np.ndarray | None:
    """The ten digits of `font` through to_mnist, (10, 28, 28) uint8; None when the font lacks any of them."""
    from PIL import Image, ImageDraw, ImageFont

    from digitlab.data.images import open_image, to_mnist

    face = ImageFont.truetype(str(font), size)

    def page(text: str) -> np.ndarray:
        sheet = Image.new("L", (2 * size + 8, 2 * size + 8), 255)
        ImageDraw.Draw(sheet).text((sheet.width // 2, sheet.height // 2), text, fill=0, font=face, anchor="mm")
        return np.asarray(sheet)

    missing = page("\ue000")  # a private-use code point: what this font draws for a glyph it does not have
    pages = [page(d) for d in "0123456789"]
    if any((p < 128).sum() < 20 or np.array_equal(p, missing) for p in pages):
        return None
    if len({p.tobytes() for p in pages}) < 10:
        return None
    out = []
    for p in pages:
        buffer = io.BytesIO()
        Image.fromarray(p).save(buffer, format="PNG")
        out.append(to_mnist(open_image(buffer.getvalue())))
    return np.stack(out).astype(np.uint8)


def build(folder: Path, out: Path) -> list[str]:
    """Render every font in `folder` (its file name without suffix is the font's name) into `out`."""
    from digitlab.fileio import atomic_write_bytes

    fonts = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".woff", ".ttf", ".otf"))
    images, names = [], []
    for font in fonts:
        digits = render(font)
        if digits is not None:
            images.append(digits)
            names.append(font.stem)
    if not images:
        raise DigitlabError(f"{folder}: no font with all ten digits")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.stack(images), names=np.array(names))
    atomic_write_bytes(out, buffer.getvalue())
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m digitlab.data.hands", description=__doc__.split("\n")[0])
    parser.add_argument("fonts", type=Path, nargs="?", help="a folder of .woff / .ttf / .otf handwriting fonts")
    parser.add_argument("--out", type=Path, default=DEFAULT)
    parser.add_argument("--ambiguous", metavar="MODEL",
                        help="instead: list in data/hands/ambiguous.txt the digits MODEL (MNIST only) misreads")
    args = parser.parse_args(argv)
    if args.ambiguous:
        from digitlab.fileio import atomic_write_text

        listed = ambiguous(args.ambiguous)
        atomic_write_text(AMBIGUOUS, "\n".join(listed) + "\n")
        print(f"{len(listed)} ambiguous digits -> {AMBIGUOUS}")
        return
    if args.fonts is None:
        parser.error("give a folder of fonts, or --ambiguous MODEL")
    names = build(args.fonts, args.out)
    validation = [n for n in names if is_validation(n)]
    print(f"{len(names)} fonts -> {args.out}: {len(names) - len(validation)} train, {len(validation)} validation")


if __name__ == "__main__":
    main()
