"""VIDEO -> depth VIDEO, streamed: decode a chunk, estimate it through :class:`~dav2_core.pipeline.DepthStream`,
encode it, repeat. Memory does not grow with the clip's length (see the package docstring)."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, BinaryIO
from collections.abc import Callable, Iterator

import torch

from ..colormaps import colorize_uint8
from ..depth import DepthMap
from ..engines import as_engine, describe, is_video_model
from ..inference import ProgressFn
from ..io import clean_stale_temps
from ..memory import release_host_memory
from ..normalize import RunningRange
from ..pipeline import CancelCheck, DepthResult, DepthStream, EstimateOptions, model_label
from ..variants import units_for
from .cache import DiskCache, cache_mode
from .options import VideoOptions, VideoReport, chunk_frames
from .sequence import SequenceWriter
from .sink import DepthVideoWriter, encoded_size, writable_temp
from .source import DecodeStats, FrameChunk, VideoError, VideoSource
from ..vda import OfflineVDA, OnlineVDA, check_vda_model, check_vda_options, vda_net_size

log = logging.getLogger(__name__)

#: Frames a header count estimated from the duration may be off by before missing frames count as lost
#: (at least this, or 2 % of the clip).
ESTIMATE_SLACK = 2

#: How to read depth back from the normalised 16-bit PNGs (stored in each file's metadata).
PNG16_DECODE = (
    "v = pixel / 65535 (1 - v if invert); nearness = lo + v * (hi - lo) with [lo, hi] = "
    "nearness_range; relative depth = nearness, metric depth in metres = -nearness"
)


class _Run:
    """One depth_video call: the state shared by its passes."""

    def __init__(
        self,
        model: Any,
        source: VideoSource,
        output: Path,
        options: VideoOptions,
        sequence_dir: Path | None,
        progress: ProgressFn | None,
        check_cancel: CancelCheck | None,
        on_warning: Callable[[str], None] | None,
        work_device: Any,
        model_name: str | None,
    ) -> None:
        self.model, self.src, self.output, self.options = model, source, output, options
        self.progress, self.check_cancel, self.on_warning = progress, check_cancel, on_warning
        self.work_device, self.model_name = work_device, model_name
        self.sequence_dir = sequence_dir
        self.writer: DepthVideoWriter | None = None
        self.sequence: SequenceWriter | None = None
        self.done = 0
        self.total = 0
        self.report = VideoReport(output=output)
        self.kind = describe(model)[0]
        self._last_pts = 0

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)
        (self.on_warning or log.warning)(message)

    def stream(self, estimate: EstimateOptions, **range_args: Any) -> DepthStream:
        return DepthStream(
            self.model,
            estimate,
            output_device=None,
            work_device=self.work_device,
            model_name=self.model_name,
            **range_args,
        )

    def step(self, frames: int) -> None:
        release_host_memory()  # one chunk's buffers are free now: keep the resident size flat
        self.done += frames
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))
        if self.check_cancel is not None:
            self.check_cancel()

    def decode(self, chunk: int, stats: DecodeStats, warn_skips: bool) -> Iterator[FrameChunk]:
        on_skip = (
            (lambda index, why: self.warn(f"{self.src.name}: frame {index} {why}; skipped")) if warn_skips else None
        )
        return self.src.chunks(self.options.frames, chunk, stats, on_skip)

    def depths(
        self, stream: DepthStream, chunk: int, stats: DecodeStats, warn_skips: bool
    ) -> Iterator[tuple[list[int], list[int], DepthMap]]:
        """Decode and estimate: (indices, pts, depth) per chunk, in frame order. A Video Depth Anything model
        runs its windows (or its online mode) here: its chunks follow the windows, not the decoded chunks."""
        parts = self.decode(chunk, stats, warn_skips)
        if not is_video_model(self.model):
            for part in parts:
                yield (
                    part.indices,
                    part.pts,
                    stream.depth(torch.from_numpy(part.frames), check_cancel=self.check_cancel),
                )
            return
        runner_type = OnlineVDA if self.options.vda_mode == "streaming" else OfflineVDA
        runner = runner_type(self.model, stream.options.input_size, None, self.check_cancel)
        pending: collections.deque[tuple[int, int]] = collections.deque()
        label = model_label(self.model, self.model_name)

        def ready(values: torch.Tensor) -> tuple[list[int], list[int], DepthMap]:
            done = [pending.popleft() for _ in range(values.shape[0])]
            return [i for i, _ in done], [p for _, p in done], DepthMap(values, kind=self.kind, model=label)

        for part in parts:
            pending.extend(zip(part.indices, part.pts))
            values = runner.push(torch.from_numpy(part.frames))
            if values.shape[0]:
                yield ready(values)
        if runner.frames_in:
            values = runner.finish()
            if values.shape[0]:
                yield ready(values)

    def emit(self, indices: list[int], pts: list[int], result: DepthResult) -> None:
        """Encode a normalised chunk (and its png16 frames)."""
        if self.writer is None:
            self.writer = self._open_writer(pts[0])
        norm = result.normalized
        grey = None
        if self.options.colormap == "gray":  # the grey colormap is the identity ramp: no lookup needed
            grey = norm.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
        for i, stamp in enumerate(pts):
            frame = (
                grey[i] if grey is not None else colorize_uint8(norm[i : i + 1], self.options.colormap)[0].cpu().numpy()
            )
            self.writer.write(frame, stamp)
        if self.sequence is not None:
            times = [float((p - self.writer.start_pts) * self.src.time_base) for p in pts]
            self.sequence.write_normalized(indices, times, norm, *result.bounds)

    def _open_writer(self, start_pts: int) -> DepthVideoWriter:
        meta = {"dav2_depth": self.metadata()}
        writer = DepthVideoWriter(
            self.output,
            self.src,
            start_pts=start_pts,
            stride=self.options.frames.stride,
            audio=self.options.audio,
            metadata=meta,
            crf=self.options.crf,
        )
        self.report.audio = writer.audio_mode
        return writer

    def metadata(self) -> dict[str, Any]:
        o = self.options
        return {
            "kind": self.kind,
            "units": units_for(self.kind),
            "model": model_label(self.model, self.model_name),
            "source": self.src.name,
            "normalization": o.range_mode,
            "statistic": o.estimate.normalization,
            "invert": o.estimate.invert,
            "colormap": o.colormap,
            "near": "black" if o.estimate.invert else "white",
            "clip_range": self.report.clip_range,
            "frame_range": {"start": o.frames.start, "count": o.frames.count, "stride": o.frames.stride},
        }

    def check_stats(self, stats: DecodeStats) -> None:
        """Warnings for skipped frames and early ends; VideoError when nothing was decoded."""
        src, fr = self.src, self.options.frames
        if stats.decoded == 0:
            if fr.start > 0 and stats.last_index < fr.start:
                raise VideoError(
                    f"{src.name}: the frame range starts at frame {fr.start}, but the video has only "
                    f"{stats.last_index + 1} frames; choose a start below {stats.last_index + 1}"
                )
            why = f" ({stats.ended_early})" if stats.ended_early else ""
            raise VideoError(f"{src.name}: none of the selected frames could be decoded{why}")
        if stats.skipped:
            listed = ", ".join(map(str, stats.skipped[:20])) + (" ..." if len(stats.skipped) > 20 else "")
            self.warn(
                f"{src.name}: {stats.decoded} frames read, {len(stats.skipped)} unreadable frames skipped "
                f"({listed}); the depth video keeps the source timing (the previous depth frame stays on "
                "screen in their place)"
            )
        if stats.ended_early:
            self.warn(f"{src.name}: decoding stopped early: {stats.ended_early}; {stats.decoded} frames were processed")
        elif not stats.range_done and src.frame_count and stats.last_index + 1 < src.frame_count:
            self.warn(
                f"{src.name}: the video ends after {stats.last_index + 1} frames, but its header says "
                f"{src.frame_count} (a truncated file, or an estimated count); {stats.decoded} frames "
                "were processed"
            )
        if fr.count and not stats.range_done and not stats.ended_early:
            self.warn(
                f"{src.name}: the frame range asks for {fr.count} frames from frame {fr.start}, the video has "
                f"{stats.decoded + len(stats.skipped)} of them; {stats.decoded} frames were processed"
            )
        self._count_lost(stats)
        if stats.resized:
            self.warn(
                f"{src.name}: {stats.resized} frames had another size than the first and were scaled to "
                f"{src.width}x{src.height}"
            )

    def _count_lost(self, stats: DecodeStats) -> None:
        """``report.lost`` / ``report.damaged``: skipped frames, plus the selected frames the header promised
        that never came (a header count estimated from the duration gets ``ESTIMATE_SLACK`` frames of slack)."""
        src, report = self.src, self.report
        missing = 0
        expected = self.options.frames.expected(src.frame_count) if src.frame_count else None
        if expected is not None and not stats.range_done:
            shortfall = expected - stats.decoded - len(stats.skipped)
            slack = 0 if src.frame_count_exact or stats.ended_early else max(ESTIMATE_SLACK, expected // 50)
            missing = shortfall if shortfall > slack else 0
        report.lost = len(stats.skipped) + missing
        report.damaged = bool(report.lost or stats.ended_early)

    # ------------------------------------------------------------------ passes
    def run(self) -> VideoReport:
        src, o, report = self.src, self.options, self.report
        est = o.estimate
        chunk = chunk_frames(self.model, est, src.height, src.width)
        est = est.with_(chunk_size=chunk)
        report.chunk, report.source_frames = chunk, src.frame_count
        report.selected = o.frames.expected(src.frame_count)
        report.size, report.encoded_size = (src.width, src.height), encoded_size(src.width, src.height)
        report.fps = float(src.rate / o.frames.stride)
        report.passes = 2 if o.range_mode == "clip" else 1
        self.total = (report.selected or 0) * report.passes
        if o.sequence:
            folder = self.sequence_dir or self.output.with_name(self.output.stem + "_frames")
            keep = ("kind", "units", "model", "source", "normalization", "statistic", "invert", "near")
            meta = {k: v for k, v in self.metadata().items() if k in keep}
            self.sequence = SequenceWriter(folder, tuple(o.sequence), {**meta, "png16": PNG16_DECODE})
        if o.range_mode == "clip":
            self._two_pass(est, chunk)
        else:
            self._one_pass(est, chunk)
        end_pts = None
        if o.frames.count:
            end_pts = self._last_pts + src.frame_step * o.frames.stride
        self.writer.commit(end_pts)
        report.frames = self.writer.frames
        if self.sequence is not None:
            report.sequence = self.sequence.commit({"fps": report.fps, "clip_range": report.clip_range})
            report.sequence_files = self.sequence.files
        return report

    def _one_pass(self, est: EstimateOptions, chunk: int) -> None:
        stream = self.stream(est, range_mode=self.options.range_mode)
        stats = DecodeStats()
        for indices, pts, depth in self.depths(stream, chunk, stats, warn_skips=True):
            if self.sequence is not None:
                self.sequence.write_raw(indices, depth)
            self.emit(indices, pts, stream.normalize(depth))
            self._last_pts = pts[-1]
            self.step(len(indices))
        self.check_stats(stats)
        self.report.skipped = stats.skipped

    def _two_pass(self, est: EstimateOptions, chunk: int) -> None:
        src = self.src
        mode, dtype = cache_mode(self.options, self.output.parent, self.report.selected, src.height, src.width)
        self.report.cache = mode
        with contextlib.ExitStack() as stack:
            cache = None
            if mode == "disk":
                cache = DiskCache(self.output.parent, dtype)
                stack.callback(cache.close)
            first = self.stream(est, range_mode="running")
            stats = DecodeStats()
            timeline: list[tuple[list[int], list[int]]] = []
            clip = RunningRange(first.statistic)  # the union of every frame's range: the clip range
            for indices, pts, depth in self.depths(first, chunk, stats, warn_skips=True):
                clip.update(depth)
                if self.sequence is not None:
                    self.sequence.write_raw(indices, depth)
                if cache is not None:
                    cache.write(depth.values)
                timeline.append((indices, pts))
                self.step(len(indices))
            self.check_stats(stats)
            self.report.skipped = stats.skipped
            self.total = self.done * 2  # now the frame count is known
            self.report.clip_range = (clip.lo, clip.hi)
            second = self.stream(est, range_mode="fixed", fixed_range=(clip.lo, clip.hi))
            if cache is not None:
                device, label = as_engine(self.model).device, model_label(self.model, self.model_name)
                counts = [len(indices) for indices, _ in timeline]
                for (indices, pts), values in zip(timeline, cache.chunks(counts, (src.height, src.width))):
                    depth = DepthMap(values.to(device), kind=self.kind, model=label)
                    self.emit(indices, pts, second.normalize(depth))
                    self.step(len(indices))
            else:
                again, first_pass = DecodeStats(), [i for indices, _ in timeline for i in indices]
                position = 0
                for indices, pts, depth in self.depths(second, chunk, again, warn_skips=False):
                    expected = first_pass[position : position + len(indices)]
                    if indices != expected:
                        raise VideoError(
                            f"{src.name}: the second pass decoded other frames than the first "
                            f"({indices[:3]}... vs {expected[:3]}...); did the file change?"
                        )
                    position += len(indices)
                    self.emit(indices, pts, second.normalize(depth))
                    self.step(len(indices))
            self._last_pts = timeline[-1][1][-1]


def depth_video(
    model: Any,
    source: str | os.PathLike[str] | BinaryIO,
    output: str | os.PathLike[str],
    options: VideoOptions = VideoOptions(),
    *,
    sequence_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    progress: ProgressFn | None = None,
    check_cancel: CancelCheck | None = None,
    on_warning: Callable[[str], None] | None = None,
    work_device: torch.device | str | None = None,
    model_name: str | None = None,
) -> VideoReport:
    """Stream the video ``source`` (a path or a binary file object) into the depth video ``output`` (.mp4).

    Decodes chunks of frames, runs them through :class:`DepthStream` and encodes them at once, so memory
    stays flat whatever the clip's length. With ``options.sequence`` the frames are also written as files
    into ``sequence_dir`` (default ``<output stem>_frames``). ``progress(done, total)`` counts frames over
    all passes; ``check_cancel()`` runs after every chunk and may raise to cancel: then no output file,
    no partial sequence and no cache is left behind. Warnings (skipped frames, truncation) go to
    ``on_warning`` (default: logging) and into the report. Raises VideoError for unusable input or
    output (no video stream, frame range past the end, unwritable folder) and ValueError for an
    impossible network size, before anything is written.

    A Video Depth Anything model runs the official windowed inference (``options.vda_mode`` 'offline') or its
    online mode ('streaming') instead of per-chunk estimates (:mod:`.vda`); the rest (range, sequence,
    audio, timing, cancel) is the same. Its windows hold ~32 frames of network input whatever the clip length.
    """
    start = time.perf_counter()
    output = Path(output)
    src = VideoSource(source, name)
    fr = options.frames
    if src.frame_count_exact and fr.start >= src.frame_count:
        raise VideoError(
            f"{src.name}: the frame range starts at frame {fr.start}, but the video has only "
            f"{src.frame_count} frames; choose a start below {src.frame_count}"
        )
    if is_video_model(model):
        check_vda_options(options.estimate)
        as_engine(model).check_net_size(vda_net_size(src.height, src.width, options.estimate.input_size))
    else:
        if options.vda_mode == "streaming":
            check_vda_model(model)  # the online mode is Video Depth Anything's: refuse a per-image model
        as_engine(model).check_net_size(options.estimate.work_net_size(src.height, src.width))  # TTA views too
    writable_temp(output, ".check").unlink()  # an unwritable folder fails here, before any decoding
    clean_stale_temps(output.parent)  # partial videos of runs that were killed (kill -9, SIGTERM)
    if output.exists() and output.is_dir():
        raise VideoError(f"{output} is a folder; give a file name for the depth video (e.g. depth.mp4)")
    run = _Run(
        model,
        src,
        output,
        options,
        Path(sequence_dir) if sequence_dir else None,
        progress,
        check_cancel,
        on_warning,
        work_device,
        model_name,
    )
    try:
        report = run.run()
    except BaseException:
        if run.writer is not None:
            run.writer.discard()
        if run.sequence is not None:
            run.sequence.discard()
        raise
    report.seconds = time.perf_counter() - start
    return report
