"""Depth → 0..1 normalisation (near = 1 = white) and exact, NaN-aware percentiles.

Everything runs on the depth tensor's device, batched; no per-pixel Python loops. Depth layout is
[B,H,W]; a plain tensor is read as relative depth (larger = nearer), a :class:`DepthMap` is turned
into nearness first (metric metres are negated), so near is 1 for both kinds.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .depth import DepthMap
from .ranges import ESTIMATE_MODES, PERCENTILES, canonical, help_of

NormalizeMode = Literal["min_max", "percentile", "batch", "raw"]

#: The normalisation modes, in UI order, with the short help used for tooltips (defined in ``ranges``).
NORMALIZE_MODE_HELP: dict[str, str] = help_of(ESTIMATE_MODES)
NORMALIZE_MODES: tuple[str, ...] = tuple(NORMALIZE_MODE_HELP)
#: The modes that take a range (all but 'raw').
_RANGED: tuple[str, ...] = tuple(m for m in NORMALIZE_MODES if m != "raw")


def _check_mode(mode: str, allowed: tuple[str, ...]) -> str:
    """The current name of normalisation ``mode`` (older names accepted, ``ranges.LEGACY_NAMES``) if it is one of
    ``allowed``; ValueError naming the choices otherwise."""
    name = canonical(mode, "estimate", "normalisation mode")
    if name not in allowed:
        raise ValueError(f"normalisation mode {mode!r} has no range here; choose one of {', '.join(allowed)}")
    return name


def _check_percentiles(low_pct: float, high_pct: float) -> None:
    if not (math.isfinite(low_pct) and math.isfinite(high_pct) and 0.0 <= low_pct < high_pct <= 100.0):
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low_pct}, high={high_pct}")


def as_depth_values(depth: DepthMap | torch.Tensor) -> torch.Tensor:
    """The [B,H,W] float32 values of a DepthMap or tensor (float16/bfloat16 upcast), checked for shape."""
    values = depth.values if isinstance(depth, DepthMap) else depth
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"depth must be a DepthMap or a [B,H,W] tensor, got {type(values).__name__}")
    if values.ndim != 3:
        raise ValueError(
            f"depth must be [B,H,W] (batch, height, width), got shape {tuple(values.shape)};"
            " add a batch dimension with .unsqueeze(0) for a single map"
        )
    if values.shape[0] == 0 or values.shape[1] == 0 or values.shape[2] == 0:
        raise ValueError(f"depth is empty (shape {tuple(values.shape)}); it needs at least one 1x1 image")
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"depth must hold real numbers, got dtype {values.dtype}")
    return values.float()


def nearness(depth: DepthMap | torch.Tensor) -> torch.Tensor:
    """[B,H,W] float32, larger = nearer, checked for shape: :meth:`DepthMap.nearness` (the definition)
    for a DepthMap; a plain tensor is read as relative depth (already nearness)."""
    values = as_depth_values(depth)
    return depth.with_values(values).nearness() if isinstance(depth, DepthMap) else values


def masked_quantile(values: torch.Tensor, valid: torch.Tensor, qs: list[float] | tuple[float, ...]) -> torch.Tensor:
    """Exact per-row quantiles of ``values[R,N]`` over the entries where ``valid[R,N]`` is True.

    ``qs`` are fractions in 0..1. Same definition as ``numpy.percentile`` (linear interpolation between
    the two nearest order statistics), computed with ``torch.kthvalue`` plus a count/min pass for the
    upper neighbour, so there is no size limit (``torch.quantile`` in older torch refuses more than 16M
    elements), rows may have different numbers of valid entries, and no row is fully sorted. Rows with no valid entry give NaN. Returns [R, len(qs)] float32.
    """
    if values.ndim != 2 or valid.shape != values.shape:
        raise ValueError(
            f"masked_quantile needs values and valid of the same [R,N] shape, got {values.shape}, {valid.shape}"
        )
    rows_count, _ = values.shape
    out = torch.full((rows_count, len(qs)), float("nan"), dtype=torch.float32, device=values.device)
    if rows_count == 0 or not qs:
        return out
    inf = torch.tensor(float("inf"), dtype=torch.float32, device=values.device)
    filled = torch.where(valid, values.float(), inf)  # invalid entries sort last
    counts = valid.sum(dim=1)
    for n in torch.unique(counts).tolist():  # rows are batched by their number of valid entries
        if n == 0:
            continue
        same = counts == n
        rows = filled if bool(same.all()) else filled[same]
        results = []
        for q in qs:
            pos = float(q) * (n - 1)
            k = int(math.floor(pos))
            frac = pos - k
            lo = torch.kthvalue(rows, k + 1, dim=1).values  # k+1: kthvalue is 1-based
            if frac == 0.0 or k + 1 >= n:
                results.append(lo)
                continue
            # (k+2)-th smallest: lo again if it is repeated, else the smallest entry above lo.
            repeated = (rows <= lo[:, None]).sum(dim=1) >= k + 2
            above = torch.where(rows > lo[:, None], rows, inf).amin(dim=1)
            hi = torch.where(repeated, lo, above)
            results.append(lo + (hi - lo) * frac)
        stacked = torch.stack(results, dim=1)
        if rows is filled:
            out = stacked
        else:
            out[same] = stacked
    return out


def range_of(
    depth: DepthMap | torch.Tensor,
    mode: str = "min_max",
    low_pct: float = PERCENTILES[0],
    high_pct: float = PERCENTILES[1],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image nearness bounds ``(lo[B], hi[B])`` float32 that map to 0 (far) and 1 (near).

    ``mode``: 'min_max' (finite min/max of each image), 'percentile' (each image's ``low_pct`` /
    ``high_pct`` percentiles) or 'batch' (one finite min/max over the whole batch, repeated B times).
    Bounds are in nearness units: the values for relative depth, minus metres for metric depth.
    NaN/Inf pixels are ignored; an image without finite pixels gets ``lo = hi = 0``.
    'raw' has no range (it does not rescale) and is refused.
    """
    mode = _check_mode(mode, _RANGED)
    near = nearness(depth)
    batch = near.shape[0]
    flat = near.reshape(batch, -1)
    finite = torch.isfinite(flat)
    if mode == "percentile":
        _check_percentiles(low_pct, high_pct)
        q = masked_quantile(flat, finite, (low_pct / 100.0, high_pct / 100.0))
        lo, hi = q[:, 0], q[:, 1]
    else:
        lo = torch.where(finite, flat, torch.inf).amin(dim=1)
        hi = torch.where(finite, flat, -torch.inf).amax(dim=1)
        if mode == "batch":
            lo = lo.amin().expand(batch).clone()
            hi = hi.amax().expand(batch).clone()
    empty = ~torch.isfinite(lo) | ~torch.isfinite(hi)
    zero = torch.zeros_like(lo)
    return torch.where(empty, zero, lo), torch.where(empty, zero, hi)


