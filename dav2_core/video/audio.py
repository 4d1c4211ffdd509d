"""Audio pass-through for the depth video: the source's first audio stream, cut to the processed time window.

Packets are copied unchanged (no re-encoding) when the output container can hold the codec; otherwise
(e.g. PCM or Vorbis into mp4) the audio is decoded and re-encoded as AAC. Copied audio is cut at packet
boundaries (a packet is ~20 ms for AAC); re-encoded audio is cut to the sample. Audio is muxed as the
video advances, so the muxer never has to buffer the whole clip.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import numpy as np

from .source import VideoSource

log = logging.getLogger(__name__)

#: Audio codecs an mp4/mov file can carry as they are; anything else is re-encoded to AAC for mp4.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


class AudioPassthrough:
    """Copies the source's audio into ``output`` (a PyAV output container) between ``start`` and the end.

    ``start``: seconds of source time that become time 0 of the output. Call :meth:`advance` with the
    output time reached by the video, then :meth:`finish` with the end of the window (None: all audio).
    ``mode`` is 'copied' or 're-encoded to aac'.
    """

    def __init__(self, source: VideoSource, output: Any, container_format: str, start: float) -> None:
        self._input = source.open()
        self._stream = self._input.streams.audio[0]
        codec = self._stream.codec_context.name
        self.copy = container_format not in ("mp4", "mov") or codec in MP4_AUDIO_CODECS
        self.mode = "copied" if self.copy else f"re-encoded from {codec} to aac"
        if self.copy:
            self._out = output.add_stream_from_template(self._stream)
        else:
            layout = "mono" if self._stream.layout.nb_channels == 1 else "stereo"  # named layouts only
            self._out = output.add_stream("aac", rate=self._stream.rate or 48000, layout=layout)
        self._output = output
        self._start = Fraction(start).limit_denominator(1 << 30)
        self._packets = self._input.demux(self._stream)
        self._held: Any = None  # a packet read but not yet due
        self._end: Fraction | None = None  # source time where the window ends (set by finish)
        self._done = False

    def _next_packet(self) -> Any:
        import av

        if self._held is not None:
            packet, self._held = self._held, None
            return packet
        try:
            return next(self._packets)
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            log.warning("audio: the source's audio stream ends early (%s)", exc)
            return None

    def advance(self, until: float | None) -> None:
        """Mux the audio that starts before output time ``until`` seconds (None: all of it)."""
        if self._done:
            return
        limit = None if until is None else self._start + Fraction(until).limit_denominator(1 << 30)
        while True:
            packet = self._next_packet()
            if packet is None:
                self._done = True
                return
            if packet.pts is None or packet.time_base is None:
                if packet.size == 0:  # demuxer flush packet
                    if not self.copy:
                        self._encode(packet.decode())
                continue
            begin = packet.pts * packet.time_base
            if limit is not None and begin >= limit:
                self._held = packet
                return
            if self.copy:
                self._copy(packet, begin)
            else:
                self._encode(packet.decode())

    def _copy(self, packet: Any, begin: Fraction) -> None:
        if self._start and begin < self._start:
            return  # starts before the window (cut at packet boundaries)
        shift = round(self._start / packet.time_base)
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._out
        self._output.mux(packet)

    def _encode(self, frames: list) -> None:
        import av

        for frame in frames:
            if frame.pts is None:
                continue
            rate = frame.sample_rate
            first = frame.pts * frame.time_base
            data = frame.to_ndarray()
            planar = frame.format.is_planar
            channels = frame.layout.nb_channels
            samples = frame.samples
            lo = max(0, int(round((self._start - first) * rate)))
            hi = samples if self._end is None else min(samples, int(round((self._end - first) * rate)))
            if hi <= lo:
                continue
            if (lo, hi) != (0, samples):
                data = data[:, lo:hi] if planar else data[:, lo * channels : hi * channels]
            cut = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout.name
            )
            cut.sample_rate = rate
            cut.time_base = Fraction(1, rate)
            cut.pts = int(round((first - self._start) * rate)) + lo
            for packet in self._out.encode(cut):
                self._output.mux(packet)

    def finish(self, end: float | None) -> None:
        """Mux the rest of the window (output seconds ``end``; None: everything), flush, close the input."""
        try:
            if end is not None:
                self._end = self._start + Fraction(end).limit_denominator(1 << 30)
            self.advance(end)
            if not self.copy:
                for packet in self._out.encode(None):
                    self._output.mux(packet)
        finally:
            self.close()

    def close(self) -> None:
        self._input.close()
