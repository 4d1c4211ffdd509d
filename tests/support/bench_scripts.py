"""Shared by the benchmark smoke tests (tests/scripts): running a script of benchmarks/ as its users do, and
a tiny copy of the ../shared folder's layout for the scripts that read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: The NYU-like frame of :func:`make_tiny_shared`, relative to the folder.
TINY_NYU_PHOTO = "depth_gt/nyu/rgb/rgb_00000.jpg"


def run_benchmark(script: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` with ``args`` in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def benchmark_report(script: str, *args: str, out: Path) -> tuple[dict[str, Any], str]:
    """Run the script with ``--out out``, assert it succeeded; the JSON report it wrote and its stdout."""
    proc = run_benchmark(script, *args, "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def make_tiny_shared(folder: Path) -> Path:
    """``folder`` laid out like ../shared: one 84x112 NYU-like frame with 16-bit mm depth (0 = invalid) and
    its mirror image as the one photo of ``images/``."""
    (folder / "depth_gt/nyu/rgb").mkdir(parents=True)
    (folder / "depth_gt/nyu/depth").mkdir(parents=True)
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:84, 0:112]
    photo = np.stack([xx * 2, yy * 3, (xx + yy)], -1) + rng.integers(0, 40, (84, 112, 3))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    assert cv2.imwrite(str(folder / TINY_NYU_PHOTO), photo)
    assert cv2.imwrite(str(folder / "images/demo.jpg"), photo[:, ::-1])
    depth = (1000 + 20 * xx + 10 * yy).astype(np.uint16)
    depth[:5, :5] = 0
    assert cv2.imwrite(str(folder / "depth_gt/nyu/depth/sync_depth_00000.png"), depth)
    return folder
