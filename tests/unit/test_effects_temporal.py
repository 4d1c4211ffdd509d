"""Temporal consistency: least-squares alignment, chunk overlap, flicker drop on a panning sequence."""

from __future__ import annotations

import math

import pytest
import torch

from dav2_core.effects.temporal import TemporalAligner, align_scale_shift, flicker_metric, robust_scale_shift

T, H, W = 40, 48, 64


def _pan(frames: int = T, speed: float = 0.25) -> torch.Tensor:
    """Ground-truth inverse depth [T,H,W] of a smooth scene seen by a camera panning ``speed`` px/frame."""
    ys = torch.arange(H).float()[:, None]
    out = []
    for k in range(frames):
        xs = torch.arange(W).float()[None, :] + speed * k
        out.append(
            0.6
            + 0.25 * torch.sin(2 * math.pi * xs / 70) * torch.cos(2 * math.pi * ys / 50)
            + 0.1 * torch.cos(2 * math.pi * (xs + ys) / 90)
        )
    return torch.stack(out)


def _jitter(truth: torch.Tensor, flying: int = 0, seed: int = 0):
    """Per-frame random scale (0.5..2) and shift (-0.5..0.5), as independent relative predictions have;
    ``flying`` pixels per frame at random places get spurious near values (edge artefacts)."""
    g = torch.Generator().manual_seed(seed)
    n = truth.shape[0]
    a = 0.5 + 1.5 * torch.rand(n, generator=g)
    b = -0.5 + torch.rand(n, generator=g)
    out = a[:, None, None] * truth + b[:, None, None]
    for k in range(n if flying else 0):
        idx = torch.randperm(H * W, generator=g)[:flying]
        out[k].view(-1)[idx] = a[k] * (1.0 + 0.6 * torch.rand(flying, generator=g)) + b[k]
    return out


def _minmax(x: torch.Tensor, per_frame: bool) -> torch.Tensor:
    dims = (1, 2) if per_frame else (0, 1, 2)
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    return (x - lo) / (hi - lo)


def _affine_error(x: torch.Tensor, truth: torch.Tensor) -> float:
    """Median abs error of ``x`` against ``truth`` after ONE scale/shift for the whole sequence."""
    s, t = align_scale_shift(truth.reshape(1, -1, 1), x.reshape(1, -1, 1))
    return float((s * x + t - truth).abs().median())


def test_align_scale_shift_recovers_known_affine_and_honours_mask():
    g = torch.Generator().manual_seed(1)
    prev = torch.rand(3, 20, 30, generator=g)
    cur = (prev - torch.tensor([0.1, -2.0, 0.5])[:, None, None]) / torch.tensor([2.0, 0.5, 3.0])[:, None, None]
    s, t = align_scale_shift(prev, cur)
    assert torch.allclose(s, torch.tensor([2.0, 0.5, 3.0]), atol=1e-4)
    assert torch.allclose(t, torch.tensor([0.1, -2.0, 0.5]), atol=1e-4)
    bad = cur.clone()
    bad[:, :5] = 100.0  # garbage rows, masked out
    mask = torch.ones_like(cur, dtype=torch.bool)
    mask[:, :5] = False
    s2, t2 = align_scale_shift(prev, bad, mask)
    assert torch.allclose(s2, s, atol=1e-4) and torch.allclose(t2, t, atol=1e-4)
    s3, _ = robust_scale_shift(prev, torch.where(torch.rand(cur.shape, generator=g) < 0.02, 50.0, cur))
    assert torch.allclose(s3, s, rtol=1e-3)  # 2 % outliers are trimmed


def test_flicker_drops_tenfold_against_per_frame_normalisation():
    truth = _pan()
    frames = _jitter(truth, flying=3)
    per_frame = flicker_metric(_minmax(frames, per_frame=True))
    consistent = TemporalAligner(1.0)(frames)
    fixed = flicker_metric(_minmax(consistent, per_frame=False))
    assert per_frame >= 10 * fixed
    assert _affine_error(consistent, truth) < 0.01  # and it is the true depth up to one scale/shift


def test_flicker_drops_tenfold_against_batch_normalisation_without_alignment():
    truth = _pan()
    frames = _jitter(truth)
    unaligned = flicker_metric(_minmax(frames, per_frame=False))
    fixed = flicker_metric(_minmax(TemporalAligner()(frames), per_frame=False))
    assert unaligned >= 10 * fixed
    assert fixed == pytest.approx(flicker_metric(_minmax(truth, per_frame=False)), rel=0.1)


def test_smoothing_strength():
    truth = _pan(20)
    frames = _jitter(truth)
    assert torch.equal(TemporalAligner(0.0)(frames), frames)
    half = flicker_metric(_minmax(TemporalAligner(0.5)(frames), per_frame=False))
    full = flicker_metric(_minmax(TemporalAligner(1.0)(frames), per_frame=False))
    raw = flicker_metric(_minmax(frames, per_frame=False))
    assert full < half < raw


def test_flicker_metric_and_mask():
    x = torch.zeros(3, 4, 4)
    x[1, 0, 0] = 1.0
    assert flicker_metric(x) == pytest.approx(2 / 32)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1:, 1:] = True
    assert flicker_metric(x, mask) == 0.0
    with pytest.raises(ValueError, match="two frames"):
        flicker_metric(x[:1])
    with pytest.raises(ValueError, match="no pixels"):
        flicker_metric(x, torch.zeros(4, 4, dtype=torch.bool))


def test_bad_input():
    with pytest.raises(ValueError, match="smoothing"):
        TemporalAligner(1.5)
    with pytest.raises(ValueError, match=r"\[n,H,W\]"):
        TemporalAligner()(torch.rand(8, 8))
    aligner = TemporalAligner()
    aligner(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="differs from the previous"):
        aligner(torch.rand(2, 8, 9))


def test_align_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        align_scale_shift(torch.rand(2, 4, 4), torch.rand(2, 4, 5))


def test_large_frames_are_fitted_on_a_pixel_grid():
    """Frames above fit_pixels are fitted on every s-th row/column: the same scale/shift as a fit on every pixel
    (the relation is exact here), and the whole frame is aligned."""
    from dav2_core.effects.temporal import FIT_PIXELS, TemporalAligner

    g = torch.Generator().manual_seed(3)
    first = torch.rand(1, 300, 400, generator=g) + 0.5  # 120,000 pixels > FIT_PIXELS
    assert first[0].numel() > FIT_PIXELS
    second = (first - 0.2) / 1.7 + 0.01 * torch.rand(1, 300, 400, generator=g)
    grid, full = TemporalAligner(), TemporalAligner(fit_pixels=None)
    grid(first), full(first)
    a, b = grid(second), full(second)
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
    torch.testing.assert_close(a, first, atol=0.02, rtol=0)
    assert TemporalAligner()._grid(torch.zeros(300, 400)).numel() <= FIT_PIXELS
    assert TemporalAligner()._grid(torch.zeros(100, 100)).shape == (100, 100)  # small frames: every pixel
