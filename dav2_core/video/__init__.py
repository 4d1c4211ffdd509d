"""Streaming VIDEO -> depth VIDEO: decode (PyAV) -> :class:`~dav2_core.pipeline.DepthStream` per chunk -> encode.

Memory stays flat however long the clip is: one chunk of frames (sized from free device memory and
``options.CHUNK_HOST_BYTES`` of host memory) is decoded, estimated, normalised and encoded before the next
is read. Temporal alignment and the normalisation range are carried across chunks by DepthStream.

Decisions:
- Normalisation ``clip`` (one range over the whole clip, two passes) is the default: the first pass estimates every frame and keeps only each
  frame's range (and its depth in an unlinked float16 temporary file beside the output, when the disk
  has room; otherwise the second pass estimates the clip again); the second pass normalises every frame
  with the clip-wide range (``DepthStream(range_mode="fixed")``). It is the only mode in which a region
  keeps its grey level over the whole clip: ``running`` (one pass) is flicker-free too, but a range that
  widens later changes the grey levels from then on; ``image`` (each frame its own range) flickers.
- Timing: the depth video keeps every frame's source timestamp (shifted to start at 0), so variable frame
  rates, strides and skipped (undecodable) frames stay aligned with the source; no frame is duplicated
  to fill a gap. Nominal rate = source average rate / stride.
- Frames: frame count out = frames decoded in the range; indices count every source frame slot.
- Sizes: H.264 4:2:0 needs even sides: odd ones are padded by repeating the edge (the sequence files keep
  the exact size). 10-bit / 4:4:4 sources are converted to 8-bit RGB for the network.
- Audio: the first audio stream is copied (or re-encoded to AAC where mp4 cannot hold it), cut to the
  processed time range.
- Cancel: ``check_cancel`` runs after every chunk; on cancel or error the partial video, the sequence's
  staging folder and the cache are deleted.

Video Depth Anything models run their own windows (:mod:`.vda`: offline = the official 32-frame windows with
key frames and aligned overlaps, streamed; online = cached temporal states) in place of the per-chunk estimate.

Modules: :mod:`.options` (options, report), :mod:`.source` (decoding, frame range), :mod:`.sink` (encoding),
:mod:`.audio`, :mod:`.sequence` (per-frame files), :mod:`.cache` (two-pass cache), :mod:`.run` (the passes);
:mod:`.live` (``dav2 live``: cameras, streams and real-time files, latest frame wins) and :mod:`.mjpeg` (its
local browser stream).
"""

from .options import VDA_MODE_HELP, VIDEO_RANGE_HELP, VideoOptions, VideoReport, chunk_frames
from .run import depth_video
from .sequence import SEQUENCE_FORMATS
from .sink import encoded_size
from .source import FrameRange, VideoError, VideoSource

__all__ = [
    "SEQUENCE_FORMATS",
    "VDA_MODE_HELP",
    "VIDEO_RANGE_HELP",
    "FrameRange",
    "VideoError",
    "VideoOptions",
    "VideoReport",
    "VideoSource",
    "chunk_frames",
    "depth_video",
    "encoded_size",
]
