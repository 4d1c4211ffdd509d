"""Live depth: a camera, a stream URL or a video file -> depth frames as fast as the model runs, latency bounded.

Sources (:func:`open_source`): a camera index (``0``) or device path (``/dev/video0``) through OpenCV; a
stream URL (rtsp, rtmp, http(s), udp, tcp, srt) through PyAV with open and read timeouts; a video file
through PyAV, either played at its own frame rate (``realtime``: a stand-in for a camera, and how live mode
is tested) or frame by frame as fast as the model goes (no frame dropped).

Latest frame wins: a capture thread reads the source continuously into a one-frame mailbox
(:class:`LatestFrame`); a frame that arrives while the model is still busy replaces the waiting one, which
is counted as dropped. The model therefore always works on the newest frame and the end-to-end latency
(capture -> depth written) stays below about two model steps however long the run, instead of growing with
a queue. Depth goes through the one estimate path (:class:`~dav2_core.pipeline.DepthStream`) with a running
normalisation range (it only widens, so the picture does not flicker) and any backend/precision.

Outputs (:class:`LiveOutputs`, any combination): the MJPEG stream on 127.0.0.1 (:mod:`.mjpeg`), an H.264
video file (the frames at their capture times, written under a temporary name and moved into place when the
run stops) and a folder of per-frame depth files (``SEQUENCE_FORMATS``; staged, renamed when the run stops).
Every way a run stops - the source ends, a stall (no frame for ``stall_timeout`` s), a read error, the
duration limit, Ctrl-C - finishes the files, so they are complete and playable; only an error before the first
frame leaves nothing. :class:`LiveReport` holds the achieved fps, latency percentiles, dropped frames, the
model step time and the resident memory over the run.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..colormaps import COLORMAPS, colorize_uint8
from ..engines import as_engine
from ..memory import release_host_memory
from ..pipeline import DepthStream, EstimateOptions, model_label
from ..variants import units_for
from .mjpeg import MjpegServer
from .sequence import SequenceWriter, check_formats
from .sink import DepthVideoWriter
from .source import DecodeStats, FrameRange, VideoError, VideoSource

log = logging.getLogger(__name__)

#: URL schemes read as network streams (anything else with "://" is refused: no file:// or concat: tricks).
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
DEFAULT_OPEN_TIMEOUT = 10.0
DEFAULT_STALL_TIMEOUT = 10.0
#: Seconds between status lines, and frames between host-memory trims.
STATUS_EVERY = 1.0
TRIM_EVERY = 50


class LiveError(VideoError):
    """A live source or output that cannot be used (no such camera, a URL that does not answer ...)."""


@dataclass
class Frame:
    """A captured frame: RGB uint8 [H,W,3], when it was captured (``time.perf_counter``), its source number."""

    image: np.ndarray
    captured: float
    number: int


# ------------------------------------------------------------------------------------------ sources
class FrameReader:
    """A source of frames: iterate for (image, media time s or None); ``close()`` releases it."""

    name = "source"
    width = 0
    height = 0
    rate: float | None = None
    live = True  # frames arrive on their own clock (camera, stream): latest frame wins

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device, connection or file."""


class CameraReader(FrameReader):
    """A camera through OpenCV: an index (0, 1 ...) or a device path (/dev/video0)."""

    def __init__(self, spec: int | str) -> None:
        import cv2

        self.name = f"camera {spec}"
        self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            cameras = sorted(glob.glob("/dev/video*"))
            known = f"video devices here: {', '.join(cameras)}" if cameras else "no video devices were found here"
            raise LiveError(
                f"{self.name} cannot be opened (no such camera, no permission, or another program uses it); {known}"
            )
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # no driver-side queue: latest frame wins there too
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise LiveError(f"{self.name} opened but delivers no frames; is it in use by another program?")
        self.height, self.width = first.shape[:2]
        self.rate = float(self._cap.get(cv2.CAP_PROP_FPS)) or None
        self._first: np.ndarray | None = first

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        import cv2

        while True:
            frame, self._first = (self._first, None) if self._first is not None else (self._cap.read()[1], None)
            if frame is None:
                return
            if frame.shape[:2] != (self.height, self.width):
                frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), None

    def close(self) -> None:
        self._cap.release()


