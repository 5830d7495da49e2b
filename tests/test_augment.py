"""Augmentation: the affine warp moves digits as promised, and the elastic field is smooth, scaled and seeded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from digitlab.data.augment import _gaussian_matrix, elastic_displacement, pens, random_affine


def blob(n: int = 1) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    return x


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) row and column of each image's centre of mass, in pixels."""
    coords = torch.arange(28, dtype=torch.float32)
    mass = x.sum((1, 2, 3))
    rows = (x.sum((1, 3)) * coords).sum(1) / mass
    cols = (x.sum((1, 2)) * coords).sum(1) / mass
    return torch.stack([rows, cols], 1)


def test_no_warp_is_the_identity() -> None:
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(random_affine(x, degrees=0, scale=0, shift=0), x, atol=1e-5)


def test_affine_shift_stays_in_range() -> None:
    x = blob(256)
    moved = centre_of_mass(random_affine(x, degrees=0, scale=0, shift=0.1,
                                         generator=torch.Generator().manual_seed(0)))
    offset = moved - centre_of_mass(x)
    # ±10% of the side is ±2.8 pixels; the draws should use most of that range in each direction.
    assert offset.abs().max() <= 2.8 + 0.3 and offset.abs().max() > 2.0
    assert offset[:, 0].min() < -1 and offset[:, 0].max() > 1


def test_gaussian_matrix_is_a_zero_padded_gaussian_blur() -> None:
    v = torch.randn(28, 28)
    sigma, radius = 4.0, 16
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    direct = F.conv2d(v[None, None], kernel.view(1, 1, 1, -1), padding=(0, radius))
    direct = F.conv2d(direct, kernel.view(1, 1, -1, 1), padding=(radius, 0))[0, 0]
    g = _gaussian_matrix(28, sigma)
    assert torch.allclose(g @ v @ g.T, direct, atol=1e-5)


def test_elastic_field_is_smooth_and_scales_with_alpha() -> None:
    field = elastic_displacement(500, 28, 28, alpha=34, sigma=4,
                                 generator=torch.Generator().manual_seed(0)) * 14  # grid units -> pixels
    assert field.shape == (500, 28, 28, 2)
    centre = field[:, 14, 14]
    # Simard's alpha 34, sigma 4: about a pixel and a half of displacement in the middle of the image...
    assert 0.8 < centre.std().item() < 2.5
    # ...and neighbouring pixels move together (what makes it a distortion rather than noise).
    neighbour = field[:, 14, 15]
    correlation = torch.corrcoef(torch.stack([centre[:, 0], neighbour[:, 0]]))[0, 1]
    assert correlation > 0.95
    half = elastic_displacement(500, 28, 28, alpha=17, sigma=4, generator=torch.Generator().manual_seed(0)) * 14
    assert torch.allclose(half * 2, field, atol=1e-5)


def test_elastic_zero_alpha_changes_nothing_and_bad_values_are_rejected() -> None:
    assert elastic_displacement(3, 28, 28, alpha=0, sigma=4).abs().max() == 0
    with pytest.raises(ValueError, match="sigma"):
        elastic_displacement(3, 28, 28, alpha=34, sigma=0)


def test_elastic_warp_is_seeded_keeps_the_digit_and_differs_from_affine() -> None:
    x = blob(256)

    def warp(elastic: float) -> torch.Tensor:
        return random_affine(x, elastic=elastic, generator=torch.Generator().manual_seed(7))

    assert torch.equal(warp(34), warp(34))
    affine, elastic = warp(0), warp(34)
    assert not torch.allclose(affine, elastic, atol=1e-3)
    # A smooth field bends strokes and locally stretches or squeezes them, but on average it keeps the ink
    # and leaves the digit where the affine warp put it (a field in the wrong units throws digits out).
    ratio = elastic.sum((1, 2, 3)) / affine.sum((1, 2, 3))
    assert 0.9 < ratio.mean().item() < 1.1
    assert (centre_of_mass(elastic) - centre_of_mass(affine)).abs().mean().item() < 1.5


# -- pens: strokes that are not whole (issue 11: ballpoint, pencil, broken strokes) --------------------------

def stroke(n: int = 1) -> torch.Tensor:
    """A ring of ink: a 0 drawn with an even pen, soft at its edges like MNIST's strokes."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    radius = ((yy - 14) ** 2 + (xx - 14) ** 2).sqrt()
    ring = (1.5 - (radius - 8).abs()).clamp(0, 1)
    return ring.expand(n, 1, 28, 28).clone()


def test_pens_off_changes_nothing_and_bad_p_is_rejected() -> None:
    x = stroke(8)
    assert torch.equal(pens(x, p=0.0), x)
    with pytest.raises(ValueError, match="probability"):
        pens(x, p=1.5)


def test_pens_only_take_ink_away_and_keep_the_range() -> None:
    x = stroke(64)
    out = pens(x, p=1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    # Nothing appears off the stroke: a skipping pen or a light pencil never adds ink.
    assert out[x == 0].abs().max() == 0
    # The thin core stretches a stroke's middle back to full darkness, but overall ink is lost.
    assert out.sum() < 0.9 * x.sum()


def test_pens_cut_gaps_into_the_stroke_but_leave_most_of_it() -> None:
    """With every effect on, each ring loses ink in places (gaps, fading) yet keeps most of its length."""
    x = stroke(128)
    out = pens(x, p=1.0, generator=torch.Generator().manual_seed(1))
    on_ring = x > 0.99
    kept = ((out > 0.3) & on_ring).sum((1, 2, 3)).float() / on_ring.sum((1, 2, 3)).float()
    assert (kept < 1.0).float().mean() > 0.9  # nearly every ring has been broken somewhere ...
    assert kept.median() > 0.5  # ... and is still mostly there
    # Some ring has a real gap: a run of at least 2 ring pixels with no ink left at all.
    assert ((out < 0.05) & on_ring).sum((1, 2, 3)).max() >= 2


def test_pens_are_seeded_and_blank_images_stay_blank() -> None:
    x = stroke(16)
    a = pens(x, p=0.5, generator=torch.Generator().manual_seed(3))
    b = pens(x, p=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, pens(x, p=0.5, generator=torch.Generator().manual_seed(4)))
    assert pens(torch.zeros(4, 1, 28, 28), p=1.0).abs().max() == 0
