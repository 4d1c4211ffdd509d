"""Tiled high-resolution depth: a global pass, then aligned, feathered tiles at the network's native size.

A plain pass runs the whole image at ``input_size`` (518 px short side): on a 4000 px photo every depth
edge is upsampled ~4x and comes out soft. Tiled mode (:func:`tiled_depth`):

1. **Global pass**: the whole image at the normal keep_aspect size (the scene's layout, its scale).
2. **Tiles**: overlapping ``tile_size`` x ``tile_size`` crops (x14) of the full-resolution image, each run
   at ``tile_size`` (1 image pixel = 1 network pixel), batched through
   :func:`~dav2_core.inference.predict_depth` (chunked from free memory, progress per chunk, cancel
   between chunks). When more than ``max_tiles`` would be needed, the image is first scaled down (the
   *working* resolution) until they fit.
3. **Alignment**: each tile's scale and shift are fitted to the global pass over the tile's footprint by
   robust least squares (outliers trimmed; both maps average-pooled to the global pass's resolution, at
   most :data:`ALIGN_SAMPLES` samples per side, so a sharp tile is not fitted pixel by pixel to a soft
   reference, which would shrink its scale), in the model's inverse-depth space. Relative models already
   predict inverse depth; metric models (metres) are aligned and blended in 1/metres and turned back
   into metres at the end (capped at the model's max depth), because a tile's metric scale is off by the
   zoom the crop implies.
4. **Blending**: raised-cosine weights over each overlap (separable; a partition of unity, so no seam
   and no chessboard), weight 1 where a tile touches the image border.
5. **Global structure**: ``out = tiles + lowpass(global - tiles)`` (a box filter applied three times,
   ~Gaussian, sigma = :data:`STRUCTURE_SIGMA` global-pass pixels): structure larger than a few global-pass
   pixels comes from the global pass, the edges and fine detail from the tiles.

Images not larger than the global pass's network size gain nothing from tiles: the global pass is
returned as is. Layouts: IMAGE [B,H,W,C], depth [B,H,W] float32. The seam metric over :func:`seam_lines`
is :func:`dav2_core.evaluate.seam_ratio`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .depth import safe_reciprocal
from .effects.refine import box_mean
from .effects.temporal import robust_scale_shift
from .engines import as_engine, describe
from .inference import ProgressFn, predict_depth
from .preprocess import MAX_TOKENS, check_image_batch, network_size, to_rgb_float
from .variants import DEFAULT_INPUT_SIZE, PATCH_SIZE

DEFAULT_TILE_SIZE = DEFAULT_INPUT_SIZE
DEFAULT_TILE_OVERLAP = 128
DEFAULT_MAX_TILES = 16
MAX_TILES_LIMIT = 256
#: Largest tile side (px): its patch grid must stay within preprocess.MAX_TOKENS.
MAX_TILE_SIZE = int(math.isqrt(MAX_TOKENS)) * PATCH_SIZE
#: Structure above this many global-pass pixels (lowpass sigma) comes from the global pass.
STRUCTURE_SIGMA = 4.0
#: Tiles and the global pass are compared after average pooling to at most about this many samples per side.
ALIGN_SAMPLES = 64
#: Metric depth is inverted for alignment; distances below this (m) are read as it.
MIN_METRES = 1e-3


def check_tile_options(tile_size: int, overlap: int, max_tiles: int) -> None:
    """ValueError naming the bad tile option (tile side x14 in 28..MAX_TILE_SIZE, 0 <= overlap < tile)."""

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(tile_size) or tile_size % PATCH_SIZE or not 2 * PATCH_SIZE <= tile_size <= MAX_TILE_SIZE:
        raise ValueError(
            f"tile_size must be a multiple of {PATCH_SIZE} from {2 * PATCH_SIZE} to {MAX_TILE_SIZE} px "
            f"(e.g. {DEFAULT_TILE_SIZE}, the size the models were trained at), got {tile_size!r}"
        )
    if not whole(overlap) or overlap < 0:
        raise ValueError(f"tile_overlap must be a whole number of pixels >= 0, got {overlap!r}")
    if overlap >= tile_size:
        raise ValueError(
            f"tile_overlap ({overlap} px) must be smaller than tile_size ({tile_size} px); "
            f"about a quarter of the tile (e.g. {DEFAULT_TILE_OVERLAP} for {DEFAULT_TILE_SIZE}) works well"
        )
    if not whole(max_tiles) or not 1 <= max_tiles <= MAX_TILES_LIMIT:
        raise ValueError(f"max_tiles must be a whole number from 1 to {MAX_TILES_LIMIT}, got {max_tiles!r}")


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles go. Working resolution = the image scaled by ``scale`` (<= 1) to work_h x work_w;
    tiles are tile_h x tile_w working pixels (tile_size, or the whole axis when it is shorter) starting at
    ``ys`` x ``xs``."""

    height: int
    width: int
    scale: float
    work_h: int
    work_w: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> list[tuple[int, int]]:
        """(y0, x0) of every tile in working pixels, row by row."""
        return [(y, x) for y in self.ys for x in self.xs]


