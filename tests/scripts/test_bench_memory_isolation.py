"""benchmarks.memory.run_isolated: a result comes back from the fresh process; a worker that dies without one
(killed for memory, a native crash) is an error naming its exit code, not a wait forever."""

from __future__ import annotations

import os

import pytest

from benchmarks.memory import run_isolated


def _square(value: int) -> int:
    return value * value


def _die(code: int) -> None:
    os._exit(code)  # what a kill for memory looks like to the parent: no result, no traceback


def _fail() -> None:
    raise ValueError("bad benchmark input")


def test_result_comes_back() -> None:
    assert run_isolated(_square, 7) == 49


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(RuntimeError, match="exited with code 3 without a result"):
        run_isolated(_die, 3)


def test_a_worker_exception_comes_back_with_its_traceback() -> None:
    with pytest.raises(RuntimeError, match="ValueError: bad benchmark input"):
        run_isolated(_fail)
