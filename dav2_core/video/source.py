"""Streaming video decoding with PyAV: the frames of a clip in chunks, with their timestamps and indices.

A frame's *index* is its position in the source's presentation order counting every frame slot,
including frames that fail to decode, so indices (and the frame range start/count/stride) mean the
same with or without damage. Frames come out as [n,H,W,3] uint8 RGB: 10-bit, 4:4:4 and other pixel
formats are converted by FFmpeg's swscale (the network's input is 8-bit RGB, as in the official
pipeline). A frame whose size differs from the first frame's is scaled to the first frame's size.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO
from collections.abc import Callable, Iterator

import numpy as np

#: Frames in a row that may fail to decode before the stream is taken to end there (garbage tail).
MAX_CONSECUTIVE_BAD_FRAMES = 25


class VideoError(ValueError):
    """A video that cannot be used as asked (not a video, no video stream, frame range past the end ...)."""


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency of the package and of ComfyUI
        raise VideoError("video needs PyAV: pip install av (ComfyUI already ships it)") from None
    return av


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to process: ``start`` (index of the first), ``count`` (0 = to the end), ``stride``."""

    start: int = 0
    count: int = 0
    stride: int = 1

    def __post_init__(self) -> None:
        for name, low in (("start", 0), ("count", 0), ("stride", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"frame range: {name} must be a whole number >= {low}, got {value!r}")

    def selects(self, index: int) -> bool:
        offset = index - self.start
        return offset >= 0 and offset % self.stride == 0 and (self.count == 0 or offset // self.stride < self.count)

    def past(self, index: int) -> bool:
        """Whether every selected index is below ``index`` (decoding can stop)."""
        return self.count > 0 and index >= self.start + (self.count - 1) * self.stride + 1

    def expected(self, total: int | None) -> int | None:
        """How many frames the range selects from a clip of ``total`` frames (None if unknown)."""
        if total is None:
            return self.count or None
        available = max(0, math.ceil((total - self.start) / self.stride))
        return min(available, self.count) if self.count else available


@dataclass
class FrameChunk:
    """Consecutive selected frames: source indices, timestamps (in ``VideoSource.time_base``), RGB uint8 [n,H,W,3]."""

    indices: list[int]
    pts: list[int]
    frames: np.ndarray


@dataclass
class DecodeStats:
    """What one decoding pass saw: selected frames decoded, selected frames skipped (undecodable), where it ended."""

    decoded: int = 0
    skipped: list[int] = field(default_factory=list)
    last_index: int = -1  # last frame slot seen (decoded or not)
    ended_early: str = ""  # why decoding stopped before the container's end (demux error, garbage tail)
    range_done: bool = False  # stopped after the last selected frame (the rest was not read)
    resized: int = 0  # frames scaled to the first frame's size


class VideoSource:
    """A video file (path, or a binary file object such as ComfyUI's BytesIO) opened for streaming.

    Properties come from the container header: ``width``/``height`` (first video stream), ``time_base``,
    ``rate`` (average frame rate; guessed when absent), ``frame_count`` (header count, else estimated
    from the duration; None when unknown) and ``audio_codec`` (first audio stream, or None).
    Each :meth:`chunks` call is an independent decoding pass (a two-pass run calls it twice).
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, name: str | None = None) -> None:
        self.name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "video stream")
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise VideoError(f"{path}: no such video file")
            self._path: str | None = str(path)
            self._bytes: bytes | None = None
        else:  # one private copy: every pass (and the audio copier) needs its own read position
            source.seek(0)
            self._path, self._bytes = None, source.read()
        container = self.open()
        try:
            streams = container.streams.video
            if not streams:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise VideoError(
                    f"{self.name}: the file has no video stream (streams: {', '.join(kinds)}); "
                    "give a video file with picture frames"
                )
            stream = streams[0]
            self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
            if self.width < 1 or self.height < 1:
                raise VideoError(f"{self.name}: the video stream has no frame size ({self.width}x{self.height})")
            self.codec = stream.codec_context.name
            self.time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.rate = Fraction(rate) if rate else Fraction(30)
            self.frame_count_exact = bool(stream.frames and stream.frames > 0)
            self.frame_count = self._count(container, stream)
            audio = container.streams.audio
            self.audio_codec = audio[0].codec_context.name if audio else None
        finally:
            container.close()

    def _count(self, container, stream) -> int | None:
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        seconds = None
        if stream.duration is not None and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        return max(1, round(seconds * float(self.rate))) if seconds else None

    @property
    def frame_step(self) -> int:
        """One nominal frame duration in ``time_base`` units (at least 1)."""
        return max(1, round(1 / (self.rate * self.time_base)))

    def open(self):
        """A new PyAV input container on the source (the caller closes it)."""
        av = _av()
        try:
            return av.open(self._path if self._path is not None else io.BytesIO(self._bytes), mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(f"{self.name}: cannot open it as a video ({exc}); is it a video file?") from None

    def _packets(self, container, stream, stats: DecodeStats):
        av = _av()
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:  # damaged container: what was read so far stays valid
                stats.ended_early = f"the file is damaged after frame {stats.last_index} ({exc})"
                return
            yield packet

    def frames(
        self, frame_range: FrameRange, stats: DecodeStats, on_skip: Callable[[int, str], None] | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Selected frames one by one as (index, pts, RGB uint8 [H,W,3]), in presentation order.

        Undecodable frames followed by a good one are skipped (``stats.skipped``, ``on_skip(index, why)``);
        ``MAX_CONSECUTIVE_BAD_FRAMES`` failures in a row end the stream (``stats.ended_early``).
        Missing or non-increasing timestamps are replaced by the previous one plus one frame step.
        """
        av = _av()
        container = self.open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index, pending, last_pts = 0, [], None
            for packet in self._packets(container, stream, stats):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    if packet.size == 0:  # the final flush failing is no lost frame
                        continue
                    pending.append((index, f"cannot be decoded ({exc.strerror or exc})"))
                    stats.last_index = index
                    index += 1
                    if len(pending) >= MAX_CONSECUTIVE_BAD_FRAMES:
                        stats.ended_early = (
                            f"{len(pending)} frames in a row from frame {pending[0][0]} cannot be decoded"
                        )
                        return
                    continue
                for frame in decoded:
                    for bad, why in pending:  # failures followed by a good frame: real mid-stream skips
                        if frame_range.selects(bad):
                            stats.skipped.append(bad)
                            if on_skip is not None:
                                on_skip(bad, why)
                    pending = []
                    pts = frame.pts
                    if pts is None or (last_pts is not None and pts <= last_pts):
                        pts = 0 if last_pts is None else last_pts + self.frame_step
                    last_pts = pts
                    stats.last_index = index
                    if frame_range.selects(index):
                        stats.decoded += 1
                        yield index, pts, self._rgb(frame, stats)
                    index += 1
                    if frame_range.past(index):
                        stats.range_done = True
                        return
            if pending:
                stats.ended_early = f"the last {len(pending)} frames from frame {pending[0][0]} cannot be decoded"
        finally:
            container.close()

    def _rgb(self, frame, stats: DecodeStats) -> np.ndarray:
        if (frame.width, frame.height) == (self.width, self.height):
            return frame.to_ndarray(format="rgb24")
        stats.resized += 1
        return frame.to_ndarray(format="rgb24", width=self.width, height=self.height)

    def chunks(
        self, frame_range: FrameRange, size: int, stats: DecodeStats, on_skip: Callable[[int, str], None] | None = None
    ) -> Iterator[FrameChunk]:
        """The selected frames in chunks of at most ``size`` (only one chunk is held at a time)."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        indices: list[int] = []
        pts: list[int] = []
        frames = np.empty((size, self.height, self.width, 3), np.uint8)
        for index, stamp, rgb in self.frames(frame_range, stats, on_skip):
            frames[len(indices)] = rgb
            indices.append(index)
            pts.append(stamp)
            if len(indices) == size:
                yield FrameChunk(indices, pts, frames)
                indices, pts = [], []
                frames = np.empty_like(frames)  # the consumer may still hold the previous chunk
        if indices:
            yield FrameChunk(indices, pts, frames[: len(indices)])
