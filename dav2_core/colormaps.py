"""Colormaps for depth: matplotlib's tables as 256-entry LUTs applied on the tensor's device.

Near maps to the high end of the colormap (Spectral_r: near = red, far = blue, as the official demo).
Only ``matplotlib.colormaps`` is used (no pyplot, no global figure state).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from .depth import DepthMap, nearness_range
from .normalize import as_depth_values, nearness, range_of, scale_to_unit
from .ranges import COLORIZE_MODES, COLORIZE_PERCENTILES, help_of, split, statistic_mode

#: The colormaps offered everywhere (CLI, nodes, web UI); the first is the default.
COLORMAPS: tuple[str, ...] = ("Spectral_r", "viridis", "plasma", "magma", "inferno", "turbo", "gray")
DEFAULT_COLORMAP = COLORMAPS[0]
LUT_SIZE = 256

#: Colorize range modes with their tooltip help (defined in ``ranges``).
RANGE_MODE_HELP: dict[str, str] = help_of(COLORIZE_MODES)
RANGE_MODES: tuple[str, ...] = tuple(RANGE_MODE_HELP)
PERCENTILE_RANGE = COLORIZE_PERCENTILES


def _check_name(name: str) -> None:
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; valid colormaps: {', '.join(COLORMAPS)}")


@cache
def _lut_numpy(name: str) -> np.ndarray:
    from matplotlib import colormaps as mpl_colormaps  # registry only; does not import pyplot

    cmap = mpl_colormaps[name].resampled(LUT_SIZE)
    table = np.asarray(cmap(np.arange(LUT_SIZE)), dtype=np.float32)[:, :3]
    table.setflags(write=False)
    return table


def lut(name: str = DEFAULT_COLORMAP, device: torch.device | str | None = None) -> torch.Tensor:
    """The colormap as a [256,3] float32 RGB table in 0..1 (entry 0 = far end, 255 = near end)."""
    _check_name(name)
    return torch.tensor(_lut_numpy(name), dtype=torch.float32, device=device)


def lut_uint8_table() -> dict[str, list[int]]:
    """Every colormap as a flat list of 256*3 uint8 RGB values (r0,g0,b0,r1,...) for the web UI."""
    return {
        name: np.rint(_lut_numpy(name) * 255.0).clip(0, 255).astype(np.uint8).reshape(-1).tolist() for name in COLORMAPS
    }


def colorize(values01: torch.Tensor, name: str = DEFAULT_COLORMAP, invert: bool = False) -> torch.Tensor:
    """Map values in 0..1 [B,H,W] to RGB IMAGE [B,H,W,3] float32 0..1 through the colormap LUT.

    Linear interpolation between the 256 LUT entries (0 gives entry 0 and 1 gives entry 255 exactly).
    Values outside 0..1 are clamped, NaN counts as 0. ``invert`` uses 1 - v. Runs on the input's device.
    """
    _check_name(name)
    if not isinstance(values01, torch.Tensor) or values01.ndim != 3:
        raise ValueError(
            f"colorize needs a [B,H,W] tensor of 0..1 values, got {getattr(values01, 'shape', type(values01))}"
        )
    v = torch.nan_to_num(values01.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    if invert:
        v = 1.0 - v
    table = lut(name, device=v.device)
    pos = v * (LUT_SIZE - 1)
    i0 = pos.floor().long().clamp_(0, LUT_SIZE - 1)
    i1 = (i0 + 1).clamp_(max=LUT_SIZE - 1)
    frac = (pos - i0).unsqueeze(-1)
    c0 = table[i0]
    return c0.add_((table[i1] - c0).mul_(frac))


def colorize_range(
    depth: DepthMap | torch.Tensor,
    range_mode: str = "min_max",
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-image value range ``(lo[B], hi[B])`` that :func:`colorize_depth` spans the colormap with.

    Float32 on the depth's device, in the DEPTH'S OWN UNITS (metres for metric, raw values for relative
    or a plain tensor), ``lo <= hi``. 'min_max': finite min/max of each image; 'percentile': each image's
    2nd/98th percentiles; 'manual': ``vmin``/``vmax`` for every image (both required, finite, vmin < vmax).
    The near end is ``hi`` for relative depth and ``lo`` (fewer metres) for metric depth. An image
    without finite pixels gets ``lo = hi = 0``. Older names are accepted (``ranges.LEGACY_NAMES``: 'auto').
    """
    statistic, _ = split(range_mode, "colorize")
    metric = isinstance(depth, DepthMap) and depth.is_metric
    if statistic == "manual":
        if vmin is None or vmax is None:
            raise ValueError("manual range needs both min and max (in the depth's units)")
        vmin, vmax = float(vmin), float(vmax)
        if not (math.isfinite(vmin) and math.isfinite(vmax)):
            raise ValueError(f"manual range min and max must be finite numbers, got min={vmin}, max={vmax}")
        if vmin >= vmax:
            raise ValueError(f"manual range: min must be smaller than max (got min={vmin}, max={vmax})")
        values = as_depth_values(depth)
        batch = values.shape[0]
        lo = torch.full((batch,), vmin, dtype=torch.float32, device=values.device)
        hi = torch.full((batch,), vmax, dtype=torch.float32, device=values.device)
        return lo, hi
    near_lo, near_hi = range_of(depth, statistic_mode(statistic), *COLORIZE_PERCENTILES)
    return nearness_range(near_lo, near_hi, metric)  # range_of works in nearness: back to depth units


