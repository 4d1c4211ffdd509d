"""Temporal consistency for relative depth of video frames: scale/shift alignment and a flicker metric.

Relative depth is affine-invariant: every forward pass (each chunk, each frame) comes out with its own
unknown scale and shift, so normalising frames one by one makes video flicker. Here each chunk is
aligned to its predecessor by least squares (outliers trimmed) on the frames they share (or, without overlap, on the
adjacent frames), per-frame scale/shift jitter is smoothed exponentially against the previous output
frame, and the caller then normalises the whole batch once (``normalize`` mode 'batch').
All maps are [B,H,W] (frames first), float32, on the input's device.
"""

from __future__ import annotations

import math

import torch


def align_scale_shift(
    prev: torch.Tensor, cur: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``scale, shift`` ([B] each) with ``scale * cur + shift ≈ prev`` per frame.

    prev, cur: [B,H,W] (or [H,W]); mask: optional bool [B,H,W] of pixels to use (non-finite pixels are
    always left out). A frame with no variance (or < 2 usable pixels) gets scale 1 and the mean offset.
    """
    if prev.shape != cur.shape:
        raise ValueError(f"prev and cur must have the same shape, got {tuple(prev.shape)} and {tuple(cur.shape)}")
    if prev.ndim == 2:
        prev, cur = prev[None], cur[None]
        mask = None if mask is None else mask[None]
    if prev.ndim != 3:
        raise ValueError(f"prev/cur must be [B,H,W] depth maps, got shape {tuple(prev.shape)}")
    p, c = prev.double().flatten(1), cur.double().flatten(1)
    w = torch.isfinite(p) & torch.isfinite(c)
    if mask is not None:
        if mask.shape != prev.shape:
            raise ValueError(f"mask must match the depth shape {tuple(prev.shape)}, got {tuple(mask.shape)}")
        w = w & mask.flatten(1).bool()
    w = w.double()
    p, c = torch.nan_to_num(p) * w, torch.nan_to_num(c) * w
    n = w.sum(1).clamp_min(1.0)
    mp, mc = p.sum(1) / n, c.sum(1) / n
    cov = (w * (c - mc[:, None]) * (p - mp[:, None])).sum(1)
    var = (w * (c - mc[:, None]) ** 2).sum(1)
    ok = (var > 1e-12 * n * torch.clamp(mc.abs(), min=1.0) ** 2) & (w.sum(1) >= 2)
    scale = torch.where(ok, cov / torch.where(ok, var, torch.ones_like(var)), torch.ones_like(var))
    shift = mp - scale * mc
    return scale.float(), shift.float()


def robust_scale_shift(
    prev: torch.Tensor, cur: torch.Tensor, iterations: int = 3, cutoff: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`align_scale_shift` with outlier trimming ([B] each): after each fit, pixels whose residual is
    more than ``cutoff`` robust standard deviations (1.4826·MAD) from the median residual are left out
    and the fit is repeated. Flying pixels and content that moved between frames then do not bias it.
    The start is outlier-proof: median and MAD matched (scale assumed positive, as between two relative
    depth maps of the same scene)."""
    p, c = prev.flatten(1), cur.flatten(1)
    med_p, med_c = p.nanmedian(1, keepdim=True).values, c.nanmedian(1, keepdim=True).values
    mad_p = (p - med_p).abs().nanmedian(1).values
    mad_c = (c - med_c).abs().nanmedian(1).values
    ok = mad_c > 1e-12
    scale = torch.where(ok, mad_p / torch.where(ok, mad_c, torch.ones_like(mad_c)), torch.ones_like(mad_c))
    shift = med_p[:, 0] - scale * med_c[:, 0]
    for _ in range(iterations):
        r = (scale[:, None, None] * cur + shift[:, None, None] - prev).flatten(1)
        med = r.nanmedian(dim=1, keepdim=True).values
        mad = (r - med).abs().nanmedian(dim=1, keepdim=True).values
        keep = (r - med).abs() <= cutoff * 1.4826 * mad.clamp_min(1e-12)
        scale, shift = align_scale_shift(prev, cur, keep.view_as(prev))
    return scale, shift


#: Frames larger than this are fitted on a regular pixel grid of about this many pixels (the fit has two
#: unknowns; a 1080p frame fitted on every pixel costs seconds on a CPU, on 1/36 of them milliseconds).
FIT_PIXELS = 1 << 16


class TemporalAligner:
    """Streaming frame-to-frame alignment of relative depth: call it with consecutive chunks [n,H,W].

    Each frame's robust scale/shift to the previous *output* frame is applied with strength ``smoothing``
    (0..1; 1 = fully aligned). The last output frame is carried to the next call, so a clip processed in
    chunks gives the same frames as the whole clip at once.
    Frames of more than ``fit_pixels`` pixels are fitted on every s-th row and column (s chosen so about
    ``fit_pixels`` remain; None = every pixel); the scale/shift is applied to the whole frame.
    """

    def __init__(self, smoothing: float = 1.0, fit_pixels: int | None = FIT_PIXELS) -> None:
        if not (math.isfinite(smoothing) and 0.0 <= smoothing <= 1.0):
            raise ValueError(f"smoothing must be in 0..1, got {smoothing}")
        self.smoothing = smoothing
        self.fit_pixels = fit_pixels
        self.last: torch.Tensor | None = None

    def _grid(self, frame: torch.Tensor) -> torch.Tensor:
        """The pixels a fit uses: all of them, or every s-th row/column of a large frame."""
        pixels = frame.shape[-2] * frame.shape[-1]
        if self.fit_pixels is None or pixels <= self.fit_pixels:
            return frame
        step = math.ceil(math.sqrt(pixels / self.fit_pixels))
        return frame[..., ::step, ::step]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Aligned copy of ``frames`` [n,H,W] (float32, same device)."""
        if not isinstance(frames, torch.Tensor) or frames.ndim != 3 or min(frames.shape) == 0:
            raise ValueError(f"frames must be a non-empty [n,H,W] tensor, got {getattr(frames, 'shape', type(frames))}")
        if self.last is not None and self.last.shape != frames.shape[1:]:
            raise ValueError(
                f"frame size {tuple(frames.shape[1:])} differs from the previous frames' {tuple(self.last.shape)}"
            )
        out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
        a = self.smoothing
        for k in range(frames.shape[0]):
            frame = frames[k].float()
            if self.last is not None and a > 0.0:
                s, t = robust_scale_shift(self._grid(self.last.to(frame.device))[None], self._grid(frame)[None])
                torch.mul(frame, 1.0 + a * (s[0] - 1.0), out=out[k]).add_(
                    a * t[0]
                )  # in place: no frame-sized temporary
            else:
                out[k] = frame
            if self.last is None or self.last.device != out.device:
                self.last = out[k].clone()  # not a view: the chunk need not stay alive
            else:
                self.last.copy_(out[k])  # one buffer for the whole stream
        return out


def flicker_metric(normalised: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean absolute frame-to-frame change of normalised depth [T,H,W] (0..1), over ``mask`` pixels
    ([H,W] or [T,H,W] bool, e.g. a static part of the scene) or all pixels. Needs T ≥ 2."""
    if not isinstance(normalised, torch.Tensor) or normalised.ndim != 3:
        raise ValueError(f"normalised depth must be [T,H,W], got {getattr(normalised, 'shape', type(normalised))}")
    if normalised.shape[0] < 2:
        raise ValueError("flicker needs at least two frames")
    diff = (normalised[1:] - normalised[:-1]).abs()
    if mask is None:
        return float(diff.mean())
    m = mask.bool().expand_as(normalised)[1:] & mask.bool().expand_as(normalised)[:-1]
    if not bool(m.any()):
        raise ValueError("the flicker mask selects no pixels")
    return float(diff[m].mean())
