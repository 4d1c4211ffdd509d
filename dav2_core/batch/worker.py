"""The worker both engines run: loads the model once, then runs planned batches through the CLI's image path.

A batch goes through :func:`dav2_core.jobs.process_images` (the shared estimate pipeline, the
CLI's outputs and atomic writes) with ``batch_size`` = the batch's length, so it is one forward pass of
exactly the planned images. Per image the worker returns a result row: done, or failed with the reason
(an unreadable file is recorded, the rest of the batch still runs). An unexpected error in a batch is
retried up to ``max_attempts`` times, then recorded for every image of it; nothing here raises. A batch
whose worker process died ``max_attempts`` times (Ray retries it on a fresh actor) is recorded as failed
without running it again, so one poisonous input cannot loop forever.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..engines.export import file_sha256
from ..jobs import Report, load_cli_model, process_images
from .job import INFLIGHT_DIR, BatchJob
from .plan import output_checksums

RESULT_COLUMNS = (
    "index",
    "status",
    "error",
    "worker",
    "seconds",
    "peak_rss_mb",
    "kind",
    "input_sha256",
    "checksums",
)
_TEXT_COLUMNS = ("status", "error", "worker", "kind", "input_sha256", "checksums")


@dataclass(frozen=True)
class KillOnce:
    """Fault injection for tests and benchmarks: the first worker to finish batch number ``after_batches``
    + 1 (its outputs written, its results not yet returned) exits hard (``os._exit``), once per ``marker``
    file, which records the killed process id. Ray restarts the actor and retries the lost batch."""

    marker: str
    after_batches: int = 1

    def claim(self) -> bool:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


class BatchWorker:
    """Holds one model; ``run(entries)`` processes one planned batch, ``__call__`` is the Ray Data form."""

    def __init__(self, job: BatchJob, fault: KillOnce | None = None) -> None:
        if job.worker_threads is not None:
            torch.set_num_threads(job.worker_threads)  # CPU float sums depend on the thread count
        self.job = job
        self.options = replace(job.options, quiet=True)
        if job.engine == "ray" and not job.gpus_per_worker and self.options.device is None:
            self.options = replace(self.options, device="cpu")  # a CPU worker must not take a GPU it was not given
        self.out_dir = job.output
        self.fault = fault
        self.model = load_cli_model(self.options)
        self.kind = self.model.checkpoint_info.kind
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.batches = 0

    def _attempt(self, items: list[io.InputFile]) -> tuple[dict[Path, str], str | None]:
        """Run the batch once: ({path: why} per failed image, error of the whole batch or None)."""
        report = Report()
        try:
            process_images(self.model, items, self.options, self.out_dir, report)
        except Exception as exc:  # noqa: BLE001 - recorded per image; the job goes on
            return {}, f"{type(exc).__name__}: {exc}"
        return {Path(path): why for path, why in report.failed}, None

    def _count_try(self, entries: list[list[Any]]) -> tuple[Path, int]:
        """(marker file, earlier tries) of a batch: a worker that dies leaves its marker behind, so the
        retried batch knows how often it already killed a worker (the job's bound on crash loops)."""
        key = hashlib.sha1(json.dumps(entries).encode("utf-8")).hexdigest()[:20]
        marker = self.out_dir / INFLIGHT_DIR / key
        try:
            tries = int(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tries = 0
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(tries + 1), encoding="utf-8")
        return marker, tries

    def run(self, entries: list[list[Any]]) -> list[dict[str, Any]]:
        """One planned batch ``[[index, input, stem], ...]`` -> one result row per image (``RESULT_COLUMNS``)."""
        items = [io.InputFile(Path(path), "image", Path(stem)) for _, path, stem in entries]
        start = time.perf_counter()
        marker, tries = self._count_try(entries)
        failed: dict[Path, str] = {}
        batch_error = None
        # Inputs are hashed before they are read for depth: if one is replaced in between, the recorded (older)
        # hash no longer matches it, and the next run redoes it. Outputs are never kept for other content.
        hashes: dict[Path, str] = {}
        for item in items:
            try:
                hashes[item.path] = file_sha256(item.path)
            except OSError as exc:
                failed[item.path] = f"cannot read the file ({exc.strerror or exc})"
        if tries >= self.job.max_attempts:
            batch_error = (
                f"a worker died {tries} times running this image's batch (out of memory, or a crash "
                "in a decoder?); a rerun tries again"
            )
        else:
            unreadable = dict(failed)
            for _ in range(self.job.max_attempts):
                failed, batch_error = self._attempt(items)
                if batch_error is None:
                    break
            failed = {**failed, **unreadable}
        seconds = (time.perf_counter() - start) / max(1, len(items))
        rss = peak_rss_mb()
        rows = []
        for (index, _, stem), item in zip(entries, items):
            error = batch_error or failed.get(item.path)
            checksums = ""
            if not error:
                try:  # what was just written, as the next run must find it
                    checksums = json.dumps(output_checksums(self.out_dir, stem, self.options))
                except OSError as exc:
                    error = f"an output vanished right after it was written ({exc})"
            rows.append(
                {
                    "index": int(index),
                    "status": "failed" if error else "done",
                    "error": error or "",
                    "worker": self.name,
                    "seconds": seconds,
                    "peak_rss_mb": rss,
                    "kind": self.kind,
                    "input_sha256": hashes.get(item.path, ""),
                    "checksums": checksums,
                }
            )
        self.batches += 1
        if self.fault is not None and self.batches > self.fault.after_batches and self.fault.claim():
            os._exit(1)
        marker.unlink(missing_ok=True)
        return rows

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch ``{"batch": [JSON payloads]}`` -> result columns (one row per image)."""
        rows = [row for payload in batch["batch"] for row in self.run(json.loads(str(payload)))]
        return {
            name: np.array([row[name] for row in rows], dtype=object if name in _TEXT_COLUMNS else None)
            for name in RESULT_COLUMNS
        }
