"""Test-time augmentation (TTA): which views of an image run, at which network sizes, and how they merge.

Modes (:data:`TTA_MODES`, the one list of them, with the cost multiplier the node and CLI help show):

- ``flip``: the image and its mirror image, averaged (the mirror's depth is flipped back; one model, one
  scale, so a plain average: :func:`dav2_core.inference.flip_tta_merge`).
- ``multi_scale``: the base network grid plus a smaller (:data:`SMALL_SCALE` = 0.75x) and a larger
  (:data:`LARGE_SCALE` = 1.25x) view, each side rounded to a multiple of 14 px. keep_aspect at input_size 518
  on a 4:3 photo: 518x686 base, 392x518 and 644x854 views. The larger view is capped at the
  128x128-patch limit (``preprocess.MAX_TOKENS``): a 1080p frame in native mode gets a view a little under
  1.25x; a base grid already at the limit has no larger view and is a ValueError naming the fix. The
  smaller view must be a smaller grid of at least :data:`MIN_VIEW_SIDE` px, so keep_aspect needs
  input_size >= :data:`MIN_MULTI_SCALE_INPUT_SIZE` (42).
- ``multi_scale_flip``: every view of multi_scale also mirrored.

Merging (:func:`merge_views`): each view's depth is resized (bilinear) to the base grid, then merged in the
model's inverse-depth space: relative depth (already inverse depth, with an unknown per-pass scale and
shift) has each view's scale and shift fitted to the base view by least squares (residuals beyond 3
robust standard deviations trimmed, one refit) and the fitted views are averaged with the base; a view
that fits with a non-positive scale (it does not resemble the base) is left out for that image. Metric
depth (metres) is not fitted - its scale is the point - but averaged in 1/metres and turned back into
metres. Views that are identical up to scale and shift therefore merge to the base view exactly (within
float rounding). The merged base-grid map is upsampled to the image like a plain pass.

Memory: views run one after another inside each chunk of :func:`dav2_core.inference.predict_depth`; only
the base map and a running sum stay, so a chunk's peak is the larger view's activations (twice with flip),
which is what the automatic chunk size is computed from. Tiled mode takes ``flip`` (per tile) but not
multi_scale: tiles already run every part of the image at full resolution (a clear error).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from .effects.temporal import align_scale_shift
from .preprocess import MAX_TOKENS, network_size
from .variants import PATCH_SIZE

#: Scale factors of the extra multi-scale views relative to the base network grid.
SMALL_SCALE = 0.75
LARGE_SCALE = 1.25
#: Smallest side (px) of any multi-scale view: two patches.
MIN_VIEW_SIDE = 2 * PATCH_SIZE
#: Smallest keep_aspect input_size with a distinct smaller view (0.75 x 42 -> 28 px).
MIN_MULTI_SCALE_INPUT_SIZE = 3 * PATCH_SIZE
#: Robust trimming of the scale/shift fit: residuals beyond this many robust standard deviations.
TRIM_SIGMAS = 3.0


#: Forward FLOPs of multi-scale TTA over one pass (vits at input 518 on a 4:3 image, benchmarks/bench_input_size.py
#: --flops-only: 555.8 / 166.5 GFLOP); attention grows faster than the pixel count (0.75² + 1 + 1.25² = 3.1).
MULTI_SCALE_COST = 3.34
#: The TTA modes with their help text (tooltip, CLI help), cost multiplier included.
TTA_MODES: dict[str, str] = {
    "none": "one pass (1x compute)",
    "flip": "the image and its mirror image, averaged: cleaner, more symmetric depth (2x compute)",
    "multi_scale": f"the base size plus {SMALL_SCALE:g}x and {LARGE_SCALE:g}x views, each fitted to the base "
    f"(scale/shift) and averaged: steadier depth, fewer size artefacts (about {MULTI_SCALE_COST:.1f}x compute)",
    "multi_scale_flip": f"multi_scale with every view also mirrored (about {2 * MULTI_SCALE_COST:.1f}x compute)",
}


def check_tta(mode: str) -> str:
    """ValueError unless ``mode`` is one of :data:`TTA_MODES`."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown tta mode {mode!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def tta_parts(mode: str) -> tuple[bool, bool]:
    """(multi_scale, flip) of a TTA mode."""
    check_tta(mode)
    return mode.startswith("multi_scale"), mode in ("flip", "multi_scale_flip")


