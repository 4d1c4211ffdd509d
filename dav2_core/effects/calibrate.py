"""Relative → metric depth: fit scale and shift in disparity space to known distances.

A relative Depth Anything map is affine-invariant inverse depth, so ``1 / metres ≈ scale · rel + shift``.
The two numbers are fitted per image by least squares in disparity, either to a few reference points
(x, y, metres) or to every valid pixel of a metric DEPTH (e.g. from a metric model of the same image);
the result is converted to metres and the fit residual reported in metres. Images are fitted
independently, in chunks (:mod:`dav2_core.chunks`), so memory is bounded by one chunk.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from ..depth import DepthMap, safe_reciprocal
from ..chunks import Execution, allocate_output, run_chunked
from ._common import check_depth, depth_chunk, warn_if_resized
from .temporal import align_scale_shift

Point = tuple[float, float, float]


def _check_points(points: Sequence[Point], width: int, height: int) -> torch.Tensor:
    """[n,3] float64 (x, y, metres), every point inside the image with a positive distance."""
    if len(points) < 2:
        raise ValueError(f"need at least two reference points (x, y, metres) to fit scale and shift, got {len(points)}")
    rows = []
    for i, p in enumerate(points):
        if len(p) != 3:
            raise ValueError(f"point {i} {tuple(p)!r} must be (x_px, y_px, metres)")
        x, y, m = (float(v) for v in p)
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise ValueError(
                f"point {i} ({x:g}, {y:g}) is outside the {width}x{height} image;"
                f" x must be in 0..{width - 1} and y in 0..{height - 1} (pixels)"
            )
        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"point {i} ({x:g}, {y:g}) has distance {m:g} m; distances must be > 0")
        rows.append((x, y, m))
    return torch.tensor(rows, dtype=torch.float64)


#: Peak working memory per pixel of a map in a chunk: the fit works in float64 (~110 measured with a
#: reference map on a CPU at 1024², + margin).
BYTES_PER_CALIBRATE_PIXEL = 160


def _point_samples(rel: torch.Tensor, pts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(relative values, target disparity, metres, valid), each [b,n], at the reference points."""
    b = rel.shape[0]
    xi, yi = pts[:, 0].round().long(), pts[:, 1].round().long()
    cur = rel[:, yi, xi].double()  # [b,n]
    bad = ~torch.isfinite(cur)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 1])
        raise ValueError(f"point {i} lies on a pixel without a depth value (NaN/inf); move it")
    if bool((cur.amax(1) - cur.amin(1) <= 1e-12 * cur.abs().amax(1).clamp_min(1.0)).any()):
        raise ValueError("the points all have the same relative depth; pick points at different distances")
    return cur, (1.0 / pts[:, 2]).expand(b, -1), pts[:, 2].expand(b, -1), torch.ones_like(cur, dtype=torch.bool)


def _reference_samples(rel: torch.Tensor, ref: torch.Tensor, first_index: int) -> tuple[torch.Tensor, ...]:
    """(relative values, target disparity, metres, valid), each [b,H·W], against a metric reference [b,H,W]."""
    cur = rel.flatten(1).double()
    metres_t = ref.flatten(1).double()
    valid = torch.isfinite(metres_t) & (metres_t > 0) & torch.isfinite(cur)
    counts = valid.sum(1)
    if bool((counts < 2).any()):
        raise ValueError(
            f"reference image {first_index + int((counts < 2).nonzero()[0, 0])} has fewer than two valid pixels"
            " (finite, > 0 m)"
        )
    target = torch.where(
        valid, 1.0 / torch.where(valid, metres_t, torch.ones_like(metres_t)), torch.zeros_like(metres_t)
    )
    spread = torch.where(valid, cur, torch.nan)
    if bool(((spread.nan_to_num(-math.inf).amax(1) - spread.nan_to_num(math.inf).amin(1)) <= 0).any()):
        raise ValueError("the relative depth is constant where the reference is valid; nothing to fit")
    return cur, target, metres_t, valid