def _tiles_needed(length: int, tile: int, overlap: int) -> int:
    return 1 if length <= tile else math.ceil((length - overlap) / (tile - overlap))


def _starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Tile starts spread evenly over an axis: first at 0, last ending at ``length``; overlaps >= ``overlap``."""
    n = _tiles_needed(length, tile, overlap)
    if n == 1:
        return (0,)
    return tuple(round(i * (length - tile) / (n - 1)) for i in range(n))


def plan_tiles(
    height: int,
    width: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_TILE_OVERLAP,
    max_tiles: int = DEFAULT_MAX_TILES,
    global_size: tuple[int, int] | None = None,
) -> TileGrid | None:
    """The tile grid for a ``height`` x ``width`` image, or None when tiles would not add resolution (the
    working image is no larger than ``global_size``, the global pass's network size) - then the global pass
    is the answer. The largest working scale <= 1 whose grid has at most ``max_tiles`` tiles is used."""
    check_tile_options(tile_size, overlap, max_tiles)
    step = tile_size - overlap
    best = 0.0
    for rows in range(1, max_tiles + 1):
        cols = max_tiles // rows
        reach_h, reach_w = rows * step + overlap, cols * step + overlap  # longest axes this grid covers
        best = max(best, min(1.0, reach_h / height, reach_w / width))
    scale = best
    work_h, work_w = max(1, math.floor(height * scale + 1e-9)), max(1, math.floor(width * scale + 1e-9))
    if global_size is not None and work_h * work_w <= global_size[0] * global_size[1]:
        return None
    tile_h, tile_w = min(tile_size, work_h), min(tile_size, work_w)
    return TileGrid(
        height,
        width,
        scale,
        work_h,
        work_w,
        tile_h,
        tile_w,
        _starts(work_h, tile_size, overlap),
        _starts(work_w, tile_size, overlap),
    )


def _ramp(n: int, device: torch.device) -> torch.Tensor:
    """Raised cosine rising over ``n`` px (samples at pixel centres; ramp + its mirror = 1)."""
    return 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n, device=device, dtype=torch.float64) + 0.5) / n)


def _axis_windows(starts: tuple[int, ...], extent: int, device: torch.device) -> torch.Tensor:
    """[n, extent] 1-D weights: 1 inside, raised-cosine ramps over the overlap with each neighbour."""
    out = torch.ones(len(starts), extent, dtype=torch.float64, device=device)
    for i, start in enumerate(starts):
        if i > 0:
            n = starts[i - 1] + extent - start
            out[i, :n] *= _ramp(n, device)
        if i < len(starts) - 1:
            n = start + extent - starts[i + 1]
            out[i, extent - n :] *= _ramp(n, device).flip(0)
    return out


def tile_weights(grid: TileGrid, device: torch.device | str = "cpu") -> torch.Tensor:
    """[n, tile_h, tile_w] float64 blending weights (row-major tiles); they sum to 1 over the image."""
    wy = _axis_windows(grid.ys, grid.tile_h, torch.device(device))
    wx = _axis_windows(grid.xs, grid.tile_w, torch.device(device))
    return (wy[:, None, :, None] * wx[None, :, None, :]).reshape(-1, grid.tile_h, grid.tile_w)


def crop_tiles(work: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """[H,W,...] working-resolution map -> [n, tile_h, tile_w, ...] crops (row-major)."""
    return torch.stack([work[y : y + grid.tile_h, x : x + grid.tile_w] for y, x in grid.boxes()])


def align_tiles(tiles: torch.Tensor, reference: torch.Tensor, pitch: float = 1.0) -> torch.Tensor:
    """Tiles [n,h,w] scaled and shifted to match ``reference`` [n,h,w] (the global pass over the same
    footprints) by robust least squares on maps average-pooled to the reference's own resolution (``pitch``
    = pixels per reference sample: a sharp tile fitted to a soft reference pixel by pixel would come out
    with too small a scale) and to at most :data:`ALIGN_SAMPLES` per side. A tile that does not correlate
    positively with the reference keeps none of its own structure (scale 0, shift = the reference's mean)."""
    k = max(1, math.ceil(pitch), min(tiles.shape[1:]) // ALIGN_SAMPLES)
    k = min(k, max(1, min(tiles.shape[1:]) // 4))  # keep at least 4 x 4 samples per tile
    small_t = F.avg_pool2d(tiles[:, None].double(), k)[:, 0]
    small_r = F.avg_pool2d(reference[:, None].double(), k)[:, 0]
    scale, shift = robust_scale_shift(small_r, small_t)
    scale, shift = scale.double(), shift.double()
    bad = ~(scale > 0)
    scale = torch.where(bad, torch.zeros_like(scale), scale)
    shift = torch.where(bad, small_r.flatten(1).mean(1), shift)
    return scale[:, None, None] * tiles.double() + shift[:, None, None]


def blend_tiles(tiles: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Aligned tiles [n, tile_h, tile_w] -> one [work_h, work_w] float64 map (raised-cosine feathering)."""
    weights = tile_weights(grid, tiles.device)
    acc = torch.zeros(grid.work_h, grid.work_w, dtype=torch.float64, device=tiles.device)
    norm = torch.zeros_like(acc)
    for (y, x), tile, weight in zip(grid.boxes(), tiles, weights):
        acc[y : y + grid.tile_h, x : x + grid.tile_w] += weight * tile.double()
        norm[y : y + grid.tile_h, x : x + grid.tile_w] += weight
    return acc / norm


def lowpass(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """~Gaussian blur of [..., H, W] (three box filters of radius ~sigma, windows clipped at the border)."""
    radius = max(1, round(math.sqrt(sigma * sigma + 0.25) - 0.5))  # 3 boxes: variance r(r+1) ~ sigma^2
    for _ in range(3):
        values = box_mean(values, radius)
    return values


def _resize(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[H,W] or [H,W,C] resized (bilinear; antialiased when shrinking)."""
    if tuple(values.shape[:2]) == tuple(size):
        return values
    x = values[None, None] if values.ndim == 2 else values.permute(2, 0, 1)[None]
    shrink = size[0] < x.shape[-2]
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]
    return y[0] if values.ndim == 2 else y.permute(1, 2, 0)


def merge_with_global(
    global_inv: torch.Tensor, tiles_inv: torch.Tensor, grid: TileGrid, global_net: tuple[int, int]
) -> torch.Tensor:
    """Global inverse depth [H,W] + tile inverse depth [n,tile_h,tile_w] -> merged [H,W] float32 (steps 3-5)."""
    work_global = _resize(global_inv, (grid.work_h, grid.work_w)).double()
    pitch = max(grid.work_h / global_net[0], grid.work_w / global_net[1])  # working px per global-pass px
    aligned = align_tiles(tiles_inv, crop_tiles(work_global, grid), pitch)
    blended = blend_tiles(aligned, grid)
    merged = blended + lowpass(work_global - blended, STRUCTURE_SIGMA * pitch)
    return _resize(merged.float(), (grid.height, grid.width))


@torch.inference_mode()
def predict_tiles(
    model: Any,
    image: torch.Tensor,
    grid: TileGrid,
    tile_size: int = DEFAULT_TILE_SIZE,
    chunk_size: int | None = None,
    flip_tta: bool = False,
    progress: ProgressFn | None = None,
    index: int = 0,
) -> torch.Tensor:
    """Depth of every tile of one image [1,H,W,C] -> [n, tile_h, tile_w] float32 on the model's device (the
    image scaled to the grid's working resolution, cut, and run at ``tile_size`` in chunks)."""
    rgb = to_rgb_float(check_image_batch(image)[:1], index)[0]
    crops = crop_tiles(_resize(rgb, (grid.work_h, grid.work_w)), grid)
    del rgb
    return predict_depth(
        model,
        crops,
        tile_size,
        "native",
        max_side=tile_size,
        chunk_size=chunk_size,
        flip_tta=flip_tta,
        progress=progress,
        output_device=None,
    )


@torch.inference_mode()
def tiled_depth(
    model: Any,
    images: torch.Tensor,
    input_size: int = DEFAULT_INPUT_SIZE,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_TILE_OVERLAP,
    max_tiles: int = DEFAULT_MAX_TILES,
    chunk_size: int | None = None,
    flip_tta: bool = False,
    progress: ProgressFn | None = None,
    output_device: torch.device | str | None = "cpu",
) -> torch.Tensor:
    """Tiled depth for an IMAGE batch [B,H,W,C] -> [B,H,W] float32 on ``output_device`` (None: the model's
    device), in the model's units (relative inverse depth on the global pass's scale, or metres).

    Per image: the global pass (keep_aspect at ``input_size``), then the tiles in chunks of ``chunk_size``
    (None: sized from free memory). ``progress(done, total)`` counts network images (global passes +
    tiles) and may raise to cancel.
    """
    check_tile_options(tile_size, overlap, max_tiles)
    images = check_image_batch(images)
    engine = as_engine(model)
    kind, max_depth, _ = describe(model)
    batch, height, width, _ = images.shape
    global_net = network_size(height, width, input_size, "keep_aspect")
    grid = plan_tiles(height, width, tile_size, overlap, max_tiles, global_net)
    per_image = 1 + (grid.count if grid is not None else 0)
    out_device = torch.device(output_device) if output_device is not None else engine.device
    result = torch.empty((batch, height, width), dtype=torch.float32, device=out_device)

    def report(offset: int) -> ProgressFn:
        return lambda done, _total: progress(offset + done, batch * per_image) if progress else None

    for b in range(batch):
        first = b * per_image
        glob = predict_depth(
            engine,
            images[b : b + 1],
            input_size,
            "keep_aspect",
            chunk_size=chunk_size,
            flip_tta=flip_tta,
            progress=report(first),
            output_device=None,
        )[0]
        if grid is None:
            result[b].copy_(glob)
            continue
        tiles = predict_tiles(engine, images[b : b + 1], grid, tile_size, chunk_size, flip_tta, report(first + 1), b)
        result[b].copy_(merge_depth(glob, tiles, grid, global_net, kind, max_depth))
    return result


def merge_depth(
    glob: torch.Tensor,
    tiles: torch.Tensor,
    grid: TileGrid,
    global_net: tuple[int, int],
    kind: str = "relative",
    max_depth: float | None = None,
) -> torch.Tensor:
    """:func:`merge_with_global` in the model's units: relative values as they are; metric metres aligned and
    blended in 1/metres and turned back into metres (at most ``max_depth``, else the global pass's farthest)."""
    if kind != "metric":
        return merge_with_global(glob, tiles, grid, global_net)
    inv = merge_with_global(safe_reciprocal(glob, MIN_METRES), safe_reciprocal(tiles, MIN_METRES), grid, global_net)
    far = float(max_depth) if max_depth else float(glob.max())
    return safe_reciprocal(inv, 1.0 / max(far, MIN_METRES))


def seam_lines(grid: TileGrid) -> tuple[list[int], list[int]]:
    """(rows, columns) at full resolution where tiles begin, end or cross half-way through their overlap:
    where a tiling seam would show (pixel index of the first pixel after the line)."""

    def lines(starts: tuple[int, ...], extent: int) -> list[int]:
        out = set()
        for a, b in zip(starts[:-1], starts[1:]):
            out |= {b, a + extent, (b + a + extent) // 2}
        return sorted(round(v / grid.scale) for v in out)

    return lines(grid.ys, grid.tile_h), lines(grid.xs, grid.tile_w)
