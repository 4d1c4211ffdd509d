"""Device memory facts shared by every chunked loop: what counts as out-of-memory, and how much is free.

``torch.OutOfMemoryError`` exists only from torch 2.5 (before, CUDA raised ``torch.cuda.OutOfMemoryError``,
and both are ``RuntimeError`` subclasses). cuDNN / cuBLAS / cuFFT allocation failures arrive as a plain
``RuntimeError`` whose message names the status (``CUDNN_STATUS_ALLOC_FAILED``...). :func:`is_out_of_memory`
recognises all of them, so a caller can halve its chunk instead of failing.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

import torch

#: The out-of-memory exception class of this torch (``torch.OutOfMemoryError`` from 2.5, the CUDA one before).
OutOfMemoryError: type[RuntimeError] = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError

#: Message fragments of library allocation failures that are out-of-memory in all but name.
_ALLOC_FAILURES = (
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUFFT_ALLOC_FAILED",
    "CUSOLVER_STATUS_ALLOC_FAILED",
    "CUDA error: out of memory",
    "HIP out of memory",
    "MPS backend out of memory",
    "DefaultCPUAllocator: can't allocate memory",
)

#: Fallback budget when the free memory of a device cannot be read.
UNKNOWN_FREE_BYTES = 4 << 30


def is_out_of_memory(exc: BaseException) -> bool:
    """True for any device or library allocation failure (retrying with less work may succeed)."""
    if isinstance(exc, OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return any(fragment in text for fragment in _ALLOC_FAILURES)
    return isinstance(exc, MemoryError)


def release_cached(device: torch.device) -> None:
    """Give cached, unused device memory back (CUDA caching allocator); a no-op elsewhere.

    Call it *after* leaving an ``except`` block: inside it, the traceback still references the failed
    chunk's activations, so nothing would be freed.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()


def free_memory_bytes(device: torch.device | str) -> int:
    """Bytes a new allocation on ``device`` can use now.

    CUDA: the driver's free memory plus what the caching allocator holds in reusable blocks of the
    *default* pool (reserved minus allocated, less anything held in private pools such as CUDA-graph
    pools, which other allocations cannot use). CPU and others: ``MemAvailable`` of /proc/meminfo.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        stats = torch.cuda.memory_stats(device)
        reusable = stats.get("reserved_bytes.all.current", 0) - stats.get("allocated_bytes.all.current", 0)
        in_private_pools = _private_pool_bytes(device)
        return int(free + max(0, reusable - in_private_pools))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return UNKNOWN_FREE_BYTES


def _private_pool_bytes(device: torch.device) -> int:
    """Reserved-but-unallocated bytes of segments owned by private pools (CUDA graphs), 0 if unknown."""
    try:
        segments = torch.cuda.memory_snapshot()
    except (RuntimeError, AttributeError):
        return 0
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = 0
    for segment in segments:
        pool = segment.get("segment_pool_id", (0, 0))
        if segment.get("device") == index and tuple(pool) != (0, 0):
            total += segment.get("total_size", 0) - segment.get("allocated_size", 0)
    return total


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None where the C library is not glibc: macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_host_memory() -> None:
    """Give freed heap memory back to the operating system (glibc ``malloc_trim``; a no-op elsewhere).

    Streaming loops that allocate frame-sized buffers (1-32 MB: below glibc's mmap threshold once it has
    adapted) call it once per chunk, so the resident size stays flat instead of creeping with heap
    fragmentation. It changes no allocator setting.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
