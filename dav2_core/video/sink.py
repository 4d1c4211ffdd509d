"""Streaming encoding of the depth video with PyAV: H.264 (yuv420p) in mp4, written atomically.

- Timing: every frame keeps its source timestamp (shifted so the first processed frame is at 0), in the
  source's time base. Variable frame rate, skipped frames and strides therefore keep the depth video
  aligned with the source in time; the stream's nominal rate is the source's average rate / stride.
- Size: 4:2:0 needs even sides, so an odd width or height is padded by repeating the last column/row
  (1x1 -> 2x2, 4001x3 -> 4002x4); the image sequence keeps the exact source size.
- The file is written under a temporary name in the target folder and renamed over the final name only
  by :meth:`DepthVideoWriter.commit`; :meth:`~DepthVideoWriter.discard` (and any error inside the
  ``with`` block) deletes it, so a cancelled or failed run never leaves a partial video.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io import temp_prefix
from .audio import AudioPassthrough
from .source import VideoError, VideoSource

#: Encoders tried in order (PyAV wheels ship libx264; FFmpeg builds without it still have mpeg4).
VIDEO_CODECS = ("libx264", "h264", "libopenh264", "mpeg4")
#: Quality of the depth video: x264 constant rate factor (lower = better; 17 is visually lossless for
#: smooth depth maps) and speed preset.
CRF = 17
PRESET = "veryfast"
#: Container formats by output suffix.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def _codec() -> str:
    import av

    for name in VIDEO_CODECS:
        try:
            av.Codec(name, "w")  # an encoder of that name exists in this build
        except (ValueError, av.error.FFmpegError):
            continue
        return name
    raise VideoError(f"this PyAV/FFmpeg build has none of the video encoders {', '.join(VIDEO_CODECS)}")


def encoded_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the depth video for a source size: odd sides padded to even."""
    return width + width % 2, height + height % 2


def writable_temp(path: Path, suffix: str) -> Path:
    """Create the temporary file next to ``path`` (its folder is created); a clear VideoError if impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(f".{path.name}."), suffix=suffix)
    except OSError as exc:
        raise VideoError(
            f"cannot write to the output folder {path.parent} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None
    os.close(fd)
    return Path(name)


class DepthVideoWriter:
    """An H.264 depth video at ``path``: frames are [H,W] uint8 grey or [H,W,3] uint8 RGB at the source size.

    ``source`` gives the time base, rate and audio; ``start_pts`` (source time base) becomes time 0.
    ``metadata`` is stored in the container (mp4: as custom tags). ``audio``: pass the source's audio through.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: VideoSource,
        *,
        start_pts: int = 0,
        stride: int = 1,
        audio: bool = True,
        metadata: dict[str, Any] | None = None,
        crf: int = CRF,
    ) -> None:
        import av

        self.path = Path(path)
        fmt = CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise VideoError(
                f"{self.path}: unsupported depth video type {self.path.suffix!r}; use one of {', '.join(CONTAINERS)}"
            )
        self._temp = writable_temp(self.path, ".tmp" + self.path.suffix)
        self.width, self.height = source.width, source.height
        self.time_base = source.time_base
        self.start_pts = start_pts
        self.frames = 0
        self.audio_mode: str | None = None
        self._last_pts: int | None = None
        try:
            options = {"movflags": "use_metadata_tags"} if fmt in ("mp4", "mov") else {}
            self._container = av.open(str(self._temp), mode="w", format=fmt, options=options)
            for key, value in (metadata or {}).items():
                self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
            codec = _codec()
            stream = self._container.add_stream(codec, rate=source.rate / stride)
            stream.width, stream.height = encoded_size(self.width, self.height)
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = self.time_base
            stream.time_base = self.time_base
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": PRESET}
            self._stream = stream
            self._audio: AudioPassthrough | None = None
            if audio and source.audio_codec is not None:
                self._audio = AudioPassthrough(source, self._container, fmt, float(start_pts * self.time_base))
                self.audio_mode = self._audio.mode
        except BaseException:
            self.discard()
            raise

    def _pad(self, frame: np.ndarray) -> np.ndarray:
        pad_h, pad_w = self.height % 2, self.width % 2
        if not (pad_h or pad_w):
            return frame
        widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (frame.ndim - 2)
        return np.pad(frame, widths, mode="edge")

    def write(self, frame: np.ndarray, pts: int) -> None:
        """Encode one frame shown at source timestamp ``pts`` (must increase from frame to frame)."""
        import av

        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame of size {frame.shape[1]}x{frame.shape[0]} for a {self.width}x{self.height} video")
        out_pts = pts - self.start_pts
        if self._last_pts is not None and out_pts <= self._last_pts:
            raise ValueError(f"timestamps must increase: {pts} after {self._last_pts + self.start_pts}")
        image = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(self._pad(frame)), format="gray" if frame.ndim == 2 else "rgb24"
        )
        image.pts, image.time_base = out_pts, self.time_base
        for packet in self._stream.encode(image):
            self._container.mux(packet)
        self._last_pts = out_pts
        self.frames += 1
        if self._audio is not None:
            self._audio.advance(float(out_pts * self.time_base))

    def commit(self, end_pts: int | None = None) -> Path:
        """Flush, add the rest of the audio (up to source timestamp ``end_pts``; None: all), move into place."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                end = None if end_pts is None else float((end_pts - self.start_pts) * self.time_base)
                self._audio.finish(end)
            self._container.close()
            os.replace(self._temp, self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Drop the partial file."""
        for closer in (getattr(self, "_audio", None), getattr(self, "_container", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is deleted anyway
                    pass
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> DepthVideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.discard()
