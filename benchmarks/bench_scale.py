"""Scale benchmark: ``dav2 batch --engine ray`` on a local Ray cluster, 1 vs 2 workers, and a worker killed mid-run.

Writes ``--images`` (default 2,000) synthetic images of six sizes (32..64 px, so the forward pass is
small and the run measures the batch machinery as much as the network), starts one local Ray cluster
(``--cpus``, default 2), then runs the same job into fresh folders:

- once per ``--workers`` count (default 1 and 2; CPU workers, one torch thread each): images/s over the
  run (actors started, model loaded, all batches), after the first result (steady state) and over the
  busy time of each worker, peak RSS of
  each worker process, and whether the manifest is complete (every image once, all done) and the
  outputs are byte-identical to the first run's;
- once more with the largest worker count while one worker kills itself (``os._exit``) halfway through
  its share, after writing a batch and before reporting it (:class:`dav2_core.batch.KillOnce`): Ray
  restarts the actor and retries that batch; reported is that every image was reported exactly once and
  the outputs are byte-identical to the first run's.

Weights: the seeded random vits of benchmarks/models.py (outputs are meaningless, the work is real).
Full run (about 5 minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_scale.py --out bench-results/scale.json
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import int_list, positive_int  # noqa: E402
from benchmarks.models import SEED, seeded_ours  # noqa: E402
from benchmarks.report import add_out_argument, machine_info, print_table, write_json  # noqa: E402
from dav2_core.batch import JOB_FILE, MANIFEST_FILE, BatchSummary, KillOnce, run_batch  # noqa: E402
from dav2_core.cli.batch import parse_job  # noqa: E402

SIZES = [(32, 48), (48, 32), (40, 40), (48, 64), (64, 48), (56, 56)]  # (H, W)


def make_images(folder: Path, count: int) -> None:
    """``count`` smooth random PNGs of SIZES in 10 subfolders (seeded)."""
    rng = np.random.default_rng(SEED)
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
        path = folder / f"part{i % 10}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_FILE, JOB_FILE)
    }


def manifest_complete(out: Path, count: int) -> bool:
    import pyarrow.parquet as pq

    rows = pq.read_table(out / MANIFEST_FILE, columns=["index", "status"]).to_pylist()
    return sorted(r["index"] for r in rows) == list(range(count)) and all(r["status"] == "done" for r in rows)


def record(
    summary: BatchSummary,
    wall: float,
    out: Path,
    args: argparse.Namespace,
    workers: int,
    reference: dict[str, bytes] | None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    per_worker = [
        {
            "worker": name,
            "images": s.images,
            "images_per_s_busy": s.images / s.seconds if s.seconds else 0.0,
            "peak_rss_mib": s.peak_rss_mb,
        }
        for name, s in sorted(summary.workers.items())
    ]
    files = outputs(out)
    return {
        "workers": workers,
        "images": summary.processed,
        "wall_s": wall,
        "run_s": summary.seconds,
        "images_per_s": summary.images_per_second,
        "first_result_s": summary.first_result_s,
        "steady_images_per_s": summary.steady_images_per_second,
        "results_reported": summary.results,
        "max_worker_peak_rss_mib": max((w["peak_rss_mib"] for w in per_worker), default=None),
        "worker_processes": len(per_worker),
        "per_worker": per_worker,
        "manifest_complete": manifest_complete(out, args.images),
        "identical_to_first": None if reference is None else files == reference,
    }, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=2000)
    parser.add_argument("--workers", type=int_list, default=[1, 2], help="worker counts to compare (default 1,2)")
    parser.add_argument("--cpus", type=positive_int, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument("--input-size", type=positive_int, default=42, help="network short side (default 42)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--no-kill", action="store_true", help="skip the killed-worker run")
    parser.add_argument("--work-dir", type=Path, default=None, help="where images and outputs go (default: a temp dir)")
    add_out_argument(parser, "JSON results file")
    args = parser.parse_args(argv)
    import ray

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="dav2_scale_"))
    source = work / "images"
    make_images(source, args.images)
    checkpoint = work / "vits_seeded.pth"
    torch.save(seeded_ours("vits").state_dict(), checkpoint)

    def job(out: Path, workers: int) -> Any:
        return parse_job(
            [
                str(source),
                "-o",
                str(out),
                "--checkpoint",
                str(checkpoint),
                "--device",
                "cpu",
                "--input-size",
                str(args.input_size),
                "--batch-size",
                str(args.batch_size),
                "--npy",
                "--no-color",
                "--engine",
                "ray",
                "--num-workers",
                str(workers),
                "-q",
            ]
        )

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING)
    rows, reference = [], None
    try:
        for workers in args.workers:
            out = work / f"out_{workers}w"
            start = time.perf_counter()
            summary = run_batch(job(out, workers))
            row, files = record(summary, time.perf_counter() - start, out, args, workers, reference)
            reference = reference or files
            rows.append({"run": f"{workers} worker(s)", **row})
            print(f"{workers} worker(s): {row['images_per_s']:.1f} images/s over the run", flush=True)
        if not args.no_kill:
            workers = max(args.workers)
            out, marker = work / "out_killed", work / "killed.pid"
            batches = -(-args.images // args.batch_size)
            start = time.perf_counter()
            summary = run_batch(job(out, workers), fault=KillOnce(str(marker), after_batches=batches // workers // 2))
            row, _ = record(summary, time.perf_counter() - start, out, args, workers, reference)
            row["killed_pid"] = int(marker.read_text()) if marker.exists() else None
            row["exactly_once"] = summary.results == args.images and row["manifest_complete"]
            rows.append({"run": f"{workers} workers, 1 killed", **row})
    finally:
        ray.shutdown()
    base, steady = rows[0]["images_per_s"], rows[0]["steady_images_per_s"]
    for row in rows:
        row["speedup_vs_first"] = row["images_per_s"] / base if base else None
        row["steady_speedup"] = row["steady_images_per_s"] / steady if steady else None
    print_table(
        rows,
        [
            ("run", "run", ""),
            ("images", "images", "d"),
            ("wall_s", "wall s", ".1f"),
            ("images_per_s", "img/s", ".2f"),
            ("speedup_vs_first", "x first", ".2f"),
            ("first_result_s", "start s", ".1f"),
            ("steady_images_per_s", "steady img/s", ".2f"),
            ("steady_speedup", "x first", ".2f"),
            ("worker_processes", "worker procs", "d"),
            ("max_worker_peak_rss_mib", "peak RSS/worker MiB", ".0f"),
            ("manifest_complete", "manifest complete", ""),
            ("identical_to_first", "same bytes", ""),
            ("results_reported", "results", "d"),
        ],
    )
    for row in rows:
        busy = ", ".join(f"{w['images']} img at {w['images_per_s_busy']:.1f} img/s" for w in row["per_worker"])
        print(
            f"  {row['run']}: {busy}"
            + (f"; killed pid {row['killed_pid']}, exactly once: {row['exactly_once']}" if "killed_pid" in row else "")
        )
    write_json(
        args.out,
        {
            "benchmark": "scale",
            "machine": machine_info(),
            "settings": {
                "images": args.images,
                "sizes_hw": SIZES,
                "input_size": args.input_size,
                "batch_size": args.batch_size,
                "ray_cpus": args.cpus,
                "encoder": "vits",
                "dtype": "fp32",
                "outputs": ["png16", "npy"],
            },
            "results": rows,
        },
    )
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
