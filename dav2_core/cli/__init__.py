"""``python -m dav2_core`` / ``dav2``: depth maps for images, folders and videos, and sub-commands.

``dav2 INPUT... [-o DIR] [options]`` writes depth for images (grouped by size, batch by batch) and videos
(streamed chunk by chunk); see :mod:`dav2_core.jobs` for the outputs. A first argument naming a
sub-command (``dav2 <command> --help``) runs that command instead; to process a file literally named like
a sub-command, write it as ``./name``.

Exit status: 0 all done; 1 done, but some inputs failed or a video lost frames (undecodable frames, a cut or
damaged file: each is reported on stderr with the count, and the rest is written); 2 nothing done (bad arguments, missing input,
model unavailable offline, bad checkpoint); 130 interrupted (finished files are kept, no partial file).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from .. import io
from ..checkpoints import CheckpointError
from ..engines import as_engine, is_video_model, single_image_refusal
from ..hub import HubUnavailableError
from ..jobs import (
    CliError,
    CliOptions,
    Report,
    check_output_options,
    info,
    load_cli_model,
    process_images,
    process_video,
    warn,
)
from .args import build_parser, parse_options

#: Sub-commands: name -> module in this package with ``main(argv) -> int``.
SUBCOMMANDS: dict[str, str] = {"batch": "batch", "eval": "eval", "export": "export", "live": "live"}

__all__ = ["CliOptions", "SUBCOMMANDS", "build_parser", "main", "parse_options", "run"]


def run(options: CliOptions) -> int:
    """Process the inputs the options name; returns the exit status."""
    out_dir = options.output
    try:
        inputs = io.collect_inputs(list(options.inputs), recursive=options.recursive, exclude=out_dir)
        check_output_options(options)
        model = load_cli_model(options)
    except (io.InputError, HubUnavailableError, CheckpointError, CliError, ValueError, ImportError) as exc:
        print(f"dav2: error: {exc}", file=sys.stderr)
        return 2
    engine, checkpoint = as_engine(model), model.checkpoint_info
    info(
        options,
        f"model {model.source} ({checkpoint.encoder}, {checkpoint.kind}) on {engine.device} "
        f"{str(engine.input_dtype).removeprefix('torch.')} ({engine.backend})",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    io.clean_stale_temps(out_dir)  # temporaries of a run that was killed here
    report = Report()
    images = [item for item in inputs if item.kind == "image"]
    if images and is_video_model(model):  # VDA estimates clips: each image is refused, the videos still run
        for item in images:
            report.fail(item.path, single_image_refusal(model))
    elif images:
        process_images(model, images, options, out_dir, report)
    for item in inputs:
        if item.kind == "video":
            process_video(model, item, options, out_dir, report)
    info(options, f"done: images {report.images_done}, videos {report.videos_done}, written to {out_dir}")
    if report.failed or report.lost_frames:
        warn(
            f"finished with problems: {len(report.failed)} inputs failed, {len(report.lost_frames)} videos lost frames"
            + "".join(f"\n  {path}: {why}" for path, why in report.failed)
            + "".join(f"\n  {path}: {why}" for path, why in report.lost_frames.items())
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dav2`` / ``python -m dav2_core``; returns the exit status. Ctrl-C anywhere, in a
    sub-command too, prints one line and gives 130 (every file is written atomically: none is partial)."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = f"dav2 {args[0]}" if args and args[0] in SUBCOMMANDS else "dav2"
    try:
        if args and args[0] in SUBCOMMANDS:
            return importlib.import_module(f".{SUBCOMMANDS[args[0]]}", __name__).main(args[1:])
        return run(parse_options(args))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished outputs are kept, no partial file was left", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. output folder not writable, disk full
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
