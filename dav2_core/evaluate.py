"""Predicted depth against measured ground truth: the zero-shot protocol and the standard metrics.

Protocol (per image, on the pixels valid in the ground truth, the optional mask and the depth range):

- relative predictions (affine-invariant inverse depth, :class:`~dav2_core.depth.DepthMap` kind
  'relative') - ``align="scale_shift"``, the MiDaS / Depth Anything zero-shot protocol: scale and shift
  fitted by least squares in inverse-depth (disparity) space, ``s·pred + t ≈ 1/gt_depth`` (or the
  ground-truth disparity, see :mod:`.ground_truth`), then turned into depth;
- metric predictions (metres) - ``align="none"``: compared as they are (the ground truth must be metric);
  ``"scale"`` multiplies by median(gt)/median(pred) (scale-invariant evaluation), and ``"scale_shift"``
  fits metric predictions in 1/metres like relative ones.

Aligned inverse depth below 1/cap becomes depth = cap (it can be <= 0 after a shift), cap = max_depth or
else the farthest valid ground truth of the image (MiDaS's depth cap). With ``min_depth`` / ``max_depth``
given, ground-truth pixels outside the range are left out and predictions clipped to it (the usual
evaluation range, e.g. NYU 1e-3..10 m). Then the metrics in depth space: AbsRel mean(|p-g|/g), SqRel
mean((p-g)²/g), RMSE, RMSE log (natural log), delta_k = share of pixels with max(p/g, g/p) < 1.25^k, and
the number of valid pixels. A batch reports every image and the
mean of each metric over images (valid pixels summed).

:func:`seam_ratio` measures seams of tiled depth (no ground truth needed).

Ground truth of another size than the prediction is resized to it (nearest neighbour, so no invalid or
mixed values appear) with a warning when the aspect ratios agree within 1 %; otherwise it is an error.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .depth import DepthMap, safe_reciprocal
from .effects.temporal import align_scale_shift
from .ground_truth import GroundTruth, describe
from .tiling import TileGrid, seam_lines
from .variants import PATCH_SIZE

ALIGN_MODES: dict[str, str] = {
    "auto": "scale_shift for relative predictions, none for metric ones",
    "scale_shift": "least-squares scale and shift in inverse depth (disparity) on valid pixels - the zero-shot "
    "protocol for relative models",
    "scale": "metric predictions times median(gt) / median(pred) (scale-invariant)",
    "none": "metric predictions as they are, against metric ground truth",
}
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
#: Fewest valid ground-truth pixels an image is scored on (after mask and depth range). Fewer say nothing:
#: two pixels always fit a scale and shift exactly (AbsRel 0, delta1 1). 100 = a 10x10 patch, far below any
#: benchmark's (NYU crops keep ~200k per image), so it only stops degenerate ground truth.
MIN_VALID_PIXELS = 100
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Evaluation:
    """Metrics per image (each with n_valid, scale, shift) and their mean over images (n_valid summed)."""

    per_image: list[dict[str, float]]
    mean: dict[str, float]
    align: str
    units: str  # of RMSE: 'm' for metric ground truth, else 'relative'
    ground_truth: str
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "align": self.align,
            "units": self.units,
            "ground_truth": self.ground_truth,
            "model": self.model,
            "mean": self.mean,
            "per_image": self.per_image,
        }


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Standard metrics of positive depths ``pred`` and ``gt`` (same shape, valid pixels only, >= 1)."""
    p, g = pred.double().flatten(), gt.double().flatten()
    if p.numel() == 0 or p.shape != g.shape:
        raise ValueError(f"need equal, non-empty sets of depths, got {p.numel()} and {g.numel()}")
    ratio = torch.maximum(p / g, g / p)
    out = {
        "abs_rel": float(((p - g).abs() / g).mean()),
        "sq_rel": float(((p - g) ** 2 / g).mean()),
        "rmse": float(((p - g) ** 2).mean().sqrt()),
        "rmse_log": float(((p.log() - g.log()) ** 2).mean().sqrt()),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = float((ratio < 1.25**k).double().mean())
    return out


def _fit_size(values: torch.Tensor, size: tuple[int, int], what: str) -> torch.Tensor:
    """[B,H,W] resized to ``size`` by nearest neighbour (warning), or ValueError when the aspect differs."""
    h, w = values.shape[-2:]
    if (h, w) == tuple(size):
        return values
    if abs((h / w) / (size[0] / size[1]) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(
            f"{what} is {w}x{h} but the prediction is {size[1]}x{size[0]}: another aspect ratio, so "
            "probably another image or a crop; give ground truth of the predicted image"
        )
    warnings.warn(
        f"{what} is {w}x{h} but the prediction is {size[1]}x{size[0]}; resizing the {what} to it (nearest neighbour)",
        UserWarning,
        stacklevel=3,
    )
    return F.interpolate(values.double()[:, None], size=size, mode="nearest")[:, 0]


def _batch(values: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    if values.shape[0] == batch:
        return values
    if values.shape[0] == 1:
        return values.expand(batch, -1, -1)
    raise ValueError(
        f"the prediction has {batch} images but the {what} has {values.shape[0]}; give one per image or one for all"
    )


def _mode(pred: DepthMap, gt: GroundTruth, align: str) -> str:
    if align not in ALIGN_MODES:
        raise ValueError(f"unknown alignment {align!r}; choose one of {', '.join(ALIGN_MODES)}")
    mode = ("scale_shift" if not pred.is_metric else "none") if align == "auto" else align
    if not pred.is_metric and mode in ("scale", "none"):
        raise ValueError(
            f"alignment '{mode}' needs metric predictions (metres); a relative prediction has an unknown "
            "scale and shift in inverse depth: use scale_shift (the zero-shot protocol)"
        )
    if mode == "none" and not gt.metric:
        raise ValueError(
            "the ground truth is uncalibrated disparity (no metric scale), so metric predictions cannot be "
            "compared as they are: give focal_baseline (and doffs) for it, or use alignment scale or scale_shift"
        )
    return mode


def evaluate_depth(
    pred: DepthMap,
    gt: GroundTruth,
    mask: torch.Tensor | None = None,
    align: str = "auto",
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> Evaluation:
    """Evaluate ``pred`` [B,H,W] against ``gt`` (batch B or 1); ``mask``: [H,W] or [B|1,H,W], bool or 0..1
    (> 0.5 = evaluate). See the module docstring for the protocol. ValueError when an image has fewer than
    :data:`MIN_VALID_PIXELS` valid pixels, or the prediction is NaN/inf where the ground truth is valid."""
    if not isinstance(pred, DepthMap):
        raise ValueError(f"the prediction must be a DepthMap (values + kind), got {type(pred).__name__}")
    if not isinstance(gt, GroundTruth):
        raise ValueError(
            f"the ground truth must be a GroundTruth (see dav2_core.ground_truth), got {type(gt).__name__}"
        )
    for name, value in (("min_depth", min_depth), ("max_depth", max_depth)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive depth, got {value}")
    if min_depth is not None and max_depth is not None and min_depth >= max_depth:
        raise ValueError(f"min_depth ({min_depth}) must be below max_depth ({max_depth})")
    mode = _mode(pred, gt, align)
    batch, size = pred.batch, (pred.height, pred.width)
    values = pred.values.detach().double().cpu()
    gt_inv = _batch(_fit_size(gt.inverse_depth().cpu(), size, "ground truth"), batch, "ground truth")
    keep = None
    if mask is not None:
        m = mask.detach().cpu()
        m = (m if m.dtype == torch.bool else m.double() > 0.5).double()
        keep = _batch(_fit_size(m[None] if m.ndim == 2 else m, size, "mask"), batch, "mask") > 0.5
    per_image = []
    for i in range(batch):
        per_image.append(
            _one_image(
                values[i], gt_inv[i], None if keep is None else keep[i], pred.is_metric, mode, min_depth, max_depth, i
            )
        )
    return Evaluation(per_image, summarise(per_image), mode, gt.units, describe(gt), pred.model)


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (each image counts once) and the valid pixels summed."""
    mean = {name: sum(r[name] for r in rows) / len(rows) for name in METRICS}
    mean["n_valid"] = sum(r["n_valid"] for r in rows)
    return mean


def _one_image(
    pred: torch.Tensor,
    gt_inv: torch.Tensor,
    keep: torch.Tensor | None,
    metric: bool,
    mode: str,
    min_depth: float | None,
    max_depth: float | None,
    index: int,
) -> dict[str, float]:
    gt_depth = 1.0 / gt_inv
    valid = torch.isfinite(gt_inv)
    measured = int(valid.sum())
    if keep is not None:
        valid &= keep
    if min_depth is not None:
        valid &= gt_depth >= min_depth
    if max_depth is not None:
        valid &= gt_depth <= max_depth
    n = int(valid.sum())
    if n < MIN_VALID_PIXELS:
        raise ValueError(
            f"image {index}: {n} valid ground-truth pixels ({measured} measured, then mask and depth "
            f"range applied); at least {MIN_VALID_PIXELS} are needed for meaningful metrics (fewer fit any "
            "prediction) - check the ground truth file, its kind, gt_scale and the mask"
        )
    bad = int((valid & ~torch.isfinite(pred)).sum())
    if bad:
        raise ValueError(f"image {index}: the prediction is NaN/inf at {bad} valid ground-truth pixels")
    cap = max_depth if max_depth is not None else float(gt_depth[valid].max())
    scale, shift = 1.0, 0.0
    if mode == "scale_shift":
        disp = safe_reciprocal(pred) if metric else pred
        s, t = align_scale_shift(gt_inv[None].nan_to_num(0.0), disp[None], valid[None])
        scale, shift = float(s[0]), float(t[0])
        aligned = scale * disp + shift
        depth = safe_reciprocal(aligned, 1.0 / cap)
    elif mode == "scale":
        scale = float(gt_depth[valid].median() / pred[valid].median())
        depth = scale * pred
    else:
        depth = pred
    depth = depth.clamp(min_depth, max_depth) if (min_depth, max_depth) != (None, None) else depth
    if bool((depth[valid] <= 0).any()):
        raise ValueError(
            f"image {index}: the prediction has depths <= 0 m at valid pixels; give min_depth to clip "
            "them, or use alignment scale_shift"
        )
    metrics = depth_metrics(depth[valid], gt_depth[valid])
    return {**metrics, "n_valid": n, "scale": scale, "shift": shift}


def format_table(rows: list[dict[str, float]], labels: list[str], mean: dict[str, float] | None = None) -> str:
    """Metric rows as a text table (one line per row, then the mean if given)."""
    width = max(5, *(len(label) for label in labels))
    lines = [
        f"{'image':>{width}}  {'valid px':>9}  {'AbsRel':>7}  {'SqRel':>7}  {'RMSE':>8}  {'RMSElog':>7}  "
        f"{'d1':>6}  {'d2':>6}  {'d3':>6}"
    ]
    for label, r in zip(labels + ["mean"], rows + ([mean] if mean is not None else [])):
        lines.append(
            f"{label:>{width}}  {int(r['n_valid']):>9}  {r['abs_rel']:7.4f}  {r['sq_rel']:7.4f}  "
            f"{r['rmse']:8.4g}  {r['rmse_log']:7.4f}  {r['delta1']:6.4f}  {r['delta2']:6.4f}  {r['delta3']:6.4f}"
        )
    return "\n".join(lines)


def format_evaluation(ev: Evaluation) -> str:
    """A readable report: what was compared how, one row per image and the mean of a batch."""
    rows = format_table(
        ev.per_image, [str(i + 1) for i in range(len(ev.per_image))], ev.mean if len(ev.per_image) > 1 else None
    )
    return "\n".join(
        [
            f"Depth evaluation{' of ' + ev.model if ev.model else ''}",
            f"ground truth: {ev.ground_truth}",
            f"alignment: {ev.align} - {ALIGN_MODES[ev.align]}; RMSE in {ev.units}",
            rows,
        ]
    )


def seam_ratio(depth: torch.Tensor, grid: TileGrid, period: int = PATCH_SIZE, repeats: int = 3) -> float:
    """Seam metric of a tiled depth map [H,W] at full resolution: the mean squared step between neighbouring
    pixels within ±w px of the :func:`seam_lines`, divided by the same ``k·period`` working px before and
    after each line (k = 1..repeats): the same place in the network's 14-px patch grid, so a patch pattern of
    the network's own output cancels out. w = ceil(1/scale) (a cut spreads over ~1/scale px after
    resampling); places nearer than 2w+1 px to another line are skipped. Summed over both directions.
    ~1 = no seam, a step along the tile borders >> 1. The map is scaled by its 1-99 percentile range first;
    NaN/inf steps are ignored. 1.0 when the grid has one tile or the map is flat."""
    d = depth.double()
    finite = d[torch.isfinite(d)]
    lo, hi = torch.quantile(finite[:: max(1, finite.numel() // 1_000_000)], torch.tensor([0.01, 0.99], dtype=d.dtype))
    d = (d - lo) / (hi - lo).clamp_min(1e-12)
    w = math.ceil(1.0 / grid.scale - 1e-9)
    on_mean = off_mean = 0.0
    for axis, lines in zip((0, 1), seam_lines(grid)):
        profile = (d.diff(dim=axis) ** 2).nanmean(dim=1 - axis)  # profile[i]: step from pixel i to i + 1
        n = profile.numel()

        def window(centre: int) -> list[int]:  # step indices whose "after" pixel is within w of centre
            return [i for i in range(centre - 1 - w, centre + w) if 0 <= i < n]

        offsets = [round(k * period / grid.scale) for k in range(1, repeats + 1)]
        on = sorted({i for line in lines for i in window(line)})
        away = {line + sign * o for line in lines for o in offsets for sign in (-1, 1)}
        off = sorted({i for c in away if min(abs(c - line) for line in lines) >= 2 * w + 1 for i in window(c)})
        if on and off:
            on_mean += float(profile[on].nanmean())
            off_mean += float(profile[off].nanmean())
    if on_mean == 0.0 and off_mean == 0.0:
        return 1.0
    return on_mean / max(off_mean, 1e-30)
