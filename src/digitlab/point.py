"""A decimal point or comma between two digits: "3.14", not "314"; "1,250", not "1250".

    from digitlab.point import find_marks
    marks = find_marks(layout, pieces)   # [Mark(mark='.', before=1, box=(x0, y0, x1, y1), probability=0.98)]

    python -m digitlab.point_fit             # retrain the shipped check (make weights-point, ~13 min here)

Stop 50 found that where a piece of ink lies and how it is shaped do not tell a pen's point from the end of a
broken stroke beside its digit: a rule that read 94% of points put one into 1.3% of numbers that had none. So
here a rule only proposes and a small CNN decides: none, point or comma. A candidate is a small piece of ink in the
lower half of a gap between two of the digits read: left over by them, a detached part the chain took into a
digit's run, or a whole "digit" of the chain (a comma is often read as a 1; then it is no digit). The CNN sees a
window around it one digit tall (the ink, the candidate, the digits read) and its measurements in strokes and
digit heights, so it can see whether the piece carries on a digit's stroke. It is trained on the candidates of
made-up photos of numbers (`digitlab.synth`, with a point, a comma or no mark) written with the strong model's
2,000 held-out training digits; its threshold is chosen on photos kept out of that training.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from scipy import ndimage
from torch import nn

from digitlab.segment import Layout, Piece
from digitlab.sign import covered, inked, strength

MARKS = ("", ".", ",")  # the check's three answers: no mark, a point, a comma
SIDE = 32  # the window's side, pixels
SPAN = 1.2  # ... and how much of the picture it shows, in digit heights
SMALL = 0.6  # a candidate is at most this many digit heights wide and tall
LOW = 0.45  # ... and its middle is at least this far down the digits beside it
SCALARS = 11  # measurements per candidate (features)
STICK = 4.0  # a candidate this many times as long as it is wide, within UPRIGHT degrees of upright, is a stick
UPRIGHT = 10.0


@dataclass
class Mark:
    mark: str  # '.' or ','
    before: int  # the mark is written before this digit of the chain (1 .. digits - 1)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the input picture's pixels
    probability: float  # the check's probability of this mark
    replaces: int | None = None  # the chain read this mark as a digit (this one): it is no digit

    def to_json(self) -> dict:
        return {"mark": self.mark, "before": self.before, "box": [int(v) for v in self.box],
                "probability": self.probability}


@dataclass
class Candidate:
    piece: Piece  # the ink that may be a mark, work pixels
    before: int  # the gap it lies in: before digit `before` of the chain
    kind: int  # 0: ink the digits leave over; 1: a small detached part of digit `before` or the one before it;
    #            2: a whole digit of the chain (a comma read as a 1), which the mark then replaces

    @property
    def replaces(self) -> int | None:
        """Kind 2: which digit of the chain the candidate is (digit `before`)."""
        return self.before if self.kind == 2 else None


def candidates(layout: Layout, pieces: list[Piece]) -> list[Candidate]:
    """The small pieces of ink in the lower half of a gap between two of the digits `pieces` (read left to right):
    left over by them, a detached part of one of them, or one of them whole."""
    out: list[Candidate] = []
    if len(pieces) < 2:
        return out
    middles = [(p.box[0] + p.box[2]) / 2 for p in pieces]
    sizes = [int(p.mask.sum()) for p in pieces]
    owner = np.full(layout.ink.shape, -1, np.int64)
    for i, p in enumerate(pieces):
        owner[p.box[1]:p.box[3], p.box[0]:p.box[2]][p.mask] = i
    pen = strength(layout, pieces)
    labels, _ = ndimage.label(layout.ink > 0, structure=np.ones((3, 3), bool))
    area = max(2.0, 0.3 * layout.stroke**2)
    tallest = max(p.height for p in pieces)
    for index, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
        if max(ys.stop - ys.start, xs.stop - xs.start) > SMALL * tallest:
            continue
        own = labels[ys, xs] == index
        n = int(own.sum())
        if n < area:
            continue
        piece = Piece((xs.start, ys.start, xs.stop, ys.stop), own)
        owners = np.unique(owner[ys, xs][own])
        cx = (xs.start + xs.stop) / 2
        if owners.tolist() == [-1]:
            if not inked(layout, piece, pen):
                continue
            c = Candidate(piece, int(np.searchsorted(middles, cx)), 0)
        elif len(owners) == 1 and owners[0] >= 0:
            j = int(owners[0])
            if n >= 0.75 * sizes[j]:
                c = Candidate(piece, j, 2)
            elif n <= 0.25 * sizes[j]:
                c = Candidate(piece, j + 1 if cx > middles[j] else j, 1)
            else:
                continue
        else:
            continue
        a, b = _beside(pieces, c)
        if a is None or b is None:
            continue
        height = (a.height + b.height) / 2
        top = (a.box[1] + b.box[1]) / 2
        x0, y0, x1, y1 = piece.box
        if max(x1 - x0, y1 - y0) <= SMALL * height and (y0 + y1) / 2 >= top + LOW * height:
            out.append(c)
    return out


def _beside(pieces: list[Piece], c: Candidate) -> tuple[Piece | None, Piece | None]:
    """The digits on either side of the candidate's gap (None where the gap is at the number's end)."""
    after = c.before + 1 if c.kind == 2 else c.before
    if c.before < 1 or after >= len(pieces):
        return None, None
    return pieces[c.before - 1], pieces[after]


def features(layout: Layout, pieces: list[Piece], found: list[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's window (3, SIDE, SIDE: the ink, the candidate, the digits read but it) and measurements
    (SCALARS of them)."""
    digits = covered(layout, pieces)
    pen = strength(layout, pieces)
    stroke = max(layout.stroke, 1.0)
    H, W = layout.ink.shape
    planes = np.stack([np.clip(layout.ink / max(pen, 1e-3), 0, 1.5) / 1.5, np.zeros((H, W)), digits])
    planes = planes.astype(np.float32)
    windows, scalars = [], []
    for c in found:
        x0, y0, x1, y1 = c.piece.box
        a, b = _beside(pieces, c)
        height = (a.height + b.height) / 2
        bottom = (a.box[3] + b.box[3]) / 2
        half = max(2, int(round(SPAN * height / 2)))
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        box = (cx - half, cy - half, cx + half, cy + half)
        mask = c.piece.mask
        under = planes[2, y0:y1, x0:x1].copy()
        planes[1, y0:y1, x0:x1] = mask
        planes[2, y0:y1, x0:x1] = np.where(mask, 0, under)
        window = _cut(planes, box)
        planes[1, y0:y1, x0:x1] = 0
        planes[2, y0:y1, x0:x1] = under
        windows.append(F.interpolate(torch.from_numpy(window)[None], size=(SIDE, SIDE), mode="bilinear",
                                     antialias=True, align_corners=False)[0].numpy())
        # How far the candidate lies from the digits' ink, in strokes: a broken stroke's end lies close.
        near = ndimage.distance_transform_edt(~window[2].astype(bool))[window[1].astype(bool)]
        w, h, n = x1 - x0, y1 - y0, float(mask.sum())
        scalars.append([np.log(w / stroke), np.log(h / stroke), np.log(n / stroke**2), n / (w * h),
                        (cy - bottom) / height, ((x0 + x1) / 2 - (a.box[2] + b.box[0]) / 2) / height,
                        min(float(near.min()) if near.size else 99.0, 20.0) / stroke / 5,
                        (b.box[0] - a.box[2]) / height, *np.eye(3)[c.kind]])
    return (np.asarray(windows, np.float32).reshape(-1, 3, SIDE, SIDE),
            np.asarray(scalars, np.float32).reshape(-1, SCALARS))


