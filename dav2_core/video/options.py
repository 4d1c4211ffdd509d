"""What a depth video run is asked to do (:class:`VideoOptions`) and what it did (:class:`VideoReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..colormaps import COLORMAPS
from ..engines import as_engine
from ..inference import auto_chunk_size
from ..pipeline import EstimateOptions
from ..ranges import VIDEO_SCOPES, canonical, help_of
from .sequence import check_formats
from .sink import CRF
from .source import FrameRange

#: Normalisation of a depth video, with help text (defined in ``ranges``; the first is the default).
VIDEO_RANGE_HELP: dict[str, str] = help_of(VIDEO_SCOPES)
CACHE_MODES = ("auto", "disk", "recompute")
#: How a Video Depth Anything model runs over a clip, with help text (the first is the default).
VDA_MODE_HELP: dict[str, str] = {
    "offline": "the official windowed inference (32-frame windows, key frames, aligned overlaps): most accurate; "
    "depth frames come out up to 32 frames after their source frames",
    "streaming": "the official online mode (one frame in, one depth out, cached temporal states): for live or "
    "endless input; less accurate (official ScanNet delta1 0.926 -> 0.836)",
}
#: Host memory one chunk of frames may hold. On a CPU engine a frame in flight costs about
#: ``HOST_BYTES_PER_PIXEL["cpu"]`` bytes per pixel (decoded RGB, float RGB while preprocessing, depth, the
#: aligned and normalised copies); with a GPU engine the float work happens on the device and the host
#: holds little more than the decoded and the encoded frames.
CHUNK_HOST_BYTES = 256 << 20
HOST_BYTES_PER_PIXEL = {"cpu": 32, "other": 8}
#: Free disk kept beyond the two-pass cache before it is used.
CACHE_DISK_MARGIN = 1 << 30


@dataclass(frozen=True)
class VideoOptions:
    """How a depth video is made (validated on construction; ValueError names the bad option).

    estimate: the estimate options (network size, flip TTA, refine, temporal alignment; ``normalization``
    is the per-frame range statistic: 'min_max' or 'percentile'; 'raw' has no picture).
    range_mode: one of :data:`VIDEO_RANGE_HELP` (older names accepted: ``ranges.LEGACY_NAMES``). colormap: one of ``COLORMAPS`` ('gray': near = white).
    frames: which source frames. sequence: image-sequence formats to write too (``SEQUENCE_FORMATS``).
    audio: pass the source's audio through. cache: two-pass depth cache 'auto' (disk when there is room),
    'disk' or 'recompute'. crf: x264 quality (0 lossless .. 51; 17 visually lossless).
    vda_mode: one of :data:`VDA_MODE_HELP`; used with a Video Depth Anything model ('streaming' needs one).
    """

    estimate: EstimateOptions = EstimateOptions(temporal_consistency=True)
    range_mode: str = "clip"
    colormap: str = "gray"
    frames: FrameRange = FrameRange()
    sequence: tuple[str, ...] = ()
    audio: bool = True
    cache: str = "auto"
    crf: int = CRF
    vda_mode: str = "offline"

    def __post_init__(self) -> None:
        if self.vda_mode not in VDA_MODE_HELP:
            raise ValueError(f"unknown vda_mode {self.vda_mode!r}; choose one of {', '.join(VDA_MODE_HELP)}")
        object.__setattr__(self, "range_mode", canonical(self.range_mode, "video", "video normalisation"))
        if self.colormap not in COLORMAPS:
            raise ValueError(f"unknown colormap {self.colormap!r}; choose one of {', '.join(COLORMAPS)}")
        if self.estimate.normalization == "raw":
            raise ValueError(
                "a depth video needs a 0..1 picture: use normalization 'min_max' or "
                "'percentile', not 'raw' (write the raw values as an exr or npy sequence)"
            )
        if self.cache not in CACHE_MODES:
            raise ValueError(f"unknown cache mode {self.cache!r}; choose one of {', '.join(CACHE_MODES)}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be a whole number 0..51, got {self.crf!r}")
        check_formats(tuple(self.sequence))


@dataclass
class VideoReport:
    """What :func:`depth_video` did. Times in seconds; ``clip_range`` in nearness units (two-pass only)."""

    output: Path
    frames: int = 0  # frames in the depth video (= selected frames decoded)
    selected: int | None = None  # frames the range selects according to the header (None: unknown)
    skipped: list[int] = field(default_factory=list)
    source_frames: int | None = None
    size: tuple[int, int] = (0, 0)  # source width, height
    encoded_size: tuple[int, int] = (0, 0)
    fps: float = 0.0
    audio: str | None = None
    passes: int = 1
    cache: str = ""
    clip_range: tuple[float, float] | None = None
    chunk: int = 0
    sequence: Path | None = None
    sequence_files: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    lost: int = 0  # selected frames not in the depth video: undecodable, or missing after a cut or damage
    damaged: bool = False  # the file is damaged or cut: frames were lost (``lost`` may be 0 if their count is unknown)

    @property
    def problem(self) -> str | None:
        """One line saying how many frames were lost and why (None for a complete run): the CLI's exit status 1,
        the node's warning on its output."""
        if not self.lost and not self.damaged:
            return None
        count = f"{self.lost} of {self.selected} selected frames" if self.selected else f"{self.lost or 'some'} frames"
        return (
            f"{count} lost (the video file is damaged or cut short; {self.frames} frames made it into the depth video, "
            "the source timing is kept)"
        )


def chunk_frames(model: Any, options: EstimateOptions, height: int, width: int) -> int:
    """Frames per chunk: ``options.chunk_size``, else what fits the device (half its free memory) and
    :data:`CHUNK_HOST_BYTES` of host memory (1080p on a CPU: 4 frames)."""
    if options.chunk_size:
        return options.chunk_size
    device = auto_chunk_size(model, options.work_net_size(height, width), (height, width), options.flip_tta)
    per_pixel = HOST_BYTES_PER_PIXEL["cpu" if as_engine(model).device.type == "cpu" else "other"]
    return max(1, min(device, CHUNK_HOST_BYTES // (height * width * per_pixel)))
