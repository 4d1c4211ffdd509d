"""``run_batch``: source -> resume -> scan -> plan -> workers -> manifest and summary, for either engine.

Order of work: read SOURCE (bad input stops here, nothing written), compare with the job file of an
earlier run in OUT, scan (sizes, verified outputs), plan the fixed batches, record the job file, run
the batches that hold pending images, and write the manifest (also every ``FLUSH_SECONDS`` and when
interrupted or stopped, so a rerun resumes from it).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import io
from ..jobs import CliError, check_output_options
from ..variants import VARIANTS
from .job import INFLIGHT_DIR, MANIFEST_FILE, BatchError, BatchJob, weights_record
from .local import LocalEngine
from .manifest import (
    Row,
    check_job_file,
    read_job_file,
    read_manifest,
    require_pyarrow,
    write_job_file,
    write_manifest,
)
from .plan import apply_scan, batches_to_run, plan_batches, rows_to_scan
from .sources import read_source
from .worker import KillOnce

#: Seconds between manifest writes while a job runs.
FLUSH_SECONDS = 30.0


@dataclass
class WorkerStats:
    """One worker's share of a run: images, busy seconds, peak resident memory (MiB)."""

    images: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class BatchSummary:
    """What a run did. ``results``: result rows received (one per image run; a batch retried after a
    worker died still reports once); ``processed``: pending images among them (the others are batch-mates
    run again for the same numbers); ``reused``: images whose outputs verified before the run."""

    rows: list[Row]
    manifest: Path
    engine: str
    kind: str | None = None
    seconds: float = 0.0
    processed: int = 0
    reused: int = 0
    results: int = 0
    first_result_s: float | None = None  # seconds from the start of the run to the first result (pool start-up)
    workers: dict[str, WorkerStats] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.status == "failed"]

    @property
    def images_per_second(self) -> float:
        """Images run per second (``results``: the pending ones and their batch-mates) over the run."""
        return self.results / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_images_per_second(self) -> float:
        """Images/s after the first result (workers started and the model loaded)."""
        span = self.seconds - (self.first_result_s or 0.0)
        return self.results / span if span > 0 and self.first_result_s is not None else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every image is done; 1 when some failed (the rest is written)."""
        return 1 if self.failed or self.count("pending") else 0

    def format(self, max_failures: int = 10) -> str:
        """The final summary: counts, throughput, per-worker lines, the first failures."""
        lines = [
            f"batch ({self.engine}): {self.count('done')} done ({self.results} run now in {self.seconds:.1f} s, "
            f"{self.images_per_second:.2f} images/s, first result after {self.first_result_s or 0:.1f} s; "
            f"{self.reused} already done), {len(self.failed)} failed, "
            f"{self.count('pending')} pending, {self.count('duplicate')} duplicates, "
            f"{self.count('skipped')} skipped; manifest {self.manifest}"
        ]
        for name, stats in sorted(self.workers.items()):
            rate = stats.images / stats.seconds if stats.seconds > 0 else 0.0
            lines.append(
                f"  worker {name}: {stats.images} images, {rate:.2f} images/s busy, "
                f"peak RSS {stats.peak_rss_mb:.0f} MiB"
            )
        for row in self.failed[:max_failures]:
            lines.append(f"  failed {row.input}: {row.error} (attempt {row.attempts})")
        if len(self.failed) > max_failures:
            lines.append(f"  ... and {len(self.failed) - max_failures} more failures (see the manifest)")
        return "\n".join(lines)


def _engine(job: BatchJob, fault: KillOnce | None) -> Any:
    if job.engine == "ray":
        from .ray_engine import RayEngine  # imports ray lazily: BatchError with the pip command if absent

        return RayEngine(job, fault)
    return LocalEngine(job, fault)


def _preflight(job: BatchJob) -> None:
    """Errors that need no model and no cluster: missing packages, EXR codec, checkpoint path."""
    require_pyarrow()
    if job.engine == "ray":
        from .ray_engine import require_ray

        require_ray()
    try:
        check_output_options(job.options)
    except CliError as exc:
        raise BatchError(str(exc)) from None
    variant = VARIANTS.get(job.options.variant or "")
    if variant is not None and variant.is_video:
        raise BatchError(
            f"{variant.name} is a Video Depth Anything model: it estimates clips, and dav2 batch treats every image "
            "alone. Run dav2 on the videos (or a folder of them) with it, or pick a Depth Anything V2 variant here."
        )


def run_batch(job: BatchJob, *, fault: KillOnce | None = None) -> BatchSummary:
    """Run (or resume) a batch job; returns its summary. BatchError when nothing could be done; an
    interrupt (KeyboardInterrupt) writes the manifest first. See the package docstring for the outputs."""
    _preflight(job)
    rows = read_source(job)
    out = job.output
    stored = read_job_file(out)
    with _engine(job, fault) as engine:  # a bad cluster address fails first, before the model is looked for
        weights = weights_record(job.weights_file(), stored.get("model_file") if stored else None)
        fingerprint = job.fingerprint(weights)
        reuse = check_job_file(out, stored, fingerprint, job.overwrite)
        previous, kind = read_manifest(out / MANIFEST_FILE) if reuse else ({}, None)
        summary = BatchSummary(
            rows,
            out / MANIFEST_FILE,
            job.engine,
            kind=kind or (VARIANTS[job.options.variant].kind if job.options.variant else None),
        )
        by_index = {row.index: row for row in rows}
        for result in engine.scan(rows_to_scan(rows, previous, job.max_attempts, job.retry_failed)):
            apply_scan(by_index, result, reuse)
        todo = batches_to_run(plan_batches(rows, job.batch_size))
        summary.reused = sum(row.status == "done" for row in rows)
        if todo:
            engine.prepare()  # local: loads the model now, so a bad model stops the job before any file
        out.mkdir(parents=True, exist_ok=True)
        io.clean_stale_temps(out)  # temporaries of a run that was killed here
        write_job_file(out, fingerprint, job.source, weights)
        shutil.rmtree(out / INFLIGHT_DIR, ignore_errors=True)  # markers of an earlier run that was killed
        last_flush = time.monotonic()

        def on_rows(results: list[dict[str, Any]]) -> None:
            nonlocal last_flush
            if summary.first_result_s is None:
                summary.first_result_s = time.perf_counter() - start
            for result in results:
                row = by_index[int(result["index"])]
                failed = result["status"] == "failed"
                if row.status == "pending":
                    summary.processed += 1
                    row.attempts += 1
                elif failed:
                    row.attempts += 1
                row.status, row.error = str(result["status"]), str(result["error"]) or None
                row.worker, row.seconds = str(result["worker"]), float(result["seconds"])
                row.input_sha256 = str(result["input_sha256"]) or None
                row.checksums = json.loads(str(result["checksums"])) if result["checksums"] else None
                summary.kind = str(result["kind"])
                stats = summary.workers.setdefault(row.worker, WorkerStats())
                stats.images += 1
                stats.seconds += row.seconds
                stats.peak_rss_mb = max(stats.peak_rss_mb, float(result["peak_rss_mb"]))
                summary.results += 1
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                write_manifest(summary.manifest, rows, summary.kind)
                last_flush = time.monotonic()

        start = time.perf_counter()
        try:
            if todo:
                engine.run([[[row.index, row.input, row.stem] for row in batch] for batch in todo], on_rows)
        finally:
            summary.seconds = time.perf_counter() - start
            write_manifest(summary.manifest, rows, summary.kind)
            shutil.rmtree(out / INFLIGHT_DIR, ignore_errors=True)
    return summary