def _cut(planes: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """planes[:, y0:y1, x0:x1], zero where the box runs past the picture."""
    x0, y0, x1, y1 = box
    _, H, W = planes.shape
    out = np.zeros((planes.shape[0], y1 - y0, x1 - x0), np.float32)
    a0, b0, a1, b1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if a1 > a0 and b1 > b0:
        out[:, b0 - y0 : b1 - y0, a0 - x0 : a1 - x0] = planes[:, b0:b1, a0:a1]
    return out


class PointNet(nn.Module):
    """None, point or comma, from a candidate's window and its measurements (23k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Linear(32 * 4 + SCALARS, 64), nn.ReLU(), nn.Linear(64, len(MARKS)))

    def forward(self, windows: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.convs(windows).flatten(1), scalars], 1))


@dataclass
class PointCheck:
    net: PointNet
    threshold: float  # a mark is read where its probability reaches this

    def probabilities(self, windows: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        """(k, MARKS) float64, so that the probability of a mark (point + comma) sums alike wherever it is taken."""
        if not len(windows):
            return np.zeros((0, len(MARKS)))
        with torch.inference_mode():
            p = torch.softmax(self.net(torch.from_numpy(windows), torch.from_numpy(scalars)), 1).numpy()
        return p.astype(np.float64)


@functools.cache
def shipped() -> PointCheck | None:
    """The shipped check (digitlab/weights/point.safetensors and point.json), or None without one."""
    from digitlab.models import shipped_weights

    weights = shipped_weights("point")
    if not weights.is_file():
        return None
    net = PointNet()
    net.load_state_dict(load_file(str(weights)))
    net.eval()
    return PointCheck(net, float(json.loads(weights.with_suffix(".json").read_text())["threshold"]))


def find_marks(layout: Layout, pieces: list[Piece], check: PointCheck | None = None) -> list[Mark]:
    """The points and commas between the digits `pieces` (read left to right, work pixels): at most one per gap,
    the likeliest candidate there, where the check's probability of a mark reaches its threshold."""
    check = check or shipped()
    found = [c for c in candidates(layout, pieces) if not _stick(c.piece)]  # a stick is never a mark
    if check is None or not found:
        return []
    p = check.probabilities(*features(layout, pieces, found))
    best: dict[int, Mark] = {}
    for c, row in zip(found, p, strict=True):
        kind = 1 + int(np.argmax(row[1:]))
        mark = Mark(MARKS[kind], c.before, layout.input_box(c.piece), float(row[1:].sum()), c.replaces)
        if mark.probability >= check.threshold and (c.before not in best
                                                    or mark.probability > best[c.before].probability):
            best[c.before] = mark
    return [best[k] for k in sorted(best)]


def _stick(piece: Piece) -> bool:
    """Whether the piece is a straight, thin, upright stick: a printed tick or a line's stub, not a point or a
    comma (a comma has a head). Of the true commas in 386 training photos, none is one at STICK 4 (2.3% are at 3)."""
    ys, xs = np.nonzero(piece.mask)
    if len(ys) < 3:
        return False
    # The pixels' second moments: their spread along and across the piece's long axis (a pixel is 1/12 wide).
    spread, axes = np.linalg.eigh(np.cov(np.stack([xs, ys]).astype(float)) + np.eye(2) / 12)
    upright = np.degrees(np.arctan2(abs(axes[0, 1]), abs(axes[1, 1])))
    return bool(np.sqrt(spread[1] / spread[0]) >= STICK and upright <= UPRIGHT)


def apply(digits: list, marks: list[Mark]) -> tuple[list, list[Mark]]:
    """The chain's digits less those a mark replaces, and the marks placed among the digits kept."""
    dropped = {m.replaces for m in marks if m.replaces is not None}
    kept = [d for i, d in enumerate(digits) if i not in dropped]
    return kept, [replace(m, before=m.before - sum(j < m.before for j in dropped), replaces=None) for m in marks]


def spelled(digits: str, marks: list[Mark]) -> str:
    """The number with its marks where they are (marks placed by `apply`): "314" with a point before 1 is "3.14"."""
    out = list(digits)
    for m in sorted(marks, key=lambda m: -m.before):
        out.insert(m.before, m.mark)
    return "".join(out)