def colorize_in_range(
    depth: DepthMap | torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    name: str = DEFAULT_COLORMAP,
    invert: bool = False,
) -> torch.Tensor:
    """Depth [B,H,W] → colour IMAGE [B,H,W,3] float32 0..1 with ``lo[B]..hi[B]`` (depth units, as from
    :func:`colorize_range`) spanning the colormap, near at the high end unless ``invert``; values outside
    are clamped. NaN/Inf pixels and images with ``hi <= lo`` get the colormap's first colour.
    """
    _check_name(name)
    metric = isinstance(depth, DepthMap) and depth.is_metric
    lo = torch.as_tensor(lo, dtype=torch.float32).reshape(-1)
    hi = torch.as_tensor(hi, dtype=torch.float32).reshape(-1)
    batch = as_depth_values(depth).shape[0]
    if lo.shape != (batch,) or hi.shape != (batch,):
        raise ValueError(
            f"colour range needs one lo and one hi per image ({batch}), got {tuple(lo.shape)} and {tuple(hi.shape)}"
        )
    near_lo, near_hi = nearness_range(lo, hi, metric)
    return colorize(scale_to_unit(nearness(depth), near_lo, near_hi, invert), name)


def colorize_depth(
    depth: DepthMap | torch.Tensor,
    name: str = DEFAULT_COLORMAP,
    invert: bool = False,
    range_mode: str = "min_max",
    vmin: float | None = None,
    vmax: float | None = None,
) -> torch.Tensor:
    """Depth [B,H,W] → colour IMAGE [B,H,W,3] float32 0..1, near at the high end of the colormap.

    ``range_mode``: 'min_max' = per-image min-max; 'percentile' = per-image 2nd-98th percentiles; 'manual' =
    ``vmin``..``vmax`` in the depth's own units (metres for metric: vmin is the near end; relative values:
    vmax is the near end). ``vmin``/``vmax`` are used only in 'manual' (see :func:`colorize_range`).
    ``invert`` puts near at the low end. A plain tensor is read as relative depth (larger = nearer).
    NaN/Inf pixels and zero-range images get the colormap's first colour (entry 0), inverted or not.
    """
    _check_name(name)
    lo, hi = colorize_range(depth, range_mode, vmin, vmax)
    return colorize_in_range(depth, lo, hi, name, invert)


#: Entries of the 8-bit lookup table of :func:`colorize_uint8` (fine enough that the table lookup stays
#: within one 8-bit step of :func:`colorize` for every colormap).
UINT8_LUT_SIZE = 4096


@cache
def _uint8_table(name: str) -> torch.Tensor:
    ramp = torch.linspace(0.0, 1.0, UINT8_LUT_SIZE).reshape(1, 1, -1)
    return colorize(ramp, name)[0, 0].mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def colorize_uint8(values01: torch.Tensor, name: str = DEFAULT_COLORMAP) -> torch.Tensor:
    """:func:`colorize` straight to 8-bit: [B,H,W] 0..1 -> [B,H,W,3] uint8 RGB on the input's device.

    A table lookup (``UINT8_LUT_SIZE`` entries of :func:`colorize` itself) instead of interpolating in float:
    for video frames, where a float RGB copy of every frame would cost 12 bytes per pixel.
    """
    _check_name(name)
    v = torch.nan_to_num(values01.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
    index = v.mul_(UINT8_LUT_SIZE - 1).round_().long()
    return _uint8_table(name).to(index.device)[index]