def scale_to_unit(near: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """Map nearness [B,H,W] linearly so ``lo[B]`` → 0 and ``hi[B]`` → 1, clamped to 0..1 (float32).

    Images whose range is zero (``hi <= lo``) become all zeros, never NaN; NaN/Inf pixels become 0.
    ``invert`` flips valid pixels (1 - v); invalid pixels and zero-range images stay 0 either way.
    """
    lo = lo.to(device=near.device, dtype=torch.float32).reshape(-1, 1, 1)
    hi = hi.to(device=near.device, dtype=torch.float32).reshape(-1, 1, 1)
    span = hi - lo
    ok = span > 0
    out = ((near - lo) / torch.where(ok, span, torch.ones_like(span))).clamp_(0.0, 1.0)
    if invert:
        out = 1.0 - out
    valid = torch.isfinite(near) & ok
    return torch.where(valid, out, torch.zeros_like(out))


def normalize_depth(
    depth: DepthMap | torch.Tensor,
    mode: str = "min_max",
    low_pct: float = PERCENTILES[0],
    high_pct: float = PERCENTILES[1],
    invert: bool = False,
) -> torch.Tensor:
    """Depth [B,H,W] → float32 [B,H,W] in 0..1 with near = 1 (white) for relative and metric depth.

    - 'min_max': min-max of each image.
    - 'percentile': each image clipped at its ``low_pct``/``high_pct`` percentiles, then scaled.
    - 'batch': one min-max over the whole batch (frames keep their differences: no video flicker).
    - 'raw': the depth values unchanged (float32 copy, NOT 0..1 and not clamped; metric stays metres,
      far = larger, NaN/Inf kept). For depth math only, not for images; ``invert`` is refused.

    In the scaled modes NaN/Inf pixels are ignored for the range and output 0; an image with zero range
    (constant depth) is all zeros. ``invert`` gives near = 0 (invalid pixels stay 0).
    """
    mode = _check_mode(mode, NORMALIZE_MODES)
    if mode == "raw":
        if invert:
            raise ValueError(
                "invert cannot be used with normalisation 'raw' (raw returns the model's values unchanged);"
                " pick 'min_max', 'percentile' or 'batch' to get an inverted 0..1 map"
            )
        return as_depth_values(depth).clone()
    lo, hi = range_of(depth, mode, low_pct, high_pct)
    return scale_to_unit(nearness(depth), lo, hi, invert)


class RunningRange:
    """Normalisation range for streamed frames (video): the union of the frames' ranges seen so far.

    Each chunk's per-frame ranges (``mode`` 'min_max': min-max, or 'percentile': 1st/99th percentiles)
    widen the running range; it never shrinks, so a region keeps its grey level from frame to frame (no
    flicker). After the first chunks the range settles; only depth beyond everything seen before widens it.
    Bounds are in nearness units, as :func:`range_of` gives them.
    """

    def __init__(self, mode: str = "min_max") -> None:
        self.mode = _check_mode(mode, _RANGED)
        self.lo = math.inf
        self.hi = -math.inf

    def update(self, depth: DepthMap | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Widen with ``depth`` [b,H,W]; return per-frame bounds (lo[b], hi[b]) for :func:`scale_to_unit`."""
        lo, hi = range_of(depth, self.mode)
        self.lo = min(self.lo, float(lo.min()))
        self.hi = max(self.hi, float(hi.max()))
        batch = lo.shape[0]
        return torch.full((batch,), self.lo), torch.full((batch,), self.hi)
