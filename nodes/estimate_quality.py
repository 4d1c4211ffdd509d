"""The inputs Estimate Depth and Video Depth share, declared once: network size, tiled mode's tiles, flip TTA,
guided-filter refinement, temporal consistency, tta.

Only the schema lives here (kept apart so the node stays short); what they do is ``dav2_core.pipeline``.
"""

from __future__ import annotations

from .api import advanced, io

from .types import MAX_SIDE_LIMIT, choice_input

from dav2_core.inference import MAX_CHUNK
from dav2_core.pipeline import ESTIMATE_RESOLUTIONS
from dav2_core.preprocess import MAX_INPUT_SIZE
from dav2_core.tta import TTA_MODES
from dav2_core.tiling import DEFAULT_MAX_TILES, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, MAX_TILE_SIZE, MAX_TILES_LIMIT
from dav2_core.variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE, PATCH_SIZE


def side_input(name: str, default: int, max: int, tooltip: str, min: int = PATCH_SIZE, **flags: bool) -> io.Input:
    """A side in pixels that the network runs at: an Int in steps of the patch size (14); ``flags`` such as
    ``optional``."""
    return io.Int.Input(name, default=default, min=min, max=max, step=PATCH_SIZE, tooltip=tooltip, **flags)


def tile_inputs() -> list[io.Input]:
    """The optional tiled-mode inputs (used only with resolution 'tiled'; defaults keep old workflows)."""
    return [
        advanced(
            side_input(
                "tile_size",
                default=DEFAULT_TILE_SIZE,
                min=2 * PATCH_SIZE,
                max=MAX_TILE_SIZE,
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


def size_inputs() -> list[io.Input]:
    """``input_size``, ``resolution`` and ``max_side`` (advanced): the network size, as Estimate Depth and Video
    Depth both take it (``EstimateOptions``)."""
    return [
        side_input(
            "input_size",
            default=DEFAULT_INPUT_SIZE,
            max=MAX_INPUT_SIZE,
            tooltip="Network resolution for keep_aspect (the short side, multiple of 14). "
            f"{DEFAULT_INPUT_SIZE} is what the models were trained at; larger shows finer detail, costs more.",
        ),
        choice_input("resolution", ESTIMATE_RESOLUTIONS, default="keep_aspect"),
        advanced(
            side_input(
                "max_side",
                default=DEFAULT_MAX_SIDE,
                max=MAX_SIDE_LIMIT,
                tooltip="native mode only: the longest side the network runs at (multiple of 14); "
                "larger images are scaled down to it",
            )
        ),
    ]


def quality_inputs(*, video: bool = False) -> list[io.Input]:
    """The optional quality inputs: flip TTA, refine and :func:`temporal_inputs` (defaults = off on Estimate
    Depth, so workflows saved before them run unchanged; ``video``: Video Depth's temporal defaults)."""
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
        *temporal_inputs(video=video),
    ]


def temporal_inputs(*, video: bool = False) -> list[io.Input]:
    """``temporal_consistency`` and ``temporal_smoothing``: off and folded away (advanced) on Estimate Depth,
    on and shown on Video Depth (where the smoothing stays advanced)."""
    if video:
        consistency = (
            "Align each frame's depth scale and shift to the previous frame's (robust least squares, across "
            "chunks), so relative depth does not pump. Metric models are not aligned (they are in metres already)"
        )
        smoothing = "temporal_consistency only: 1 = fully aligned; lower lets the scale drift"
    else:
        consistency = (
            "For video frames / image sequences: align each frame's depth scale and shift to the "
            "previous frame's (robust least squares), then normalise the depth image and mask "
            "once over the whole batch (min_max/percentile become batch), so they do not "
            "flicker. Relative models only: metric depth is already in metres, so for metric "
            "models the alignment is skipped and only the batch-wide normalisation applies."
        )
        smoothing = (
            "temporal_consistency only: how strongly each frame's scale/shift is pulled to the "
            "previous frame's: 1 = fully aligned (least flicker); lower lets the scale follow the "
            "scene more freely; 0 = no alignment, only the batch-wide normalisation"
        )
    toggle = io.Boolean.Input("temporal_consistency", default=video, optional=True, tooltip=consistency)
    return [
        toggle if video else advanced(toggle),
        advanced(
            io.Float.Input(
                "temporal_smoothing", default=1.0, min=0.0, max=1.0, step=0.05, optional=True, tooltip=smoothing
            )
        ),
    ]


def chunk_size_input(tooltip: str) -> io.Input:
    """The advanced ``chunk_size`` (items per forward pass, 0 = automatic) of Estimate Depth and Video Depth; the
    tooltip says what the node's items and its automatic sizing are."""
    return advanced(io.Int.Input("chunk_size", default=0, min=0, max=MAX_CHUNK, tooltip=tooltip))


def tta_input() -> io.Input:
    """The optional ``tta`` choice; it comes after every older input, so saved workflows keep their values."""
    return advanced(
        choice_input(
            "tta",
            TTA_MODES,
            default="none",
            lead="Test-time augmentation (compute cost in parentheses; flip_tta on adds a flip to any choice):",
            optional=True,
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