def tta_mode(multi_scale: bool, flip: bool) -> str:
    """The TTA mode with these parts (the inverse of :func:`tta_parts`)."""
    if multi_scale:
        return "multi_scale_flip" if flip else "multi_scale"
    return "flip" if flip else "none"


def _x14(value: float) -> int:
    return max(PATCH_SIZE, int(round(value / PATCH_SIZE)) * PATCH_SIZE)


def _tokens(size: tuple[int, int]) -> int:
    return (size[0] // PATCH_SIZE) * (size[1] // PATCH_SIZE)


def _larger_view(base: tuple[int, int]) -> tuple[int, int]:
    """The LARGE_SCALE view of ``base``, capped at MAX_TOKENS patches (sides floored to x14 when capped)."""
    view = (_x14(base[0] * LARGE_SCALE), _x14(base[1] * LARGE_SCALE))
    if _tokens(view) <= MAX_TOKENS:
        return view
    cap = min(LARGE_SCALE, math.sqrt(MAX_TOKENS * PATCH_SIZE**2 / (base[0] * base[1])))
    return tuple(max(PATCH_SIZE, int(side * cap) // PATCH_SIZE * PATCH_SIZE) for side in base)  # type: ignore[return-value]


def view_sizes(
    base: tuple[int, int], image_size: tuple[int, int] | None = None, input_size: int | None = None
) -> list[tuple[int, int]]:
    """The extra multi-scale views (h, w) of a base network grid: [smaller, larger].

    ValueError when a view would not differ from the base: the smaller one below :data:`MIN_VIEW_SIDE` (a
    base too small) or no room for a larger one under the patch limit (a base already at it).
    ``image_size`` and ``input_size`` (keep_aspect) only word the message.
    """
    small = (_x14(base[0] * SMALL_SCALE), _x14(base[1] * SMALL_SCALE))
    if min(small) < MIN_VIEW_SIDE or _tokens(small) >= _tokens(base):
        fix = (
            f"raise input_size to {MIN_MULTI_SCALE_INPUT_SIZE} or more"
            if input_size is not None
            else "use keep_aspect (its network size does not shrink with the image)"
        )
        raise ValueError(
            f"multi-scale TTA needs a smaller view of at least {MIN_VIEW_SIDE} px per side, but the "
            f"{base[0]}x{base[1]} network grid scaled by {SMALL_SCALE:g} gives {small[0]}x{small[1]}; {fix}, "
            "or use tta 'flip'"
        )
    large = _larger_view(base)
    if _tokens(large) <= _tokens(base) or large[0] < base[0] or large[1] < base[1]:
        fix = (
            f"use input_size {largest_input_size(image_size or base, input_size)} or less for this image"
            if input_size is not None
            else "use a smaller max_side"
        )
        raise ValueError(
            f"multi-scale TTA needs a larger view than the {base[0]}x{base[1]} network grid, but that grid is "
            f"already at the limit of {MAX_TOKENS} patches of {PATCH_SIZE} px; {fix}, or use tta 'flip'"
        )
    return [small, large]


def largest_input_size(image_size: tuple[int, int], input_size: int) -> int:
    """The largest keep_aspect input_size (x14, below ``input_size``) whose grid for a ``image_size`` (h, w)
    image leaves room for a larger multi-scale view."""
    size = input_size // PATCH_SIZE * PATCH_SIZE
    while size > MIN_MULTI_SCALE_INPUT_SIZE:
        try:
            grid = network_size(image_size[0], image_size[1], size, "keep_aspect")
        except ValueError:  # beyond the patch limit itself
            size -= PATCH_SIZE
            continue
        if _tokens(_larger_view(grid)) > _tokens(grid) and _tokens(grid) < MAX_TOKENS:
            return size
        size -= PATCH_SIZE
    return MIN_MULTI_SCALE_INPUT_SIZE


def check_tta_options(mode: str, resolution: str, input_size: int) -> None:
    """What can be checked before an image is seen (ValueError naming the bad combination)."""
    multi, _ = tta_parts(mode)
    if not multi:
        return
    if resolution == "tiled":
        raise ValueError(
            "multi-scale TTA does not combine with tiled mode (the tiles already run every part of the image "
            "at full resolution); use tta 'flip' with tiled, or multi_scale with keep_aspect or native"
        )
    if resolution == "keep_aspect" and input_size < MIN_MULTI_SCALE_INPUT_SIZE:
        raise ValueError(
            f"multi-scale TTA needs input_size >= {MIN_MULTI_SCALE_INPUT_SIZE} (its {SMALL_SCALE:g}x view must "
            f"be at least {MIN_VIEW_SIDE} px), got {input_size}; raise input_size or use tta 'flip'"
        )


def _resize(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth[:, None], size, mode="bilinear", align_corners=True)[:, 0]


def fit_to_base(base: torch.Tensor, view: torch.Tensor, rounds: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``view`` [b,h,w] scaled and shifted per image to match ``base`` [b,h,w] -> (fitted view [b,h,w] float32,
    usable [b] bool: the fitted scale is positive).

    Robust least squares in float64: the start matches medians and median absolute deviations (outlier-proof),
    then ``rounds`` times the pixels whose residual lies within :data:`TRIM_SIGMAS` robust standard deviations
    (1.4826 MAD, floored at 1e-6 of the base's range so exact copies keep every pixel) are refitted."""
    b, v = base.double().flatten(1), view.double().flatten(1)
    med_b, med_v = b.median(1, keepdim=True).values, v.median(1, keepdim=True).values
    mad_b = (b - med_b).abs().median(1, keepdim=True).values
    mad_v = (v - med_v).abs().median(1, keepdim=True).values
    scale = torch.where(mad_v > 0, mad_b / mad_v.clamp_min(1e-300), torch.ones_like(mad_v))
    shift = med_b - scale * med_v
    floor = 1e-6 * (b.amax(1, keepdim=True) - b.amin(1, keepdim=True)).clamp_min(1e-12)
    for _ in range(rounds):
        residual = scale * v + shift - b
        med = residual.median(1, keepdim=True).values
        mad = (residual - med).abs().median(1, keepdim=True).values
        keep = (residual - med).abs() <= TRIM_SIGMAS * 1.4826 * torch.maximum(mad, floor)
        fit_scale, fit_shift = align_scale_shift(b.view_as(base), v.view_as(view), keep.view_as(base))
        scale, shift = fit_scale.double()[:, None], fit_shift.double()[:, None]
    fitted = (scale * v + shift).view_as(base).float()
    return fitted, scale[:, 0] > 0


def merge_views(base: torch.Tensor, views: Iterable[torch.Tensor], kind: str = "relative") -> torch.Tensor:
    """Merge the base view's depth [b,h,w] with other views' depth [b,h',w'] (any grid; consumed one at a
    time) -> [b,h,w] float32 in the model's units (see the module docstring: relative views fitted to the
    base and averaged; metric views averaged in 1/metres)."""
    size = tuple(base.shape[-2:])
    if kind == "metric":
        total = 1.0 / base.double().clamp_min(1e-6)
        count = 1
        for view in views:
            total += 1.0 / _resize(view, size).double().clamp_min(1e-6)
            count += 1
        return (count / total).float()
    total = base.double()
    count = torch.ones(base.shape[0], dtype=torch.float64, device=base.device)
    for view in views:
        fitted, usable = fit_to_base(base, _resize(view.float(), size))
        weight = usable.double()
        total = total + weight[:, None, None] * fitted.double()
        count = count + weight
    return (total / count[:, None, None]).float()
