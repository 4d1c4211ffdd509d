"""Tiled high-resolution depth (dav2_core.tiling) and its place in the one estimate path.

The maths is checked on constructed maps (a known detailed truth, tiles that are affine copies of it, a
blurred global pass); the plumbing with a seeded random-init vits at tiny sizes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dav2_core.inference import predict_depth
from dav2_core.pipeline import DepthStream, EstimateOptions, estimate
from dav2_core.evaluate import seam_ratio
from dav2_core.tiling import (
    TileGrid,
    align_tiles,
    blend_tiles,
    crop_tiles,
    lowpass,
    merge_with_global,
    plan_tiles,
    seam_lines,
    tile_weights,
    tiled_depth,
)

TILED = dict(resolution="tiled", input_size=28, tile_size=42, tile_overlap=14, max_tiles=9)


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Tiny forwards run fastest on one thread (and do not fight other processes for the cores)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def truth(height: int = 300, width: int = 400) -> torch.Tensor:
    """A detailed inverse-depth map: a smooth slope plus sharp-edged boxes and a fine stripe pattern."""
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    t = 1.0 + 0.004 * y + 0.5 * torch.sin(x / 60.0)
    t[40:120, 50:130] += 1.5
    t[180:260, 250:370] += 0.8
    t += 0.2 * ((x.long() // 3) % 2)
    return t


def full_grid() -> TileGrid:
    """4 x 6 tiles of 98 px over a 300 x 400 map at full resolution."""
    grid = plan_tiles(300, 400, 98, 28, 30)
    assert grid.scale == 1.0 and grid.count == 24
    return grid


def blur(values: torch.Tensor, factor: int) -> torch.Tensor:
    """Down- and up-sample [H,W] by ``factor``: what a low-resolution global pass sees."""
    small = F.avg_pool2d(values[None, None], factor)
    return F.interpolate(small, size=values.shape, mode="bilinear", align_corners=False)[0, 0]


# ------------------------------------------------------------------------------------------- the grid
@pytest.mark.parametrize(
    "height, width, tile, overlap, max_tiles",
    [
        (1110, 1282, 518, 128, 16),
        (3000, 4000, 518, 128, 16),
        (300, 400, 98, 28, 4),
        (2000, 100, 518, 0, 9),
    ],
)
def test_grid_covers_the_image_with_at_least_the_overlap(height, width, tile, overlap, max_tiles):
    grid = plan_tiles(height, width, tile, overlap, max_tiles)
    assert grid.count <= max_tiles
    assert 0 < grid.scale <= 1.0
    for starts, extent, length in ((grid.ys, grid.tile_h, grid.work_h), (grid.xs, grid.tile_w, grid.work_w)):
        assert starts[0] == 0 and starts[-1] + extent == length
        assert all(b - a <= extent - overlap for a, b in zip(starts, starts[1:]))  # overlap >= asked
    if grid.scale < 1.0:  # scaled down only as far as max_tiles forces: 2 % larger needs more tiles

        def needed(length: float) -> int:
            return 1 if length <= tile else math.ceil((length - overlap) / (tile - overlap))

        assert needed(grid.work_h * 1.02) * needed(grid.work_w * 1.02) > max_tiles


def test_large_photo_is_scaled_to_max_tiles_and_full_size_when_it_fits():
    assert plan_tiles(1110, 1282, 518, 128, 16).scale == 1.0  # 3 x 3 tiles fit: full resolution
    big = plan_tiles(3000, 4000, 518, 128, 16)
    assert big.scale < 0.5 and (big.work_h, big.work_w) == (1298, 1730)


def test_no_tiles_when_the_global_pass_already_covers_the_image():
    assert plan_tiles(480, 640, 518, 128, 16, global_size=(518, 686)) is None  # NYU frame: keep_aspect upsamples
    assert plan_tiles(10, 10, 518, 128, 16, global_size=(518, 518)) is None  # tiny image
    one = plan_tiles(200, 260, 518, 128, 16, global_size=(70, 91))  # tile larger than the image: one tile
    assert one.count == 1 and (one.tile_h, one.tile_w) == (200, 260)


def test_weights_are_a_smooth_partition_of_unity():
    grid = full_grid()
    weights = tile_weights(grid)
    total = torch.zeros(grid.work_h, grid.work_w, dtype=torch.float64)
    for (y, x), w in zip(grid.boxes(), weights):
        total[y : y + grid.tile_h, x : x + grid.tile_w] += w
        assert float(w.min()) >= 0.0
    torch.testing.assert_close(total, torch.ones_like(total))
    steps = max(float(weights.diff(dim=1).abs().max()), float(weights.diff(dim=2).abs().max()))
    assert steps < 2.5 * math.pi / (2 * 28)  # no jump: the steepest raised-cosine slope over >= 28 px
    assert float(weights[0, 0, 0]) == 1.0  # the image border is not faded


# ------------------------------------------------------------------------------------------- the maths
def test_alignment_recovers_each_tiles_scale_and_shift():
    grid = full_grid()
    reference = crop_tiles(truth(), grid)
    g = torch.Generator().manual_seed(0)
    scale, shift = torch.rand(grid.count, generator=g) + 0.5, torch.randn(grid.count, generator=g)
    tiles = (reference - shift[:, None, None]) / scale[:, None, None]
    torch.testing.assert_close(align_tiles(tiles, reference), reference)
    flipped = align_tiles(-tiles, reference)  # anti-correlated tile: no structure of its own, the mean level
    torch.testing.assert_close(flipped, reference.mean((1, 2), keepdim=True).expand_as(flipped))


def tiles_on_their_own_scales(t: torch.Tensor, grid: TileGrid, tilt: float = 0.0) -> torch.Tensor:
    """Crops of ``t``, each with its own random scale and shift (and a random tilt of up to ``tilt`` per px)."""
    g = torch.Generator().manual_seed(1)
    scale, shift = torch.rand(grid.count, generator=g) + 0.5, torch.randn(grid.count, generator=g)
    slope = (torch.rand(grid.count, 2, generator=g, dtype=torch.float64) - 0.5) * 2 * tilt
    yy, xx = torch.meshgrid(
        torch.arange(grid.tile_h, dtype=torch.float64) - grid.tile_h / 2,
        torch.arange(grid.tile_w, dtype=torch.float64) - grid.tile_w / 2,
        indexing="ij",
    )
    crops = crop_tiles(t, grid) + slope[:, 0, None, None] * yy + slope[:, 1, None, None] * xx
    return (crops - shift[:, None, None]) / scale[:, None, None]


def pasted(tiles: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Tiles pasted over each other in order (hard cuts at the tile starts)."""
    out = torch.zeros(grid.work_h, grid.work_w, dtype=torch.float64)
    for (y, x), tile in zip(grid.boxes(), tiles):
        out[y : y + grid.tile_h, x : x + grid.tile_w] = tile
    return out


