"""The CLI's video path: :func:`dav2_core.video.depth_video`, the same streaming core as the Video Depth node.

Per video: ``<stem>_depth.mp4`` (H.264, source timing, colourised or grey, audio passed through) and, with
``--frames`` / ``--npy``, ``<stem>_depth_frames/<frame>.png|.npy`` (+ ``frames.json``). One chunk of frames
is decoded, run and written before the next is read; the normalisation is chosen by ``--video-range``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import io
from ..video import FrameRange, VideoError, VideoOptions, depth_video
from .args import CliOptions
from .common import Report, info, warn


def video_options(options: CliOptions) -> VideoOptions:
    """The streaming core's options for this run (ValueError names a bad combination)."""
    sequence = tuple(fmt for fmt, wanted in (("png16", options.frames), ("npy", options.npy)) if wanted)
    return VideoOptions(
        estimate=options.estimate,
        range_mode=options.video_range,
        colormap=options.colormap if options.color else "gray",
        frames=FrameRange(options.start_frame, options.frame_count, options.frame_stride),
        sequence=sequence,
        vda_mode="streaming" if options.streaming else "offline",
    )


def process_video(model: Any, item: io.InputFile, options: CliOptions, out_dir: Path, report: Report) -> None:
    """Stream one video into its depth video; unusable inputs and skipped frames go into ``report``."""
    base = out_dir / item.out_stem
    bar = tqdm(total=None, unit="frame", desc=item.path.name, disable=options.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        with bar:
            result = depth_video(
                model,
                item.path,
                base.with_name(base.name + "_depth.mp4"),
                video_options(options),
                sequence_dir=base.with_name(base.name + "_depth_frames"),
                progress=progress,
                on_warning=warn,
            )
    except (VideoError, ValueError, RuntimeError) as exc:
        report.fail(item.path, str(exc))
        return
    if result.problem:
        report.lost_frames[item.path] = result.problem
    report.videos_done += 1
    passes = f", {result.passes} passes" + (" (depth cached on disk)" if result.cache == "disk" else "")
    info(
        options,
        f"{item.path}: {result.frames} frames -> {result.output}{passes if result.passes > 1 else ''}"
        + (f", audio {result.audio}" if result.audio else ""),
    )