def calibrate_to_metric(
    relative: DepthMap,
    points: Sequence[Point] | None = None,
    reference: DepthMap | None = None,
    max_depth_m: float = 1000.0,
    run: Execution | None = None,
) -> tuple[DepthMap, dict]:
    """Relative DEPTH → metric DEPTH in metres, plus the fit.

    relative: DepthMap of kind 'relative', [B,H,W]. Give exactly one of
    - ``points``: (x_px, y_px, metres) tuples, ≥ 2, pixel coordinates inside the image (0..W-1, 0..H-1),
      used for every image of the batch;
    - ``reference``: a metric DepthMap (metres; non-finite or ≤ 0 pixels are ignored) with the same batch
      (or 1); another size is resized to the relative map's with a warning.
    Per image, ``1/metres ≈ scale·rel + shift`` is fitted by least squares. Fitted disparities below
    ``1/max_depth_m`` (at or beyond the horizon) are clamped to ``max_depth_m`` with a warning.
    run: devices, chunking, progress (per map) and cancel; default: everything on the depth's device.
    Returns (DepthMap kind 'metric', units 'm'; fit) where fit has per-image lists ``scale``, ``shift``,
    ``residual_rmse_m`` (RMSE in metres on the fitted samples), ``n_points`` (samples used) and
    ``clamped_pixels``, and ``source`` ('points' or 'reference').
    """
    check_depth(relative, "relative")
    if relative.is_metric:
        raise ValueError("the depth is already metric (metres); calibration needs a relative depth map")
    if (points is None) == (reference is None):
        raise ValueError("give either reference points (x, y, metres) or a metric reference depth, exactly one")
    if not (math.isfinite(max_depth_m) and max_depth_m > 0):
        raise ValueError(f"max_depth_m must be a positive distance, got {max_depth_m}")
    b, h, w = relative.values.shape
    run = run or Execution()
    device, out_device = run.devices(relative.values)
    if points is not None:
        pts = _check_points(points, w, h).to(device)
        source = "points"
    else:
        check_depth(reference, "reference")  # type: ignore[arg-type]
        assert reference is not None
        if not reference.is_metric:
            raise ValueError("reference must be a metric depth map (metres), e.g. from a metric model")
        if reference.batch not in (1, b):
            raise ValueError(
                f"reference has {reference.batch} maps but the relative depth has {b}; give one per image or one for all"
            )
        warn_if_resized((reference.height, reference.width), (h, w), "reference depth")
        source = "reference"
    out = allocate_output((b, h, w), out_device, f"{b} depth maps of {w}x{h}", "calibrate fewer maps at a time")
    fit: dict = {
        "scale": [],
        "shift": [],
        "residual_rmse_m": [],
        "n_points": [],
        "clamped_pixels": [],
        "source": source,
    }
    floor = 1.0 / max_depth_m

    def work(start: int, stop: int) -> None:
        rel = relative.values[start:stop].to(device).float()
        if points is not None:
            cur, target, metres_t, valid = _point_samples(rel, pts)
        else:
            ref = depth_chunk(reference.values, start, stop, (h, w), device)  # type: ignore[union-attr]
            cur, target, metres_t, valid = _reference_samples(rel, ref, start)
        scale, shift = align_scale_shift(target[:, None], cur[:, None], valid[:, None])
        scale, shift = scale.double(), shift.double()
        if bool((scale <= 0).any()):
            i = start + int((scale <= 0).nonzero()[0, 0])
            raise ValueError(
                f"image {i}: the fitted scale is not positive, so the {source} contradict the depth order"
                " (nearer must mean larger relative values); check the distances and pixel positions"
            )
        disp = scale[:, None, None] * rel.double() + shift[:, None, None]
        clamped = ~(disp >= floor)  # NaN counts as clamped too
        out[start:stop].copy_(safe_reciprocal(disp, floor))
        pred_m = safe_reciprocal(scale[:, None] * cur + shift[:, None], floor)
        sq = torch.where(valid, (pred_m - metres_t) ** 2, torch.zeros_like(pred_m))
        fit["scale"] += scale.tolist()
        fit["shift"] += shift.tolist()
        fit["residual_rmse_m"] += torch.sqrt(sq.sum(1) / valid.sum(1)).tolist()
        fit["n_points"] += valid.sum(1).tolist()
        fit["clamped_pixels"] += clamped.flatten(1).sum(1).tolist()

    run_chunked(b, work, BYTES_PER_CALIBRATE_PIXEL * h * w, h * w, device, run, "depth map")
    if sum(fit["clamped_pixels"]):
        warnings.warn(
            f"{sum(fit['clamped_pixels'])} pixels fitted at or beyond {max_depth_m:g} m (non-positive disparity)"
            f" were clamped to {max_depth_m:g} m",
            UserWarning,
            stacklevel=2,
        )
    return DepthMap(out, kind="metric", model=f"{relative.model} (calibrated)".strip()), fit
