"""Depth statistics per image and for the whole batch, as plain (JSON-ready) Python data and text.

Statistics are in the depth's own units (metres for metric depth, relative inverse depth otherwise).
NaN/Inf pixels, and pixels outside an optional ``valid_mask``, are excluded and counted as invalid.
Computed batched on the depth's device; percentiles are exact (``numpy.percentile``'s linear rule).
"""

from __future__ import annotations

from typing import Any

import torch

from .depth import DepthMap
from .normalize import as_depth_values, masked_quantile

#: The numeric entries of each stats record, in display order.
STAT_KEYS: tuple[str, ...] = ("min", "max", "range", "mean", "median", "std", "p1", "p5", "p95", "p99")
_QUANTILES = {"p1": 0.01, "p5": 0.05, "median": 0.5, "p95": 0.95, "p99": 0.99}
NO_VALID_NOTE = "no valid pixels (all NaN/Inf or masked out)"


def units_label(units: str) -> str:
    """Human label of a depth's units: 'm' stays 'm', 'relative' reads 'relative (inverse depth)'."""
    return "relative (inverse depth)" if units == "relative" else units


def _rows_stats(flat: torch.Tensor, valid: torch.Tensor) -> list[dict[str, Any]]:
    """Stats of each row of ``flat[R,N]`` over ``valid[R,N]`` entries."""
    count = valid.sum(dim=1)
    safe_count = count.clamp(min=1).to(torch.float32)
    zeros = torch.zeros_like(flat)
    mean = torch.where(valid, flat, zeros).sum(dim=1) / safe_count
    dev = torch.where(valid, flat - mean[:, None], zeros)
    std = (dev.square().sum(dim=1) / safe_count).sqrt()  # population std (ddof=0), like numpy's default
    mn = torch.where(valid, flat, torch.inf).amin(dim=1)
    mx = torch.where(valid, flat, -torch.inf).amax(dim=1)
    q = masked_quantile(flat, valid, tuple(_QUANTILES.values()))
    columns = {"min": mn, "max": mx, "range": mx - mn, "mean": mean, "std": std}
    columns.update({key: q[:, i] for i, key in enumerate(_QUANTILES)})
    host = {key: columns[key].double().cpu().tolist() for key in STAT_KEYS}
    counts = count.cpu().tolist()
    total = flat.shape[1]
    records = []
    for r, n in enumerate(counts):
        rec: dict[str, Any] = {key: (host[key][r] if n else None) for key in STAT_KEYS}
        rec["valid_pixels"] = int(n)
        rec["total_pixels"] = int(total)
        if not n:
            rec["note"] = NO_VALID_NOTE
        records.append(rec)
    return records


def depth_stats(depth: DepthMap | torch.Tensor, valid_mask: torch.Tensor | None = None) -> dict[str, Any]:
    """Statistics of depth [B,H,W] (a plain tensor is taken as relative depth).

    ``valid_mask``: optional bool [B,H,W] or [H,W] (True = use the pixel). Returns::

        {"kind", "units", "units_label", "model", "batch_size", "height", "width",
         "images": [record per image], "batch": record over all images}

    where a record holds min, max, range, mean, median, std (population), p1, p5, p95, p99 as floats,
    valid_pixels and total_pixels as ints; with no valid pixel the numbers are None and ``note`` says so.
    """
    values = as_depth_values(depth)
    b, h, w = values.shape
    valid = torch.isfinite(values)
    if valid_mask is not None:
        if not isinstance(valid_mask, torch.Tensor) or tuple(valid_mask.shape) not in ((b, h, w), (h, w)):
            raise ValueError(
                f"valid_mask must be a [B,H,W] or [H,W] tensor matching the depth {(b, h, w)},"
                f" got {getattr(valid_mask, 'shape', type(valid_mask))}"
            )
        valid = valid & valid_mask.to(device=values.device, dtype=torch.bool)
    flat = values.reshape(b, -1)
    valid = valid.reshape(b, -1)
    images = _rows_stats(flat, valid)
    batch = _rows_stats(flat.reshape(1, -1), valid.reshape(1, -1))[0] if b > 1 else dict(images[0])
    if isinstance(depth, DepthMap):
        kind, units, model = depth.kind, depth.units, depth.model
    else:
        kind, units, model = "relative", "relative", ""
    return {
        "kind": kind,
        "units": units,
        "units_label": units_label(units),
        "model": model,
        "batch_size": b,
        "height": h,
        "width": w,
        "images": images,
        "batch": batch,
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _record_lines(label: str, rec: dict[str, Any], unit: str) -> list[str]:
    pct = 100.0 * rec["valid_pixels"] / rec["total_pixels"]
    valid = f"valid {rec['valid_pixels']:,} / {rec['total_pixels']:,} px ({pct:.1f}%)"
    if rec.get("note"):
        return [f"{label}: {rec['note']}; {valid}"]
    return [
        f"{label}: min {_fmt(rec['min'])}{unit}  max {_fmt(rec['max'])}{unit}  range {_fmt(rec['range'])}{unit}",
        f"  mean {_fmt(rec['mean'])}{unit}  median {_fmt(rec['median'])}{unit}  std {_fmt(rec['std'])}{unit}",
        f"  p1 {_fmt(rec['p1'])}  p5 {_fmt(rec['p5'])}  p95 {_fmt(rec['p95'])}  p99 {_fmt(rec['p99'])}",
        f"  {valid}",
    ]


def format_stats(stats: dict[str, Any], max_images: int = 16) -> str:
    """Readable multi-line text of :func:`depth_stats`: batch first, then up to ``max_images`` images."""
    unit = " m" if stats["units"] == "m" else ""
    head = f"Depth stats - units: {stats['units_label']}"
    if stats.get("model"):
        head += f" - model: {stats['model']}"
    n = stats["batch_size"]
    lines = [head, f"{n} image{'s' if n != 1 else ''} of {stats['width']}x{stats['height']}"]
    if n > 1:
        lines += _record_lines("Batch", stats["batch"], unit)
    for i, rec in enumerate(stats["images"][:max_images]):
        lines += _record_lines(f"Image {i + 1}", rec, unit)
    if n > max_images:
        lines.append(f"... {n - max_images} more images not shown")
    return "\n".join(lines)


#: Column keys of :func:`stats_table_rows`, in order.
TABLE_COLUMNS: tuple[str, ...] = ("image",) + STAT_KEYS + ("valid_pixels", "total_pixels")


def stats_table_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON-ready row per image plus a final 'batch' row, keyed by :data:`TABLE_COLUMNS`."""
    rows = [{"image": str(i + 1), **{k: rec[k] for k in TABLE_COLUMNS[1:]}} for i, rec in enumerate(stats["images"])]
    rows.append({"image": "batch", **{k: stats["batch"][k] for k in TABLE_COLUMNS[1:]}})
    return rows
