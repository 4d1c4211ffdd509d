"""Estimate Depth's optional quality inputs: tiled mode's tiles, flip TTA, guided-filter refinement, temporal
consistency for video.

Only the schema lives here (kept apart so the node stays short); what they do is ``dav2_core.pipeline``.
"""

from __future__ import annotations

from .api import advanced, io

from dav2_core.tta import TTA_MODES
from dav2_core.tiling import DEFAULT_MAX_TILES, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, MAX_TILE_SIZE, MAX_TILES_LIMIT
from dav2_core.variants import PATCH_SIZE


def tile_inputs() -> list[io.Input]:
    """The optional tiled-mode inputs (used only with resolution 'tiled'; defaults keep old workflows)."""
    return [
        advanced(
            io.Int.Input(
                "tile_size",
                default=DEFAULT_TILE_SIZE,
                min=2 * PATCH_SIZE,
                max=MAX_TILE_SIZE,
                step=PATCH_SIZE,
                optional=True,
                tooltip="tiled mode only: side of each tile in pixels (multiple of 14), run at the network at "
                f"that size. {DEFAULT_TILE_SIZE} is what the models were trained at.",
            )
        ),
        advanced(
            io.Int.Input(
                "tile_overlap",
                default=DEFAULT_TILE_OVERLAP,
                min=0,
                max=MAX_TILE_SIZE - 1,
                optional=True,
                tooltip="tiled mode only: least overlap of neighbouring tiles in pixels (must be smaller than "
                "tile_size); tiles are blended across it with smooth weights, so no seams show",
            )
        ),
        advanced(
            io.Int.Input(
                "max_tiles",
                default=DEFAULT_MAX_TILES,
                min=1,
                max=MAX_TILES_LIMIT,
                optional=True,
                tooltip="tiled mode only: most tiles per image; a larger image is scaled down until its tiles "
                "fit (each tile costs about one normal pass). Images no larger than the normal pass "
                "get no tiles.",
            )
        ),
    ]


def quality_inputs() -> list[io.Input]:
    """The optional Estimate Depth inputs (defaults = off, so workflows saved before them run unchanged)."""
    return [
        advanced(
            io.Boolean.Input(
                "flip_tta",
                default=False,
                optional=True,
                tooltip="Test-time augmentation: also predict the horizontally flipped image and average "
                "both (cleaner, more symmetric depth; twice the compute). The same as tta 'flip'; with tta "
                "multi_scale every view is flipped (multi_scale_flip).",
            )
        ),
        advanced(
            io.Float.Input(
                "refine",
                default=0.0,
                min=0.0,
                max=1.0,
                step=0.05,
                optional=True,
                tooltip="Edge-aware refinement strength: a colour-guided filter with the input image as guide "
                "snaps depth edges to image edges and smooths flat areas (window about twice the "
                "network-to-image upscaling). 0 = off, 1 = fully filtered, in between blends.",
            )
        ),
        advanced(
            io.Boolean.Input(
                "temporal_consistency",
                default=False,
                optional=True,
                tooltip="For video frames / image sequences: align each frame's depth scale and shift to the "
                "previous frame's (robust least squares), then normalise the depth image and mask "
                "once over the whole batch (per_image/percentile become batch), so they do not "
                "flicker. Relative models only: metric depth is already in metres, so for metric "
                "models the alignment is skipped and only the batch-wide normalisation applies.",
            )
        ),
        advanced(
            io.Float.Input(
                "temporal_smoothing",
                default=1.0,
                min=0.0,
                max=1.0,
                step=0.05,
                optional=True,
                tooltip="temporal_consistency only: how strongly each frame's scale/shift is pulled to the "
                "previous frame's: 1 = fully aligned (least flicker); lower lets the scale follow the "
                "scene more freely; 0 = no alignment, only the batch-wide normalisation",
            )
        ),
    ]


def tta_input() -> io.Input:
    """The optional ``tta`` choice; it comes after every older input, so saved workflows keep their values."""
    return advanced(
        io.Combo.Input(
            "tta",
            options=list(TTA_MODES),
            default="none",
            optional=True,
            tooltip="Test-time augmentation (compute cost in parentheses; flip_tta on adds a flip to any choice):\n"
            + "\n".join(f"{name}: {text}" for name, text in TTA_MODES.items()),
        )
    )


def tile_options(tile_size: int | None, tile_overlap: int | None, max_tiles: int | None) -> dict[str, int]:
    """The tile inputs that are set, as EstimateOptions fields (absent optional inputs keep its defaults)."""
    given = {"tile_size": tile_size, "tile_overlap": tile_overlap, "max_tiles": max_tiles}
    return {name: value for name, value in given.items() if value is not None}


def tta_options(tta: str | None, resolution: str | None, input_size: int | None) -> dict[str, object]:
    """What validate_inputs can check of tta (with the resolution and input_size it depends on), as
    EstimateOptions fields; inputs not yet known (linked from another node) keep its defaults."""
    given = {"tta": tta, "resolution": resolution, "input_size": input_size}
    return {name: value for name, value in given.items() if value is not None} if tta is not None else {}
