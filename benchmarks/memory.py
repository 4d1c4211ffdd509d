"""CPU memory of a benchmark: peak resident set size, and runs isolated in a child process.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import traceback
from typing import Any
from collections.abc import Callable


MIB = 1 << 20


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory of this process above a baseline, in bytes.

    Linux: the high-water mark VmHWM is reset through ``/proc/self/clear_refs`` ("5") at ``start()``, so
    ``peak_growth()`` = VmHWM since ``start()`` minus VmRSS at ``start()`` (method "VmHWM-reset"). Elsewhere:
    ``ru_maxrss`` minus the RSS at ``start()`` (method "ru_maxrss"), an underestimate when an earlier peak
    was higher than this one.
    """

    def __init__(self) -> None:
        self.method = ""
        self.baseline = 0

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            self.method = "VmHWM-reset"
        except OSError:
            self.method = "ru_maxrss"
        self.baseline = self.current()

    @staticmethod
    def current() -> int:
        rss = _proc_status_kib("VmRSS")
        if rss is not None:
            return rss * 1024
        import resource

        return _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def peak(self) -> int:
        if self.method == "VmHWM-reset":
            hwm = _proc_status_kib("VmHWM")
            if hwm is not None:
                return hwm * 1024
        import resource

        return _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def peak_growth(self) -> int:
        return max(0, self.peak() - self.baseline)


def _maxrss_bytes(value: int) -> int:
    return value if sys.platform == "darwin" else value * 1024  # macOS reports bytes, Linux KiB


def run_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh spawned Python process and return its result (so its peak RSS is its own).

    ``fn`` must be a module-level function; exceptions in the child come back as RuntimeError with its traceback.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    try:
        ok, payload = _result_of(process, queue)
    finally:
        process.join()
    if not ok:
        raise RuntimeError(f"benchmark worker failed:\n{payload}")
    return payload


def _result_of(process: Any, results: Any) -> tuple[bool, Any]:
    """The child's (ok, payload); a RuntimeError naming its exit code when it died without one (killed for
    memory, a crash in native code) instead of waiting for it forever."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if process.is_alive():
                continue
            try:  # it may have put its result just before exiting
                return results.get(timeout=1.0)
            except queue.Empty:
                raise RuntimeError(
                    f"benchmark worker exited with code {process.exitcode} without a result "
                    "(killed, e.g. for memory, or crashed in native code)"
                ) from None


def _child(queue: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        queue.put((True, fn(*args)))
    except BaseException:  # noqa: BLE001 - reported to the parent with the traceback
        queue.put((False, traceback.format_exc()))
