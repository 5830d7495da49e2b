"""Dotted paper: the lattice of small dots printed under a number written in a bullet journal or on dot-grid paper.

    from digitlab.dots import lattice_dots
    dots = lattice_dots(mask, thick)   # the pixels of an ink mask that are the paper's dots, or None

Stop 49: `predict` read 30 of 50 development photos of one digit on dotted paper right. Each dot is a speck of ink
on its own, and `to_mnist` grows a digit with the specks near it, so the dots joined the digit one after another
and the digit came out small in a box of dots. A speck of grain or a piece of a broken stroke lies anywhere; the
paper's dots lie on a square lattice, one step apart both ways. Here the small, compact pieces of the mask are
fitted with such a lattice: its step is the usual distance from a piece to its nearest neighbour, its angle the
usual direction to it (a photo is seldom square to the paper), and the lattice is then fitted to the pieces on it
by least squares, so that the step is exact across the whole picture. The pieces are dotted paper only if most of
them lie on it, at least `FEW` of them, in two rows and two columns at least; a row of dots (an ellipsis, a dotted
line to write on) is no lattice. Dots a stroke runs over are part of the stroke and stay.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

FEW = 6  # at least this many dots on the lattice
ON = 0.15  # a dot lies within this share of a step of its lattice place, both ways
MOST = 0.7  # at least this share of the small pieces lie on the lattice
ALIKE = 0.2  # most nearest-neighbour distances are the step to within this share of it
SPARSE = 3.0  # the step is at least this many times a dot's size (dots, not a dashed or stippled texture)


def lattice_dots(mask: np.ndarray, thick: int) -> np.ndarray | None:
    """The pixels of `mask` (ink, True) that are dotted paper's dots, or None if the picture shows no dot lattice.
    A dot is a piece of ink no wider or taller than `thick` pixels (a printed line's greatest width)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count < FEW:
        return None
    boxes = ndimage.find_objects(labels)
    sides = np.array([(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes])
    area = ndimage.sum_labels(mask, labels, np.arange(1, count + 1))
    # A dot is small and round-ish: a short dash of a stroke is long one way, a blot of grain is not small.
    small = np.nonzero((sides.max(axis=1) <= thick) & (sides.max(axis=1) <= 2 * sides.min(axis=1) + 1)
                       & (area >= 0.4 * sides.prod(axis=1)))[0]
    if small.size < FEW:
        return None
    centres = np.array(ndimage.center_of_mass(mask, labels, small + 1), float)  # (row, column)
    on = _on_lattice(centres, float(np.median(sides[small].max(axis=1))))
    if on is None:
        return None
    dots = small[on]
    # Dots are alike: a bigger piece at a lattice place (a small digit's loop, a blot) is not one.
    dots = dots[area[dots] <= 4 * np.median(area[dots])]
    return np.isin(labels, dots + 1)


def _on_lattice(centres: np.ndarray, size: float) -> np.ndarray | None:
    """Which of `centres` lie on a square lattice that holds most of them, or None if there is no such lattice."""
    gaps, nearest = cKDTree(centres).query(centres, k=2)
    gaps, nearest = gaps[:, 1], nearest[:, 1]
    step = float(np.median(gaps))
    if step < SPARSE * max(size, 1.0) or np.mean(np.abs(gaps - step) <= ALIKE * step) < MOST:
        return None
    # A square lattice looks the same turned by a right angle: the angle to a nearest neighbour is taken four
    # times over, so that the two directions (and both senses) of the lattice agree.
    towards = centres[nearest] - centres
    angle = float(np.angle(np.exp(4j * np.arctan2(towards[:, 0], towards[:, 1])).mean())) / 4
    axes = step * np.array([[np.sin(angle), np.cos(angle)], [np.cos(angle), -np.sin(angle)]])
    places = centres @ np.linalg.inv(axes)
    # Where the lattice starts: the mean place of the pieces within a step, taken round the circle.
    start = np.angle(np.exp(2j * np.pi * places).mean(axis=0)) / (2 * np.pi)
    for _ in range(2):
        whole = np.round(places - start)
        near = np.all(np.abs(places - start - whole) <= ON, axis=1)
        if near.sum() < FEW:
            return None
        # The lattice fitted to the dots on it: its origin and both steps, by least squares.
        design = np.column_stack([np.ones(int(near.sum())), whole[near]])
        fit, *_ = np.linalg.lstsq(design, centres[near], rcond=None)
        origin, axes = fit[0], fit[1:]
        if abs(np.linalg.det(axes)) < 1e-6:
            return None
        places, start = (centres - origin) @ np.linalg.inv(axes), np.zeros(2)
    whole = np.round(places)
    near = np.all(np.abs(places - whole) <= ON, axis=1)
    rows, cols = np.unique(whole[near, 0]).size, np.unique(whole[near, 1]).size
    if near.sum() < max(FEW, MOST * len(centres)) or min(rows, cols) < 2:
        return None
    return near
