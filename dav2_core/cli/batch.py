"""``dav2 batch SOURCE -o OUT [--engine local|ray] ...``: depth for a whole dataset, resumable (:mod:`dav2_core.batch`).

Takes every model, inference and output option of the depth command (``dav2 --help``), plus where and
how to run. Exit status: 0 every image done; 1 done, but some images failed (listed in the manifest and
on stderr); 2 nothing done (bad SOURCE or options, no images, model or cluster unavailable); 130
interrupted (finished outputs and the manifest are kept: rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Sequence

from ..batch import DEFAULT_BATCH_SIZE, ENGINES, BatchError, BatchJob, run_batch
from ..batch.job import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS
from .args import build_parser, non_negative_float, options_from_namespace, positive_float, positive_int
from ..jobs import info, warn

EPILOG = """\
SOURCE: a folder (read recursively; outputs mirror its layout), a text file with one image path a line,
or a .csv / .parquet file with a path column. Relative paths in a list are read against its folder
(or --root); paths outside it need --allow-outside.
OUT gets per image <stem>_depth.png (16-bit, near = white), <stem>_depth_color.png, [--npy] <stem>_depth.npy,
[--exr] <stem>_depth.exr, as `dav2` writes them, plus manifest.parquet (input, output, size, kind, units,
status, error, attempts, worker, seconds, input and output sha256) and dav2_batch.json (the settings and the
model's weights by content, which a rerun must match). Rerunning the same command keeps outputs whose input
and files still have their recorded sha256 (anything changed, cut or unrecorded is redone), retries failures
up to --max-attempts and finishes the rest.
Numbers: bit-identical to `dav2 SOURCE -r --batch-size B` with the same device, precision and (on CPU) threads.
exit status: 0 all done; 1 some images failed (the rest is written); 2 nothing done; 130 interrupted"""


def _action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    return next(action for action in parser._actions if action.dest == dest)


def build_batch_parser() -> argparse.ArgumentParser:
    """The depth command's parser, adapted: one SOURCE, a fixed default batch size, and the batch options."""
    parser = build_parser()
    parser.prog = "dav2 batch"
    parser.description = "Depth Anything V2 depth maps for a whole dataset, in one process or on a Ray cluster."
    parser.epilog = EPILOG
    source = _action(parser, "inputs")
    source.metavar, source.help = "SOURCE", "a folder, a text list of paths, or a .csv/.parquet file with a path column"
    output = _action(parser, "output")
    output.required, output.default, output.help = True, None, "output folder (also holds the manifest)"
    _action(parser, "batch_size").help = (
        f"images per forward pass (default {DEFAULT_BATCH_SIZE}); same-size images "
        "run in fixed batches of this size, so it is part of the numbers"
    )
    for dest in ("recursive", "frames", "temporal"):  # folders are always recursive; no videos here
        _action(parser, dest).help = argparse.SUPPRESS
    group = parser.add_argument_group("batch")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process (default); ray: a pool of Ray actors (pip install '.[ray]')",
    )
    group.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster: local (start one here), auto (the running one), host:6379 or "
        "ray://host:10001 (default: $RAY_ADDRESS, else local)",
    )
    group.add_argument(
        "--num-workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="Ray actors, each with its own model (default 1)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=non_negative_float,
        default=0.0,
        metavar="G",
        help="GPUs per Ray actor (0.5 puts two on a GPU; default 0 = CPU workers)",
    )
    group.add_argument(
        "--cpus-per-worker",
        type=positive_float,
        default=1.0,
        metavar="C",
        help="CPUs per Ray actor; CPU workers run torch with this many threads (default 1)",
    )
    group.add_argument("--path-column", default="path", metavar="NAME", help="path column of a CSV/Parquet SOURCE")
    group.add_argument(
        "--root", metavar="DIR", help="folder relative list paths are read against (default: the list's)"
    )
    group.add_argument("--allow-outside", action="store_true", help="accept listed paths outside the root folder")
    group.add_argument(
        "--max-attempts",
        type=positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"tries per image across runs before its failure is final (default {DEFAULT_MAX_ATTEMPTS})",
    )
    group.add_argument("--retry-failed", action="store_true", help="try final failures of earlier runs again")
    group.add_argument(
        "--overwrite", action="store_true", help="OUT holds a job with other settings: redo every image with these ones"
    )
    group.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for a Ray address to answer (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    return parser


def parse_job(argv: Sequence[str]) -> BatchJob:
    """The command line -> a validated BatchJob (argparse exits with status 2 on bad options)."""
    parser = build_batch_parser()
    ns = parser.parse_args(argv)
    if len(ns.inputs) != 1:
        parser.error(f"one SOURCE please (a folder or a list of paths), got {len(ns.inputs)}: {' '.join(ns.inputs)}")
    if ns.frames:
        parser.error("--frames is for videos; dav2 batch processes images")
    options = options_from_namespace(parser, ns)
    try:
        return BatchJob(
            options,
            engine=ns.engine,
            address=ns.address,
            num_workers=ns.num_workers or 1,
            gpus_per_worker=ns.gpus_per_worker,
            cpus_per_worker=ns.cpus_per_worker,
            path_column=ns.path_column,
            root=Path(ns.root) if ns.root else None,
            allow_outside=ns.allow_outside,
            max_attempts=ns.max_attempts,
            retry_failed=ns.retry_failed,
            overwrite=ns.overwrite,
            connect_timeout=ns.connect_timeout,
        )
    except BatchError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """``dav2 batch``; returns the exit status."""
    job = parse_job(list(sys.argv[2:] if argv is None else argv))
    try:
        summary = run_batch(job)
    except BatchError as exc:
        print(f"dav2 batch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "dav2 batch: interrupted; finished outputs and the manifest are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:  # e.g. output folder not writable, disk full
        print(f"dav2 batch: error: {exc}", file=sys.stderr)
        return 2
    if summary.exit_code:
        warn(summary.format())
    else:
        info(job.options, summary.format())
    return summary.exit_code
