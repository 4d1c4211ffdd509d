"""Chunked execution: the one loop behind :func:`dav2_core.inference.predict_depth` and every effect.

The items (images, frames, depth maps) are computed in chunks on a *compute device*, each chunk's results
copied out at once, so compute-device memory is bounded by one chunk whatever the batch. An effect's output is allocated once on the *output device* (ComfyUI: its intermediate device, the CPU),
after checking that it fits in the memory free there. The items (images, or frames) are then computed in
chunks on the *compute device*: each chunk's inputs are moved there, worked on, and its results copied
out at once, so compute-device memory is bounded by one chunk whatever the batch. Chunks are sized from
the free compute memory and each effect's bytes-per-item estimate; an out-of-memory error halves the
chunk and retries it (no item is lost or repeated). ``progress(done, total)`` runs after every chunk and
may raise to cancel, so a cancel takes effect within one chunk.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from collections.abc import Callable

import torch

from .memory import OutOfMemoryError, free_memory_bytes, is_out_of_memory, release_cached

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""``progress(items_done, items_total)`` after every chunk; may raise (e.g. to cancel)."""

ReserveFn = Callable[[int, torch.device], None]
"""``reserve(bytes, device)``: ask the host application to make ``bytes`` free on ``device`` before chunks
are sized (ComfyUI: ``comfy.model_management.free_memory``, which offloads idle models)."""

#: Most items in one chunk (beyond it there is no speed to gain, only latency for progress and cancel).
MAX_CHUNK = 64
#: On the CPU more items per chunk gain nothing (every op is already multi-threaded): chunks stop at about
#: this many pixels, so progress and cancel stay responsive for large images.
CPU_CHUNK_PIXELS = 1 << 22
#: A chunk may use this share of the free compute memory (the per-item estimates are rough).
CHUNK_MEMORY_SHARE = 0.5
#: An output may take at most this share of the memory free on the output device.
OUTPUT_MEMORY_SHARE = 0.75


@dataclass(frozen=True)
class Execution:
    """Where and how an effect runs. Every field is optional; the default runs on the input's device.

    device: compute device for the chunks (None: the input tensor's device).
    output_device: where the result is assembled and returned (None: the input tensor's device).
    chunk_size: items per chunk (None: sized from free memory).
    progress: ``progress(done, total)`` after each chunk, in the effect's items; may raise to cancel.
    reserve: ``reserve(bytes, device)`` once before sizing chunks, to let the host free memory.
    """

    device: torch.device | str | None = None
    output_device: torch.device | str | None = None
    chunk_size: int | None = None
    progress: ProgressFn | None = None
    reserve: ReserveFn | None = None

    def devices(self, like: torch.Tensor) -> tuple[torch.device, torch.device]:
        """(compute device, output device), defaulting to the device of ``like``."""
        device = torch.device(self.device) if self.device is not None else like.device
        output = torch.device(self.output_device) if self.output_device is not None else like.device
        return device, output


def _gib(nbytes: float) -> str:
    return f"{nbytes / (1 << 30):.1f} GiB"


def allocate_output(
    shape: tuple[int, ...], device: torch.device, what: str, advice: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """An empty output tensor on ``device``, after checking it fits in the memory free there.

    Raises ValueError naming ``what`` (e.g. "1000 frames of 1920x1080"), the size in GB, the free memory
    and ``advice`` (what to change) when it needs more than ``OUTPUT_MEMORY_SHARE`` of the free memory.
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    free = free_memory_bytes(device)
    if nbytes > OUTPUT_MEMORY_SHARE * free:
        raise ValueError(
            f"the output would be {what} = {_gib(nbytes)}, but only {_gib(free)} of memory is free on {device};"
            f" {advice}"
        )
    return torch.empty(shape, dtype=dtype, device=device)


def plan_chunk(total: int, bytes_per_item: int, pixels_per_item: int, device: torch.device, run: Execution) -> int:
    """Items per chunk: ``run.chunk_size``, or as many as fit ``CHUNK_MEMORY_SHARE`` of the free memory of
    ``device`` (after ``run.reserve``), at most ``MAX_CHUNK`` (and ``CPU_CHUNK_PIXELS`` worth on a CPU)."""
    if run.chunk_size is not None:
        if int(run.chunk_size) != run.chunk_size or run.chunk_size < 1:
            raise ValueError(f"chunk_size must be a whole number >= 1, got {run.chunk_size}")
        return int(run.chunk_size)  # may exceed total: the last chunk stops at total; OOM halves from here
    if run.reserve is not None:
        run.reserve(bytes_per_item, device)  # like ComfyUI's VAE: make room for one item, then fit the rest
    budget = CHUNK_MEMORY_SHARE * free_memory_bytes(device)
    chunk = min(total, MAX_CHUNK, int(budget // max(1, bytes_per_item)))
    if device.type == "cpu":
        chunk = min(chunk, CPU_CHUNK_PIXELS // max(1, pixels_per_item))
    return max(1, chunk)


def run_chunked(
    total: int,
    work: Callable[[int, int], None],
    bytes_per_item: int,
    pixels_per_item: int,
    device: torch.device,
    run: Execution,
    what: str = "item",
    single_oom: str | None = None,
) -> None:
    """Call ``work(start, stop)`` for consecutive chunks covering items ``0..total``; ``work`` computes
    those items on ``device`` and copies them into the output. Chunks come from :func:`plan_chunk`; an
    out-of-memory error halves the chunk and retries it; ``run.progress`` runs after each chunk.
    ``single_oom``: the OutOfMemoryError message when even one item does not fit (default: names ``what``
    and ``bytes_per_item``)."""
    chunk = plan_chunk(total, bytes_per_item, pixels_per_item, device, run)
    start = 0
    while start < total:
        stop = min(total, start + chunk)
        out_of_memory = False
        try:
            work(start, stop)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:
            release_cached(device)  # after the except block: the failed chunk's tensors are free now
            if chunk == 1:
                raise OutOfMemoryError(
                    single_oom
                    or f"out of memory on {device} for a single {what} (about {_gib(bytes_per_item)} estimated);"
                    " use a smaller image, or free memory"
                )
            chunk = max(1, chunk // 2)
            log.warning("out of memory; retrying with chunks of %d %ss", chunk, what)
            continue
        start = stop
        if run.progress is not None:
            run.progress(start, total)
