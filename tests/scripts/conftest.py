"""Fixtures of the benchmark smoke tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_scripts import make_tiny_shared


@pytest.fixture
def tiny_shared(tmp_path: Path) -> Path:
    """../shared's layout with one 84x112 NYU-like frame and one photo (bench_scripts.make_tiny_shared)."""
    return make_tiny_shared(tmp_path / "shared")
