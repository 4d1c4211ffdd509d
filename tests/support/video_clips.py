"""Synthetic clips for the video tests (written with PyAV) and an engine whose depth is a fixed function of
its input, so the frame index stamped into a frame can be read back from the depth video.

A stamped frame is ``STAMP_H x STAMP_W``: the top half holds ``BITS`` blocks, white where the bit of the
frame index is set; the bottom half is black on the left and white on the right (so every frame spans
the full range and any normalisation maps black -> 0 and white -> 1).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dav2_core.engines import EngineBase

STAMP_H, STAMP_W, BITS = 48, 128, 8
BLOCK = STAMP_W // BITS


def stamped_frame(index: int) -> np.ndarray:
    """[STAMP_H, STAMP_W, 3] uint8 with ``index`` (0..255) stamped as blocks."""
    frame = np.zeros((STAMP_H, STAMP_W, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[: STAMP_H // 2, bit * BLOCK : (bit + 1) * BLOCK] = 255
    frame[STAMP_H // 2 :, STAMP_W // 2 :] = 255
    return frame


def read_stamp(frame: np.ndarray) -> int:
    """The index stamped into a frame (grey or RGB, any brightness scale with black < white)."""
    grey = frame if frame.ndim == 2 else frame[..., 0]
    grey = grey.astype(np.float64)
    black, white = grey[3 * STAMP_H // 4, STAMP_W // 4], grey[3 * STAMP_H // 4, 3 * STAMP_W // 4]
    middle = (black + white) / 2
    bits = [grey[STAMP_H // 4, bit * BLOCK + BLOCK // 2] > middle for bit in range(BITS)]
    if white < black:  # inverted
        bits = [not b for b in bits]
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def write_clip(
    path: Path,
    frames: np.ndarray | list[np.ndarray],
    fps: int = 10,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: str | None = None,
    audio_seconds: float | None = None,
    options: dict | None = None,
) -> Path:
    """Write frames [N,H,W,3] uint8 with PyAV. ``pts`` in ``time_base`` units (default: one per frame);
    ``audio``: an audio codec ('aac', 'pcm_s16le') for a 440 Hz mono tone as long as the clip."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    with av.open(str(path), mode="w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if time_base is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        sound = container.add_stream(audio, rate=16000, layout="mono") if audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            seconds = audio_seconds if audio_seconds is not None else len(frames) / fps
            t = np.arange(int(16000 * seconds)) / 16000
            wave = 0.3 * np.sin(2 * np.pi * 440 * t)
            fmt = "s16" if audio.startswith("pcm_s16") else "fltp"
            data = (wave * 32767).astype(np.int16) if fmt == "s16" else wave.astype(np.float32)
            for start in range(0, data.size, 4000):
                chunk = av.AudioFrame.from_ndarray(data[None, start : start + 4000], format=fmt, layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def stamped_clip(path: Path, count: int, **kwargs) -> Path:
    """A lossless clip (ffv1/mkv by default) of ``count`` stamped frames 0..count-1."""
    return write_clip(path, [stamped_frame(i) for i in range(count)], **kwargs)


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """(frames as RGB uint8, presentation times in seconds) of a video's first video stream."""
    import av

    with av.open(str(path)) as container:
        pairs = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(video=0)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def streams(path: Path) -> dict[str, tuple[str, float | None]]:
    """{stream type: (codec, duration in seconds)} of a media file."""
    import av

    with av.open(str(path)) as container:
        out = {}
        for s in container.streams:
            seconds = float(s.duration * s.time_base) if s.duration is not None and s.time_base else None
            out.setdefault(s.type, (s.codec_context.name, seconds))
        return out


class BrightnessEngine(EngineBase):
    """A non-torch engine: depth = mean of the (ImageNet-normalised) channels, so bright = near.

    ``calls`` records the batch size of every forward pass.
    """

    backend = "fake"

    def __init__(self) -> None:
        self.device, self.input_dtype, self.source = torch.device("cpu"), torch.float32, "brightness.fake"
        self.checkpoint_info = None
        self.max_depth = None
        self.calls: list[int] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.shape[0])
        return images.mean(1) * 2.0 + 3.0

    def bytes_per_image(self, net_size, image_size) -> int:
        return 1 << 20

    def check_net_size(self, net_size) -> None:
        return None
