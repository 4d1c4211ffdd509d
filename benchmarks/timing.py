"""Timing: device synchronisation, timed calls with warm-up, medians, out-of-memory retries seen in the log.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import time
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import torch

from dav2_core.cli.args import non_negative_int, positive_int


def device_sync(device: torch.device) -> Callable[[], None] | None:
    """The ``sync`` for :func:`time_calls` on ``device``: waits for CUDA work; None elsewhere (synchronous)."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def add_timing_arguments(
    parser: argparse.ArgumentParser,
    runs: int,
    warmup: int,
    runs_help: str | None = None,
    warmup_help: str | None = None,
) -> None:
    """``--runs N`` (timed calls, default ``runs``) and ``--warmup N`` (untimed calls first, default ``warmup``),
    as :func:`time_calls` takes them."""
    parser.add_argument("--runs", type=positive_int, default=runs, help=runs_help)
    parser.add_argument("--warmup", type=non_negative_int, default=warmup, help=warmup_help)


def time_calls(
    fn: Callable[[], Any],
    runs: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
    after_warmup: Callable[[], None] | None = None,
) -> list[float]:
    """Wall time in seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls (``sync`` ends each call).

    ``after_warmup`` runs between the two (e.g. to reset a peak-memory counter, so that compilation and
    CUDA-graph recording in the warm-up do not count)."""
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class OomRetries(logging.Handler):
    """Collects the engine's "out of memory; retrying" warnings while attached (:meth:`watch`): a batch that
    was split is not that batch."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    @property
    def count(self) -> int:
        return len(self.messages)

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def watch(self) -> Iterator[OomRetries]:
        engine_log = logging.getLogger("dav2_core.chunks")  # where the out-of-memory retries are logged
        engine_log.addHandler(self)
        try:
            yield self
        finally:
            engine_log.removeHandler(self)
