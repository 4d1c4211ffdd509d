"""The local engine: the scan and the planned batches in this process, through the same worker as Ray's."""

from __future__ import annotations

import json
import sys
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
from tqdm import tqdm

from ..checkpoints import CheckpointError
from ..jobs import CliError
from ..hub import HubUnavailableError
from .job import BatchError, BatchJob
from .manifest import Row
from .plan import scan_batch
from .worker import BatchWorker, KillOnce

ResultSink = Callable[[list[dict[str, Any]]], None]
SCAN_CHUNK = 512


def scan_items(rows: list[Row]) -> list[dict[str, Any]]:
    """The :func:`scan_batch` input of some rows, one dict each: index, input, stem, and what the earlier
    manifest recorded (input_sha256, checksums as JSON; "" for none)."""
    return [
        {
            "index": r.index,
            "input": r.input,
            "stem": r.stem,
            "input_sha256": r.input_sha256 or "",
            "checksums": json.dumps(r.checksums) if r.checksums else "",
        }
        for r in rows
    ]


def scan_columns(rows: list[Row]) -> dict[str, np.ndarray]:
    """The :func:`scan_batch` input columns of some rows (see :func:`scan_items`)."""
    items = scan_items(rows)
    columns = {name: np.array([item[name] for item in items], dtype=object) for name in items[0]} if items else {}
    if items:
        columns["index"] = columns["index"].astype(np.int64)
    return columns


def scan_in_process(job: BatchJob, rows: list[Row]) -> Iterator[dict[str, np.ndarray]]:
    """:func:`scan_batch` results for the rows, computed here, ``SCAN_CHUNK`` rows at a time."""
    for start in range(0, len(rows), SCAN_CHUNK):
        yield scan_batch(scan_columns(rows[start : start + SCAN_CHUNK]), str(job.output), job.options)


class LocalEngine:
    """One process: ``scan`` yields scan results, ``run`` processes batches in plan order with a progress bar."""

    name = "local"

    def __init__(self, job: BatchJob, fault: KillOnce | None = None) -> None:
        if fault is not None:
            raise BatchError("fault injection kills a worker process; it needs --engine ray")
        self.job = job
        self._worker: BatchWorker | None = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def scan(self, rows: list[Row]) -> Iterator[dict[str, np.ndarray]]:
        return scan_in_process(self.job, rows)

    def prepare(self) -> None:
        """Load the model (BatchError when it cannot be loaded: offline, bad checkpoint, bad device)."""
        if self._worker is None:
            try:
                self._worker = BatchWorker(self.job)
            except (HubUnavailableError, CheckpointError, CliError, ValueError) as exc:
                raise BatchError(str(exc)) from None

    def run(self, payloads: list[list[list[Any]]], on_rows: ResultSink) -> None:
        self.prepare()
        worker = self._worker
        total = sum(len(p) for p in payloads)
        with tqdm(total=total, unit="img", desc="depth", disable=self.job.options.quiet, file=sys.stderr) as bar:
            for entries in payloads:
                on_rows(worker.run(entries))
                bar.update(len(entries))