class StreamReader(FrameReader):
    """A network stream through PyAV, opened with ``open_timeout`` and read with ``read_timeout`` seconds."""

    def __init__(self, url: str, open_timeout: float, read_timeout: float) -> None:
        import av

        self.name = _redact(url)
        try:
            self._container = av.open(url, mode="r", timeout=(open_timeout, read_timeout))
        except av.error.ExitError:
            raise LiveError(
                f"{self.name} did not answer within {open_timeout:g} s; check the URL and the network"
            ) from None
        except (av.error.FFmpegError, OSError) as exc:
            raise LiveError(f"{self.name} cannot be opened as a stream ({_reason(exc)}); check the URL") from None
        if not self._container.streams.video:
            self._container.close()
            raise LiveError(f"{self.name} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate
        self.rate = float(rate) if rate else None
        self.error: str | None = None

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        import av

        try:
            for frame in self._container.decode(video=0):
                if (frame.width, frame.height) != (self.width, self.height):
                    yield frame.to_ndarray(format="rgb24", width=self.width, height=self.height), None
                else:
                    yield frame.to_ndarray(format="rgb24"), None
        except (av.error.FFmpegError, OSError) as exc:
            self.error = f"the stream broke off ({_reason(exc)})"

    def close(self) -> None:
        self._container.close()


class FileReader(FrameReader):
    """A video file through :class:`~dav2_core.video.source.VideoSource`; ``realtime`` plays it at its own rate."""

    def __init__(self, path: str, realtime: bool) -> None:
        self._source = VideoSource(path)
        self.name = self._source.name
        self.width, self.height = self._source.width, self._source.height
        self.rate = float(self._source.rate)
        self.live = realtime
        self.stats = DecodeStats()

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        base = self._source.time_base
        first = None
        for _, pts, rgb in self._source.frames(FrameRange(), self.stats):
            first = pts if first is None else first
            yield rgb, float((pts - first) * base)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _redact(url: str) -> str:
    """A URL without its password (user:password@host -> user:***@host) for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.partition("@")
    if at and ":" in creds and "/" not in creds:
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url


def open_source(
    spec: str,
    realtime: bool = False,
    open_timeout: float = DEFAULT_OPEN_TIMEOUT,
    read_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> FrameReader:
    """The reader for SOURCE: a camera index / device path, a stream URL or a video file (LiveError if unusable)."""
    spec = str(spec).strip()
    if not spec:
        raise LiveError("no source given: a camera index (0), a device (/dev/video0), a stream URL or a video file")
    if spec.isdigit():
        return CameraReader(int(spec))
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise LiveError(
                f"unsupported stream type {scheme}://; use one of {', '.join(s + '://' for s in STREAM_SCHEMES)}, "
                "a camera index or a video file"
            )
        return StreamReader(spec, open_timeout, read_timeout)
    if spec.startswith("/dev/"):
        if not os.path.exists(spec):
            raise LiveError(
                f"{spec}: no such device; video devices here: {', '.join(glob.glob('/dev/video*')) or 'none'}"
            )
        return CameraReader(spec)
    if not Path(spec).is_file():
        raise LiveError(f"{spec}: no such video file (give a file, a camera index such as 0, or a stream URL)")
    return FileReader(spec, realtime)


# ------------------------------------------------------------------------------------------ capture
class LatestFrame:
    """A one-frame mailbox between the capture thread and the model: ``put`` replaces an unread frame
    (counted in :attr:`dropped`) or, with ``wait=True``, waits until it was taken; ``get`` waits for a new one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._ended = False
        self.dropped = 0
        self.received = 0
        self.error: str | None = None

    def put(self, frame: Frame, wait: bool = False, stop: threading.Event | None = None) -> None:
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or (stop is not None and stop.is_set()))
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.received += 1
            self._cond.notify_all()

    def end(self, error: str | None = None) -> None:
        """No more frames will come (``error``: why, when it was not the source's normal end)."""
        with self._cond:
            self._ended = True
            self.error = self.error or error
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        """The newest unread frame; None when the source ended. TimeoutError after ``timeout`` s without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._ended, timeout):
                raise TimeoutError
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame


class CaptureThread(threading.Thread):
    """Reads ``reader`` into ``mailbox``: live sources overwrite (latest wins), a file played as fast as the
    model goes waits for each frame to be taken; ``realtime`` files are paced by their timestamps."""

    def __init__(self, reader: FrameReader, mailbox: LatestFrame, realtime: bool) -> None:
        super().__init__(name="dav2-capture", daemon=True)
        self.reader, self.mailbox, self.realtime = reader, mailbox, realtime
        self.stop = threading.Event()

    def run(self) -> None:
        start = None
        error = None
        try:
            for number, (image, media_time) in enumerate(self.reader):
                if self.stop.is_set():
                    break
                now = time.perf_counter()
                if self.realtime and media_time is not None:
                    start = now - media_time if start is None else start
                    delay = start + media_time - now
                    if delay > 0 and self.stop.wait(delay):
                        break
                self.mailbox.put(Frame(image, time.perf_counter(), number), wait=not self.reader.live, stop=self.stop)
            error = getattr(self.reader, "error", None)
        except Exception as exc:  # noqa: BLE001 - any reader failure ends the run with its reason
            error = f"reading stopped: {_reason(exc)}"
        self.mailbox.end(error)


# ------------------------------------------------------------------------------------------ outputs
class _Clock:
    """What DepthVideoWriter needs of a source, for frames stamped in milliseconds of wall-clock time."""

    time_base = Fraction(1, 1000)
    audio_codec = None

    def __init__(self, width: int, height: int, rate: float | None) -> None:
        self.width, self.height = width, height
        self.rate = Fraction(rate or 30).limit_denominator(1001)


class LiveOutputs:
    """Where each depth frame goes: the MJPEG server, a video file, a per-frame folder (each optional)."""

    def __init__(
        self,
        width: int,
        height: int,
        rate: float | None,
        colormap: str,
        server: MjpegServer | None = None,
        video: Path | None = None,
        frames_dir: Path | None = None,
        frame_formats: tuple[str, ...] = ("npy",),
        meta: dict[str, Any] | None = None,
        jpeg_quality: int = 85,
    ) -> None:
        if colormap not in COLORMAPS:
            raise ValueError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
        self.colormap, self.server, self.quality = colormap, server, jpeg_quality
        self.video_path, self.meta = video, dict(meta or {})
        self._clock = _Clock(width, height, rate)
        self.writer: DepthVideoWriter | None = None
        self.sequence: SequenceWriter | None = None
        self._start: float | None = None
        self._last_ms = -1
        self.frames = 0
        if frames_dir is not None:
            check_formats(frame_formats)
            self.sequence = SequenceWriter(frames_dir, frame_formats, self.meta)

    def picture(self, norm01: torch.Tensor) -> np.ndarray:
        """[1,H,W] 0..1 -> [H,W] grey or [H,W,3] RGB uint8."""
        if self.colormap == "gray":
            return norm01[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
        return colorize_uint8(norm01[:1], self.colormap)[0].cpu().numpy()

    def write(self, frame: Frame, result: Any) -> None:
        """One normalised DepthResult [1,H,W] of ``frame`` to every output."""
        picture = self.picture(result.normalized)
        if self.server is not None:
            import cv2

            bgr = picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self.server.publish(jpeg.tobytes())
        self._start = frame.captured if self._start is None else self._start
        ms = max(self._last_ms + 1, round((frame.captured - self._start) * 1000))
        if self.video_path is not None:
            if self.writer is None:
                self.writer = DepthVideoWriter(
                    self.video_path,
                    self._clock,
                    audio=False,
                    metadata={"dav2_depth": self.meta},  # type: ignore[arg-type]
                )
            self.writer.write(picture, ms)
        if self.sequence is not None:
            self.sequence.write_raw([self.frames], result.depth)
            lo, hi = result.bounds if result.bounds is not None else (torch.zeros(1), torch.ones(1))
            self.sequence.write_normalized([self.frames], [ms / 1000.0], result.normalized, lo, hi)
        self._last_ms = ms
        self.frames += 1

    def finish(self, summary: dict[str, Any]) -> dict[str, Path]:
        """Complete every file (called however the run stopped); returns what was written."""
        written: dict[str, Path] = {}
        if self.writer is not None:
            written["video"] = self.writer.commit()
            self.writer = None
        if self.sequence is not None:
            if self.frames:
                written["frames"] = self.sequence.commit(summary)
            else:
                self.sequence.discard()
            self.sequence = None
        return written

    def discard(self) -> None:
        """Drop partial files (only when the run failed before it could finish them)."""
        if self.writer is not None:
            self.writer.discard()
        if self.sequence is not None:
            self.sequence.discard()


# ------------------------------------------------------------------------------------------ the run
@dataclass
class LiveReport:
    """What a live run did. Times in milliseconds unless named otherwise; memory in MiB (resident set)."""

    source: str = ""
    frames: int = 0  # depth frames written
    received: int = 0  # frames the source delivered
    dropped: int = 0  # frames replaced before the model took them
    seconds: float = 0.0
    fps: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_max_ms: float = 0.0
    step_p50_ms: float = 0.0  # the model step (estimate + normalise), per frame
    step_p95_ms: float = 0.0
    latency_p95_first_ms: float = 0.0  # p95 over the first and the last third of the run (growth check)
    latency_p95_last_ms: float = 0.0
    rss_start_mib: float = 0.0  # after the warm-up, before the first frame
    rss_end_mib: float = 0.0
    rss_max_mib: float = 0.0
    rss_first_third_mib: float = 0.0  # the highest resident size sampled (each second) in the first / last
    rss_last_third_mib: float = 0.0  # third of the run: flat memory = about equal
    stopped: str = ""  # ended | stalled | error | duration | interrupted
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class LiveOptions:
    """How the live run behaves: estimate options, the picture, pacing and how long to wait for frames."""

    estimate: EstimateOptions = field(default_factory=EstimateOptions)
    colormap: str = "gray"
    realtime: bool = False
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    duration: float | None = None  # seconds; None = until the source ends or Ctrl-C

    def __post_init__(self) -> None:
        if self.colormap not in COLORMAPS:
            raise ValueError(f"unknown colormap {self.colormap!r}; choose one of {', '.join(COLORMAPS)}")
        if not (isinstance(self.stall_timeout, (int, float)) and self.stall_timeout > 0):
            raise ValueError(f"stall_timeout must be a number of seconds > 0, got {self.stall_timeout!r}")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be a number of seconds > 0, got {self.duration!r}")
        if self.estimate.normalization == "raw":
            raise ValueError("live depth needs a 0..1 picture: normalization min_max or percentile, not raw")


def live_depth(
    model: Any,
    reader: FrameReader,
    outputs: LiveOutputs,
    options: LiveOptions,
    *,
    status: Callable[[LiveReport, bool], None] | None = None,
    model_name: str | None = None,
) -> LiveReport:
    """Run live depth from ``reader`` into ``outputs`` until the source ends, stalls, fails, the duration is
    reached or KeyboardInterrupt (Ctrl-C); the outputs are finished in every case and the report says why it
    stopped. ``status(report, final)`` is called about every second and once at the end."""
    est = options.estimate
    try:
        as_engine(model).check_net_size(est.work_net_size(reader.height, reader.width))
        warm = DepthStream(model, est, range_mode="running", output_device="cpu", model_name=model_name)
        warm(torch.zeros((1, reader.height, reader.width, 3), dtype=torch.uint8))  # first-call costs, not timed
    except BaseException:  # nothing was written: no partial files, the source released
        outputs.discard()
        reader.close()
        raise
    stream = DepthStream(model, est, range_mode="running", output_device="cpu", model_name=model_name)
    report = LiveReport(source=reader.name, rss_start_mib=rss_mib())
    mailbox = LatestFrame()
    capture = CaptureThread(reader, mailbox, options.realtime)
    latencies: list[float] = []
    steps: list[float] = []
    rss: list[tuple[float, float]] = [(0.0, report.rss_start_mib)]  # (seconds into the run, MiB)
    start = time.perf_counter()
    next_status = start + STATUS_EVERY
    capture.start()
    finished = False
    try:
        while True:
            now = time.perf_counter()
            if options.duration is not None and now - start >= options.duration:
                report.stopped, report.reason = "duration", f"ran for {options.duration:g} s"
                break
            wait = options.stall_timeout
            if options.duration is not None:
                wait = min(wait, max(0.01, start + options.duration - now))
            try:
                frame = mailbox.get(wait)
            except TimeoutError:
                if options.duration is not None and time.perf_counter() - start >= options.duration:
                    continue
                report.stopped = "stalled"
                report.reason = f"no frame from {reader.name} for {options.stall_timeout:g} s (the stream stalled)"
                break
            if frame is None:
                report.stopped = "error" if mailbox.error else "ended"
                report.reason = mailbox.error or f"{reader.name} ended"
                break
            began = time.perf_counter()
            result = stream(torch.from_numpy(frame.image)[None])
            steps.append((time.perf_counter() - began) * 1000)
            outputs.write(frame, result)
            done = time.perf_counter()
            latencies.append((done - frame.captured) * 1000)
            if len(latencies) % TRIM_EVERY == 0:
                release_host_memory()
            if done >= next_status:
                rss.append((done - start, rss_mib()))
                _fill(report, latencies, steps, mailbox, done - start, rss)
                if status is not None:
                    status(report, False)
                next_status = done + STATUS_EVERY
    except KeyboardInterrupt:
        report.stopped, report.reason = "interrupted", "stopped by Ctrl-C"
    finally:
        capture.stop.set()
        capture.mailbox.end()
        try:
            elapsed = time.perf_counter() - start
            rss.append((elapsed, rss_mib()))
            _fill(report, latencies, steps, mailbox, elapsed, rss)
            report.outputs = {k: str(v) for k, v in outputs.finish(report.as_dict()).items()}
            finished = True
        finally:
            if not finished:
                outputs.discard()
            capture.join(timeout=2)
            if not capture.is_alive():  # a reader stuck in a blocking read is left to its daemon thread
                reader.close()
    release_host_memory()
    report.rss_end_mib = rss_mib()
    report.rss_max_mib = max(report.rss_max_mib, report.rss_end_mib)
    if status is not None:
        status(report, True)
    return report


def _fill(
    report: LiveReport,
    latencies: list[float],
    steps: list[float],
    mailbox: LatestFrame,
    seconds: float,
    rss: list[tuple[float, float]],
) -> None:
    report.frames = len(latencies)
    report.received, report.dropped = mailbox.received, mailbox.dropped
    report.seconds = seconds
    report.fps = len(latencies) / seconds if seconds > 0 else 0.0
    report.latency_p50_ms = statistics.median(latencies) if latencies else 0.0
    report.latency_p95_ms = _pct(latencies, 0.95)
    report.latency_max_ms = max(latencies, default=0.0)
    report.step_p50_ms = statistics.median(steps) if steps else 0.0
    report.step_p95_ms = _pct(steps, 0.95)
    third = max(1, len(latencies) // 3)
    report.latency_p95_first_ms = _pct(latencies[:third], 0.95)
    report.latency_p95_last_ms = _pct(latencies[-third:], 0.95)
    report.rss_max_mib = max(value for _, value in rss)
    span = max(seconds, 1e-9)
    first = [value for t, value in rss if t <= span / 3]
    last = [value for t, value in rss if t >= 2 * span / 3]
    report.rss_first_third_mib = max(first, default=0.0)
    report.rss_last_third_mib = max(last, default=report.rss_first_third_mib)


def live_metadata(model: Any, options: LiveOptions, source: str, model_name: str | None = None) -> dict[str, Any]:
    """What the video file and the frames folder record about the depth they hold."""
    kind = DepthStream(model, options.estimate).kind
    return {
        "kind": kind,
        "units": units_for(kind),
        "model": model_label(model, model_name),
        "source": source,
        "normalization": "running",
        "statistic": options.estimate.normalization,
        "invert": options.estimate.invert,
        "colormap": options.colormap,
        "tta": options.estimate.tta,
        "input_size": options.estimate.input_size,
        "timing": "frame times are capture times (wall clock) relative to the first depth frame",
    }


def format_status(report: LiveReport) -> str:
    """The one-line status: achieved fps, end-to-end latency, the model step, dropped frames."""
    return (
        f"{report.fps:5.1f} fps | latency p50 {report.latency_p50_ms:4.0f} ms p95 {report.latency_p95_ms:4.0f} ms | "
        f"step {report.step_p50_ms:4.0f} ms | frames {report.frames} | dropped {report.dropped}"
    )


def print_status(report: LiveReport, final: bool, stream: Any = None) -> None:
    """Status to stderr: rewritten in place on a terminal, one line per update otherwise."""
    out = stream or sys.stderr
    line = format_status(report)
    if final:
        end = "\n" if out.isatty() else ""
        out.write(f"{end}live: {report.stopped}: {report.reason}\nlive: {line}\n")
    elif out.isatty():
        out.write(f"\r{line}")
    else:
        out.write(f"live: {line}\n")
    out.flush()
