"""The CLI's video path: stream frames chunk by chunk through the shared :class:`~dav2_core.pipeline.DepthStream`.

Per video: ``<stem>_depth.mp4`` (source fps, colourised or grey) and, with ``--frames`` / ``--npy``,
``<stem>_depth_frames/<frame>.png|.npy``. One chunk of frames is decoded, run and written before the next
is read; the normalisation range is the running union of the frames' ranges (no flicker).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .. import io
from ..pipeline import DepthStream
from .args import CliOptions
from .common import Report, batch_size, colour, info, warn

DEFAULT_FPS = 30.0


def process_video(model: Any, item: io.InputFile, options: CliOptions, out_dir: Path, report: Report) -> None:
    """Stream one video: read a chunk, predict, write, repeat. Corrupt frames are skipped and counted.

    A skipped frame's slot in the output video repeats the previous depth frame (the first good one
    for leading bad frames), so the depth video stays frame-aligned with the source; the frames
    folder simply has no file for it.
    """
    base = out_dir / item.out_stem
    frames_dir = base.with_name(base.name + "_depth_frames")
    try:
        reader = io.VideoFrameReader(item.path)
    except io.InputError as exc:
        report.fail(item.path, str(exc))
        return
    with reader:
        if reader.height < 1 or reader.width < 1:
            report.fail(item.path, "OpenCV reports no frame size for this video")
            return
        try:
            batch = batch_size(model, options, reader.height, reader.width)
        except ValueError as exc:
            report.fail(item.path, str(exc))
            return
        fps = reader.fps
        if not (math.isfinite(fps) and fps > 0):
            warn(f"{item.path}: the video has no frame rate; writing at {DEFAULT_FPS:g} fps")
            fps = DEFAULT_FPS
        stream = DepthStream(model, options.estimate.with_(chunk_size=batch), output_device=None)
        try:
            writer = io.AtomicVideoWriter(base.with_name(base.name + "_depth.mp4"), fps, (reader.width, reader.height))
        except ValueError as exc:
            report.fail(item.path, str(exc))
            return
        last_index, previous = -1, None

        def on_skip(index: int, why: str) -> None:
            warn(f"{item.path}: frame {index} {why}; skipped")

        with writer, tqdm(total=reader.stats.expected or None, unit="frame", desc=item.path.name,
                          disable=options.quiet, file=sys.stderr) as bar:
            for indices, frames in reader.chunks(batch, on_skip=on_skip):
                result = stream(torch.from_numpy(frames))
                colours = colour(result.normalized, options)
                norm = result.normalized.cpu().numpy() if options.frames else None
                raw = result.depth.values.cpu().numpy() if options.npy else None
                for i, index in enumerate(indices):
                    for _ in range(index - last_index - 1):  # slots of skipped frames keep the timing
                        writer.write(colours[i] if previous is None else previous)
                    writer.write(colours[i])
                    previous, last_index = colours[i], index
                    if options.frames:
                        io.write_png(frames_dir / f"{index:06d}.png", io.to_uint16(norm[i]))
                    if options.npy:
                        io.write_npy(frames_dir / f"{index:06d}.npy", raw[i])
                bar.update(reader.stats.read + len(reader.stats.skipped) - bar.n)
            stats = reader.stats
            if stats.read == 0:
                writer.discard()
                report.fail(item.path, "no frame could be decoded")
                return
    if stats.skipped:
        report.skipped_frames[item.path] = len(stats.skipped)
        listed = ", ".join(map(str, stats.skipped[:20])) + (" ..." if len(stats.skipped) > 20 else "")
        warn(f"{item.path}: {stats.read} frames read, {len(stats.skipped)} unreadable frames skipped ({listed}); "
             "their slots in the depth video repeat the previous depth frame")
    if stats.unreadable_tail:  # container counts can be estimates (mkv, webm): a note, not a failure
        warn(f"{item.path}: decoding ended after frame {last_index}, the file header says "
             f"{stats.expected} frames (truncated file, or an estimated count)")
    report.videos_done += 1
    info(options, f"{item.path}: {stats.read} frames -> {writer.path}")
