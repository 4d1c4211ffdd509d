"""``dav2 live SOURCE``: live depth from a camera, a stream or a video file (see :mod:`dav2_core.video.live`).

SOURCE is a camera index (0) or device (/dev/video0), a stream URL (rtsp://, http://, udp:// ...) or a video
file (``--realtime`` plays it at its own frame rate, like a camera; otherwise every frame is processed as fast
as the model goes). Outputs: an MJPEG stream on http://127.0.0.1:PORT/ (default port 8765; watch it in a
browser), ``--output-video FILE`` and ``--frames-dir DIR``. A status line shows the achieved fps, the
end-to-end latency (capture -> depth written) and the dropped frames. Ctrl-C stops cleanly: files complete.

Exit status: 0 stopped (Ctrl-C, --duration, the source ended); 1 the stream stalled or failed mid-run (the
files are complete); 2 nothing run (bad arguments, no such camera, a URL that does not answer, port in use,
model unavailable).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointError
from ..colormaps import DEFAULT_COLORMAP
from ..hub import HubUnavailableError
from ..io import atomic_write
from ..video.live import (
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    FileReader,
    LiveError,
    LiveOptions,
    LiveOutputs,
    live_depth,
    live_metadata,
    open_source,
    print_status,
)
from ..video.mjpeg import MjpegServer, PortInUseError
from ..video.sequence import SEQUENCE_FORMATS
from ..video.sink import CONTAINERS, writable_temp
from ..jobs import CliError, CliOptions, load_cli_model
from .args import (
    add_colormap_argument,
    add_inference_arguments,
    add_model_arguments,
    estimate_options,
    model_options,
    normalize_argument,
    port,
    positive_float,
)

DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dav2 live",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[2],
    )
    parser.add_argument("source", metavar="SOURCE", help="camera index or device, stream URL, or video file")
    src = parser.add_argument_group("source")
    src.add_argument(
        "--realtime",
        action="store_true",
        help="a video file is played at its own frame rate (frames the model cannot keep up with are dropped)",
    )
    src.add_argument(
        "--open-timeout",
        type=positive_float,
        default=DEFAULT_OPEN_TIMEOUT,
        metavar="S",
        help=f"seconds a stream URL may take to answer (default {DEFAULT_OPEN_TIMEOUT:g})",
    )
    src.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="S",
        help=f"stop when no frame arrives for S seconds (default {DEFAULT_STALL_TIMEOUT:g})",
    )
    src.add_argument("--duration", type=positive_float, default=None, metavar="S", help="stop after S seconds")
    add_model_arguments(parser)
    run = add_inference_arguments(parser)
    run.add_argument(
        "--temporal", action="store_true", help="align each frame's depth scale/shift to the previous one (relative)"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--port",
        type=port,
        default=DEFAULT_PORT,
        help=f"MJPEG stream on http://127.0.0.1:PORT/ (default {DEFAULT_PORT}; 0 = any free port)",
    )
    out.add_argument("--no-serve", action="store_true", help="no MJPEG stream")
    out.add_argument(
        "--output-video",
        metavar="FILE",
        help=f"also write the depth video ({', '.join(CONTAINERS)}; frames at their capture times)",
    )
    out.add_argument("--frames-dir", metavar="DIR", help="also write every depth frame into DIR (+ frames.json)")
    out.add_argument(
        "--frames-format",
        choices=list(SEQUENCE_FORMATS),
        default="npy",
        help="; ".join(f"{k}: {v}" for k, v in SEQUENCE_FORMATS.items()) + " (default npy)",
    )
    add_colormap_argument(out, f"colormap of the stream and video (default {DEFAULT_COLORMAP}); gray: near = white")
    out.add_argument(
        "--grey", "--gray", dest="grey", action="store_true", help="grey picture (same as --colormap gray)"
    )
    out.add_argument("--invert", action="store_true", help="near = black (and the low end of the colormap)")
    normalize_argument(
        out,
        "each frame's range statistic (min_max or percentile; older name per_image accepted), combined into a "
        "running range that only widens (no flicker)",
    )
    out.add_argument("--stats-json", metavar="FILE", help="write the run's numbers (fps, latency, dropped) as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status line, only the final summary")
    return parser


def _check_output(path: str | None) -> Path | None:
    if path is None:
        return None
    target = Path(path).expanduser()
    if target.suffix.lower() not in CONTAINERS:
        raise CliError(f"--output-video {path}: use a {', '.join(CONTAINERS)} file name")
    if target.is_dir():
        raise CliError(f"--output-video {path} is a folder; give a file name (e.g. depth.mp4)")
    writable_temp(target, ".check").unlink()
    return target


def _interrupt_on_sigterm() -> Any:
    """SIGTERM (a service manager, ``kill``) stops like Ctrl-C: the files are finished first. Returns the
    previous handler (None when signals cannot be set here, e.g. not the main thread)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    estimate = estimate_options(
        ns, parser, temporal_consistency=ns.temporal, normalization=ns.normalize, invert=ns.invert
    )
    try:
        options = LiveOptions(
            estimate=estimate,
            colormap="gray" if ns.grey else ns.colormap,
            realtime=ns.realtime,
            stall_timeout=ns.stall_timeout,
            duration=ns.duration,
        )
    except ValueError as exc:
        parser.error(str(exc))
    cli = CliOptions(inputs=(), output=Path("."), **model_options(ns), quiet=ns.quiet)
    server = reader = None
    try:
        video = _check_output(ns.output_video)
        server = None if ns.no_serve else MjpegServer(ns.port)  # a taken port fails before anything else
        reader = open_source(ns.source, ns.realtime, ns.open_timeout, ns.stall_timeout)
        if ns.realtime and not isinstance(reader, FileReader):
            print(
                "dav2 live: note: --realtime is for video files; cameras and streams are live anyway", file=sys.stderr
            )
        model = load_cli_model(cli)
        frames_dir = Path(ns.frames_dir).expanduser() if ns.frames_dir else None
        meta = live_metadata(model, options, reader.name)
        outputs = LiveOutputs(
            reader.width,
            reader.height,
            reader.rate,
            options.colormap,
            server=server,
            video=video,
            frames_dir=frames_dir,
            frame_formats=(ns.frames_format,),
            meta=meta,
        )
    except (LiveError, PortInUseError, HubUnavailableError, CheckpointError, CliError, ValueError, ImportError) as exc:
        _close(server, reader)
        print(f"dav2 live: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder that cannot be written
        _close(server, reader)
        print(f"dav2 live: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close(server, reader)
        print("dav2 live: interrupted before the first frame; nothing written", file=sys.stderr)
        return 130
    where = [f"stream {server.url}"] if server else []
    where += [f"video {video}"] if video else []
    where += [f"frames {frames_dir}"] if frames_dir else []
    print(
        f"dav2 live: {reader.name} {reader.width}x{reader.height} -> {', '.join(where) or 'status only'} "
        f"(Ctrl-C stops)",
        file=sys.stderr,
    )
    previous = _interrupt_on_sigterm()
    status = (lambda report, final: print_status(report, final)) if not ns.quiet else _final_only
    try:
        report = live_depth(model, reader, outputs, options, status=status)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"dav2 live: error: {exc}", file=sys.stderr)
        return 2
    finally:
        _close(server, None)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for kind, path in report.outputs.items():
        print(f"dav2 live: wrote {kind} {path}", file=sys.stderr)
    if ns.stats_json:
        data = json.dumps(report.as_dict(), indent=1).encode()
        atomic_write(Path(ns.stats_json).expanduser(), lambda f: f.write(data))
    return 1 if report.stopped in ("stalled", "error") else 0


def _final_only(report, final: bool) -> None:
    if final:
        print_status(report, True)


def _close(server: MjpegServer | None, reader) -> None:
    if server is not None:
        server.close()
    if reader is not None:
        reader.close()