def test_merge_keeps_the_tiles_detail():
    t = truth()
    grid = full_grid()
    glob = blur(t, 8)
    merged = merge_with_global(glob.float(), tiles_on_their_own_scales(t, grid).float(), grid, (37, 50)).double()
    assert (merged - t).abs().mean() < 0.2 * (glob - t).abs().mean()


def test_merge_adds_no_seam_where_hard_cuts_show_one():
    t = truth()
    grid = full_grid()
    glob = blur(t, 8)
    tiles = tiles_on_their_own_scales(t, grid, tilt=0.005)  # tilts: no scale and shift makes them agree
    merged = merge_with_global(glob.float(), tiles.float(), grid, (37, 50)).double()
    own = seam_ratio(t, grid)  # the truth's own steps at the border lines
    assert abs(seam_ratio(merged, grid) / own - 1.0) < 0.1
    assert seam_ratio(pasted(tiles, grid), grid) > 10 * own  # unaligned
    aligned = align_tiles(tiles, crop_tiles(glob, grid), 8.0)
    assert seam_ratio(pasted(aligned, grid), grid) > 1.3 * own  # aligned, but cut instead of blended


def test_global_structure_wins_over_a_tile_with_wrong_large_scale_content():
    t = truth()
    grid = full_grid()
    tiles = crop_tiles(t, grid).clone()
    y, x = torch.meshgrid(torch.arange(grid.tile_h), torch.arange(grid.tile_w), indexing="ij")
    tiles[4] += 0.01 * (x - grid.tile_w / 2)  # a bogus tilt across one tile (missing context)
    merged = merge_with_global(t.float(), tiles.float(), grid, (300 // 2, 400 // 2)).double()
    y0, x0 = grid.boxes()[4]
    inner = (slice(y0 + 20, y0 + grid.tile_h - 20), slice(x0 + 20, x0 + grid.tile_w - 20))
    plain = blend_tiles(align_tiles(tiles, crop_tiles(t, grid), 2.0), grid)  # aligned + feathered only
    # Structure (what is left after a 10 px blur) follows the global pass, not the tile's tilt.
    structure_error = lambda m: lowpass(m - t, 10.0)[inner].abs().mean()  # noqa: E731
    assert structure_error(merged) < 0.2 * structure_error(plain)


def test_seam_lines_are_tile_edges_and_overlap_middles():
    grid = plan_tiles(100, 100, 56, 12, 4)
    rows, cols = seam_lines(grid)
    assert rows == cols == sorted({grid.xs[1], grid.xs[0] + grid.tile_w, (grid.xs[1] + grid.tile_w) // 2})
    smooth = torch.linspace(0, 1, 100)[None].expand(100, 100)
    assert abs(seam_ratio(smooth, grid) - 1.0) < 1e-3


# ------------------------------------------------------------------------------------------- the path
def test_tiled_mode_runs_through_the_estimate_path_with_progress(random_vits):
    images = torch.rand(2, 70, 98, 3, generator=torch.Generator().manual_seed(2))
    calls: list[tuple[int, int]] = []
    options = EstimateOptions(**TILED, chunk_size=4)
    result = estimate(random_vits, images, options, progress=lambda done, total: calls.append((done, total)))
    grid = plan_tiles(70, 98, 42, 14, 9, options.net_size(70, 98))
    per_image = 1 + grid.count
    assert calls[-1] == (2 * per_image, 2 * per_image) and len(calls) > 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    values = result.depth.values
    assert values.shape == (2, 70, 98) and bool(values.isfinite().all())
    assert options.resolved_size(70, 98) == (grid.work_h, grid.work_w) != options.net_size(70, 98)
    # The global pass is the keep_aspect prediction; tiles change the detail, not the overall level.
    plain = predict_depth(random_vits, images, 28)
    assert not torch.equal(values, plain)
    assert abs(float(values.mean() - plain.mean())) < 0.25 * float(plain.std())


def test_tiled_equals_keep_aspect_when_no_tile_adds_resolution(random_vits):
    images = torch.rand(1, 20, 24, 3, generator=torch.Generator().manual_seed(3))
    tiled = estimate(random_vits, images, EstimateOptions(**TILED)).depth.values
    plain = estimate(random_vits, images, EstimateOptions(input_size=28)).depth.values
    torch.testing.assert_close(tiled, plain, atol=0, rtol=0)


@pytest.mark.parametrize("hw", [(1, 1), (3, 2), (17, 5)])
def test_tiny_images_in_tiled_mode_keep_their_size(random_vits, hw):
    values = estimate(random_vits, torch.rand(1, *hw, 3), EstimateOptions(**TILED)).depth.values
    assert values.shape == (1, *hw) and bool(values.isfinite().all())


def test_cancel_between_tile_chunks_stops_the_run(random_vits):
    images = torch.rand(1, 70, 98, 3)
    seen = []

    def cancel_after_two(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        tiled_depth(random_vits, images, 28, 42, 14, 9, chunk_size=1, progress=cancel_after_two)
    assert seen == [1, 2]


def test_metric_model_is_blended_in_inverse_depth_and_stays_in_metres(random_metric_vits):
    images = torch.rand(1, 70, 98, 3, generator=torch.Generator().manual_seed(4))
    result = estimate(random_metric_vits, images, EstimateOptions(**TILED))
    values = result.depth.values
    plain = predict_depth(random_metric_vits, images, 28)
    assert result.depth.kind == "metric" and bool((values > 0).all()) and float(values.max()) <= 20.0
    assert abs(float(values.median() / plain.median()) - 1.0) < 0.1  # the global pass sets the metres


def test_refine_and_streams_work_in_tiled_mode(random_vits):
    frames = torch.rand(3, 70, 98, 3, generator=torch.Generator().manual_seed(5))
    options = EstimateOptions(**TILED, refine=0.5, temporal_consistency=True)
    whole = estimate(random_vits, frames, options).depth.values
    stream = DepthStream(random_vits, options)
    parts = torch.cat([stream(frames[:2]).depth.values, stream(frames[2:]).depth.values])
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(tile_size=500), "multiple of 14"),
        (dict(tile_size=14), "tile_size"),
        (dict(tile_overlap=518), "smaller than tile_size"),
        (dict(tile_size=280, tile_overlap=300), "smaller than tile_size"),
        (dict(tile_overlap=-1), "tile_overlap"),
        (dict(max_tiles=0), "max_tiles"),
        (dict(resolution="tiles"), "unknown resolution"),
    ],
)
def test_bad_tile_options_are_refused_with_the_option_named(bad, match):
    with pytest.raises(ValueError, match=match):
        EstimateOptions(**bad)
