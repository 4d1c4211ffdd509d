"""The one estimate path: options -> predict -> refine -> temporal alignment -> DepthMap -> normalised map.

Estimate Depth, Video Depth and the CLI (images and videos) all run depth through here, so an option
means the same thing everywhere:

- :class:`EstimateOptions` (frozen, validated once) says how: network size rule (or tiled high-resolution
  depth, :mod:`.tiling`), chunking, test-time augmentation (flip, multi-scale: :mod:`.tta`),
  image-guided refinement, temporal alignment, normalisation and invert.
- :func:`estimate` runs a whole IMAGE batch [B,H,W,C] -> :class:`DepthResult` (DepthMap + 0..1 map).
- :class:`DepthStream` runs consecutive chunks of one clip, carrying state across chunks: temporal
  alignment to the previous chunk's last frame and a clip-wide normalisation range (a running range, a
  fixed range known in advance, or per frame), so a streamed video does not flicker at chunk boundaries.

Below this module: :mod:`.inference` (chunked engine calls), :mod:`.effects` (refinement, alignment),
:mod:`.normalize`. Nothing here imports ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable

import torch

from .depth import DepthMap
from .effects.refine import refine_with_image
from .effects.temporal import TemporalAligner
from .engines import as_engine, describe, is_video_model, single_image_refusal
from .inference import ProgressFn, predict_depth
from .normalize import RunningRange, nearness, normalize_depth, range_of, scale_to_unit
from .preprocess import RESOLUTION_MODES, check_input_size, network_size
from .ranges import STREAM_SCOPES, canonical, help_of
from .tta import check_tta, check_tta_options, tta_mode, tta_parts, view_sizes
from .tiling import (
    DEFAULT_MAX_TILES,
    DEFAULT_TILE_OVERLAP,
    DEFAULT_TILE_SIZE,
    check_tile_options,
    plan_tiles,
    tiled_depth,
)
from .variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE, PATCH_SIZE

CancelCheck = Callable[[], None]
"""Called between units of work (frames, chunks); raises to cancel (e.g. ComfyUI's interrupt check)."""

EstimateResolution = Literal["keep_aspect", "native", "tiled"]
#: Every resolution mode of the estimate path with its help text (the network size rules + tiled).
ESTIMATE_RESOLUTIONS: dict[str, str] = {
    **RESOLUTION_MODES,
    "tiled": "a keep_aspect pass for the layout plus overlapping tile_size tiles over the full-resolution image "
    "for detail, each aligned to it and blended without seams (more compute; for large images)",
}

StreamRange = Literal["running", "image", "fixed"]
#: How a stream's frames are normalised, with their help text (defined in ``ranges``).
STREAM_RANGE_HELP: dict[str, str] = help_of(STREAM_SCOPES)


@dataclass(frozen=True)
class EstimateOptions:
    """How depth is estimated and normalised (validated on construction; ValueError names the bad option).

    input_size: network short side for keep_aspect and tiled's global pass (px, >= 14; x14 used as is).
    resolution: one of :data:`ESTIMATE_RESOLUTIONS`; max_side: native mode's longest network side.
    tile_size / tile_overlap / max_tiles: tiled mode (see :mod:`dav2_core.tiling`): tile side (x14, px),
    minimum overlap of neighbouring tiles (px, < tile_size), most tiles per image (the image is scaled
    down when more would be needed). Validated in every mode.
    chunk_size: images per forward pass, None = sized from free memory.
    flip_tta: also run the mirrored image and average (twice the compute). Kept for callers and saved
    workflows from before ``tta``: True adds the flip to ``tta`` (none -> flip, multi_scale ->
    multi_scale_flip); after construction it always says whether ``tta`` flips.
    refine: 0..1 strength of the image-guided (guided filter) edge refinement; 0 = off.
    temporal_consistency / temporal_smoothing: align each frame's scale/shift to its predecessor
    (relative models only) with strength 0..1, and normalise over the batch instead of per image.
    normalization: one of ``normalize.NORMALIZE_MODES`` (older names accepted: ``ranges.LEGACY_NAMES``); invert: near = 0 instead of 1 (not with 'raw').
    tta: test-time augmentation, one of ``tta.TTA_MODES`` (none, flip, multi_scale, multi_scale_flip);
    multi_scale is not available in tiled mode and needs keep_aspect input_size >= 42.
    """

    input_size: int = DEFAULT_INPUT_SIZE
    resolution: EstimateResolution = "keep_aspect"
    max_side: int = DEFAULT_MAX_SIDE
    tile_size: int = DEFAULT_TILE_SIZE
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    max_tiles: int = DEFAULT_MAX_TILES
    chunk_size: int | None = None
    flip_tta: bool = False
    refine: float = 0.0
    temporal_consistency: bool = False
    temporal_smoothing: float = 1.0
    normalization: str = "min_max"
    invert: bool = False
    tta: str = "none"

    def __post_init__(self) -> None:
        check_input_size(self.input_size)
        check_tta(self.tta)
        multi_scale, flip = tta_parts(self.tta)
        object.__setattr__(self, "tta", tta_mode(multi_scale, flip or bool(self.flip_tta)))
        object.__setattr__(self, "flip_tta", tta_parts(self.tta)[1])
        if self.resolution not in ESTIMATE_RESOLUTIONS:
            raise ValueError(
                f"unknown resolution mode {self.resolution!r}; choose one of {', '.join(ESTIMATE_RESOLUTIONS)}"
            )
        check_tile_options(self.tile_size, self.tile_overlap, self.max_tiles)
        if isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < PATCH_SIZE:
            raise ValueError(f"max_side must be a whole number of pixels >= {PATCH_SIZE}, got {self.max_side!r}")
        if self.chunk_size is not None and (not isinstance(self.chunk_size, int) or self.chunk_size < 1):
            raise ValueError(
                f"chunk_size must be a whole number of images >= 1 (or None for automatic), got {self.chunk_size!r}"
            )
        for name in ("refine", "temporal_smoothing"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
                raise ValueError(f"{name} must be a number in 0..1, got {value!r}")
        object.__setattr__(self, "normalization", canonical(self.normalization, "estimate", "normalization"))
        if self.normalization == "raw" and self.invert:
            raise ValueError(
                "invert cannot be combined with normalization 'raw' (raw keeps the model's values); "
                "turn invert off or pick min_max, percentile or batch"
            )
        check_tta_options(self.tta, self.resolution, self.input_size)

    @property
    def multi_scale(self) -> bool:
        """Whether the multi-scale TTA views run (``tta`` multi_scale or multi_scale_flip)."""
        return tta_parts(self.tta)[0]

    @property
    def effective_normalization(self) -> str:
        """The normalisation actually used: with temporal consistency, one min-max over the batch (raw stays raw)."""
        if self.temporal_consistency and self.normalization in ("min_max", "percentile"):
            return "batch"
        return self.normalization

    def net_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network runs at for a ``height`` x ``width`` image (tiled: its global pass)."""
        mode = "keep_aspect" if self.resolution == "tiled" else self.resolution
        return network_size(height, width, self.input_size, mode, self.max_side)

    def work_net_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the largest network pass per image (the larger multi-scale view, else :meth:`net_size`):
        what one image in a chunk costs in memory. ValueError when the multi-scale views cannot be made."""
        net = self.net_size(height, width)
        if not self.multi_scale:
            return net
        keep_aspect = self.input_size if self.resolution == "keep_aspect" else None
        return view_sizes(net, (height, width), keep_aspect)[-1]

    def resolved_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the depth is resolved at: the network size, or tiled mode's working resolution."""
        net = self.net_size(height, width)
        if self.resolution != "tiled":
            return net
        grid = plan_tiles(height, width, self.tile_size, self.tile_overlap, self.max_tiles, net)
        return net if grid is None else (grid.work_h, grid.work_w)

    def memory_required(self, model: Any, batch: int, height: int, width: int, typical_chunk: int = 4) -> int:
        """Bytes of working memory (activations, not weights) one forward pass over ``batch`` images of
        ``height`` x ``width`` needs on the model's device: the chunk (``chunk_size``, or up to
        ``typical_chunk`` images when automatic; doubled by flip TTA) times the per-image estimate at the
        largest network pass (multi-scale TTA's larger view). What a host such as ComfyUI should free before
        loading the model; the chunking still adapts at run time."""
        images = self.chunk_size or min(max(1, batch), typical_chunk)
        if is_video_model(model):  # Video Depth Anything runs whole 32-frame windows through its head
            from .variants import VDA_WINDOW

            images = VDA_WINDOW
        per_image = as_engine(model).bytes_per_image(self.work_net_size(height, width), (height, width))
        return images * (2 if self.flip_tta else 1) * per_image

    def with_(self, **changes: Any) -> EstimateOptions:
        """A validated copy with some options changed (``tta`` alone replaces the flip too; ``flip_tta``
        alone adds or removes the flip of the current ``tta``)."""
        if "tta" in changes and "flip_tta" not in changes:
            changes["flip_tta"] = False
        elif "flip_tta" in changes and "tta" not in changes:
            changes["tta"] = tta_mode(self.multi_scale, bool(changes["flip_tta"]))
        return replace(self, **changes)


@dataclass(frozen=True)
class DepthResult:
    """Depth of a batch: the float :class:`DepthMap` and its normalised map [B,H,W] (0..1, near = 1 unless
    inverted; the raw values for normalisation 'raw'). ``bounds``: the nearness range (lo[B], hi[B]) each
    frame was scaled with, where a :class:`DepthStream` normalised it (None otherwise)."""

    depth: DepthMap
    normalized: torch.Tensor
    normalization: str
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None

    def depth_image(self) -> torch.Tensor:
        """The normalised map as a grey IMAGE [B,H,W,3] float32 (raw values repeated for 'raw')."""
        grey = self.normalized.float()
        if self.normalization != "raw":
            grey = torch.nan_to_num(grey, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
        return grey.unsqueeze(-1).expand(*grey.shape, 3).contiguous()


def model_label(model: Any, name: str | None = None) -> str:
    """What a DepthMap records as its model: ``name`` if given, else the variant id or checkpoint file name."""
    if name:
        return name
    source = describe(model)[2]
    return Path(source).name if ("/" in source or "\\" in source) else source


def _depth_values(
    model: Any,
    images: torch.Tensor,
    options: EstimateOptions,
    progress: ProgressFn | None,
    check_cancel: CancelCheck | None,
    output_device: torch.device | str | None,
    work_device: torch.device | str | None,
    clip: bool = False,
) -> torch.Tensor:
    """predict -> refine: depth [B,H,W] float32 on ``output_device`` (None: the engine's device). ``clip``: the
    batch is one clip through Video Depth Anything (:func:`_vda_clip`) instead of independent images."""

    def on_chunk(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if check_cancel is not None:
            check_cancel()

    if clip:
        values, net = _vda_clip(model, images, options, progress, check_cancel, output_device)
    elif options.resolution == "tiled":
        values = tiled_depth(
            model,
            images,
            options.input_size,
            options.tile_size,
            options.tile_overlap,
            options.max_tiles,
            options.chunk_size,
            options.flip_tta,
            on_chunk,
            output_device,
        )
    else:
        values = predict_depth(
            model,
            images,
            options.input_size,
            options.resolution,
            options.max_side,
            options.chunk_size,
            options.flip_tta,
            on_chunk,
            output_device,
            multi_scale=options.multi_scale,
        )
    if options.refine > 0.0:
        if not clip:
            net = options.resolved_size(values.shape[1], values.shape[2])
        device = work_device if work_device is not None else as_engine(model).device
        values = refine_with_image(images, values, float(options.refine), net, device, check_cancel)
    return values


def _vda_clip(
    model: Any,
    images: torch.Tensor,
    options: EstimateOptions,
    progress: ProgressFn | None,
    check_cancel: CancelCheck | None,
    output_device: torch.device | str | None,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """An IMAGE batch [B,H,W,C] as one clip through Video Depth Anything -> (depth [B,H,W] float32, the
    network size (h, w) it ran at)."""
    from .vda import OfflineVDA, check_vda_options  # lazy: loaded only for a Video Depth Anything model

    check_vda_options(options, refine_ok=True)
    if images.ndim == 3 or images.shape[0] < 2:
        raise ValueError(single_image_refusal(model))
    runner = OfflineVDA(model, options.input_size, output_device, check_cancel)
    parts, total = [], images.shape[0]
    for start in range(0, total, STEP_FRAMES):
        parts.append(runner.push(images[start : start + STEP_FRAMES]))
        if progress is not None:
            progress(runner.frames_out, total)
    parts.append(runner.finish())
    if progress is not None:
        progress(total, total)
    return torch.cat(parts), runner.net


#: Frames handed to a Video Depth Anything window runner at a time (its windows take 22 new frames).
STEP_FRAMES = 22


@torch.inference_mode()
def estimate(
    model: Any,
    images: torch.Tensor,
    options: EstimateOptions = EstimateOptions(),
    *,
    progress: ProgressFn | None = None,
    check_cancel: CancelCheck | None = None,
    output_device: torch.device | str | None = "cpu",
    work_device: torch.device | str | None = None,
    model_name: str | None = None,
) -> DepthResult:
    """Depth for a whole IMAGE batch [B,H,W,C] (float 0..1 or uint8) through the one estimate path.

    ``progress(done, total)`` runs after each chunk and ``check_cancel()`` after each chunk / refined frame.
    The result lives on ``output_device`` (None: the model's device); refinement runs on ``work_device``
    (default the model's device) one frame at a time.

    A Video Depth Anything model treats the batch as one clip (the official offline windows, frame order =
    batch order; :mod:`dav2_core.vda`); a batch of one image, tiled mode or flip TTA is refused.
    """
    kind, _, _ = describe(model)
    clip = is_video_model(model)
    values = _depth_values(model, images, options, progress, check_cancel, output_device, work_device, clip)
    if options.temporal_consistency and kind == "relative" and values.shape[0] > 1 and not clip:
        values = TemporalAligner(float(options.temporal_smoothing))(values)
    depth = DepthMap(values, kind=kind, model=model_label(model, model_name))
    mode = options.effective_normalization
    return DepthResult(depth, normalize_depth(depth, mode, invert=options.invert), mode)


@dataclass
class DepthStream:
    """Depth for consecutive chunks of one clip with state carried across chunks (see the module docstring).

    range_mode: 'running' (default: a widening clip range, one pass), 'image' (each frame its own), or 'fixed' with
    ``fixed_range`` = (lo, hi) in *nearness* units (``normalize.range_of`` units: relative values, or
    minus metres for metric depth), e.g. from a first pass. With ``options.temporal_consistency`` each
    frame of a relative model is aligned to the previous output frame, across chunk boundaries too.
    Normalisation 'raw' passes the values through; 'batch' is read as 'running' for a stream.
    Calling the stream is :meth:`depth` (estimate + align) then :meth:`normalize`; a two-pass run calls
    them apart: depth (and a ``normalize.RunningRange`` of :attr:`statistic`) in the first pass, ``normalize``
    with the clip range after.
    """

    model: Any
    options: EstimateOptions = field(default_factory=EstimateOptions)
    range_mode: StreamRange = "running"
    fixed_range: tuple[float, float] | None = None
    model_name: str | None = None
    output_device: torch.device | str | None = "cpu"
    work_device: torch.device | str | None = None
    frames_done: int = 0

    def __post_init__(self) -> None:
        self.range_mode = canonical(self.range_mode, "stream")  # older names accepted (ranges.LEGACY_NAMES)
        if (self.range_mode == "fixed") != (self.fixed_range is not None):
            raise ValueError("range_mode 'fixed' needs fixed_range=(lo, hi), and fixed_range needs range_mode 'fixed'")
        self.kind = describe(self.model)[0]
        self._running = RunningRange(self.statistic) if self.options.normalization != "raw" else None
        align = self.options.temporal_consistency and self.kind == "relative"
        self._aligner = TemporalAligner(float(self.options.temporal_smoothing)) if align else None

    @property
    def statistic(self) -> str:
        """The per-frame range statistic ('min_max' or 'percentile'; 'batch' reads as 'min_max')."""
        mode = self.options.normalization
        return "min_max" if mode == "batch" else mode

    def depth(self, frames: torch.Tensor, *, check_cancel: CancelCheck | None = None) -> DepthMap:
        """predict -> refine -> temporal alignment for the next chunk [n,H,W,C] (float 0..1 or uint8), not
        normalised: the DepthMap [n,H,W] (aligned to the previous chunk's last frame when alignment is on)."""
        values = _depth_values(
            self.model, frames, self.options, None, check_cancel, self.output_device, self.work_device
        )
        if self._aligner is not None:
            values = self._aligner(values)
        self.frames_done += values.shape[0]
        return DepthMap(values, kind=self.kind, model=model_label(self.model, self.model_name))

    def normalize(self, depth: DepthMap) -> DepthResult:
        """Normalise the next chunk's depth under the range mode (running: widens the clip range with it)."""
        mode = self.options.normalization
        if mode == "raw":
            return DepthResult(depth, normalize_depth(depth, "raw"), "raw")
        if self.range_mode == "image":
            lo, hi = range_of(depth, self.statistic)
        elif self.range_mode == "fixed":
            lo = torch.full((depth.batch,), float(self.fixed_range[0]))
            hi = torch.full((depth.batch,), float(self.fixed_range[1]))
        else:
            lo, hi = self._running.update(depth)
        return DepthResult(depth, scale_to_unit(nearness(depth), lo, hi, self.options.invert), mode, (lo, hi))

    def __call__(self, frames: torch.Tensor, *, check_cancel: CancelCheck | None = None) -> DepthResult:
        """Depth for the next chunk of frames [n,H,W,C] (float 0..1 or uint8): ``normalize(depth(frames))``."""
        return self.normalize(self.depth(frames, check_cancel=check_cancel))
