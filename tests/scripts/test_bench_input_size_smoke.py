"""Smoke test for benchmarks/bench_input_size.py: a tiny run end to end on a tiny shared-folder layout writes
well-formed JSON with a row per input size and TTA mode, and the reference row agrees with itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_shared(tmp_path: Path) -> Path:
    """../shared's layout with one 84x112 NYU-like frame (16-bit mm depth, 0 = invalid)."""
    shared = tmp_path / "shared"
    (shared / "depth_gt/nyu/rgb").mkdir(parents=True)
    (shared / "depth_gt/nyu/depth").mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:84, 0:112]
    photo = np.clip(np.stack([xx * 2, yy * 3, (xx + yy)], -1) + rng.integers(0, 40, (84, 112, 3)), 0, 255)
    assert cv2.imwrite(str(shared / "depth_gt/nyu/rgb/rgb_00000.jpg"), photo.astype(np.uint8))
    depth = (1000 + 20 * xx + 10 * yy).astype(np.uint16)
    depth[:5, :5] = 0
    assert cv2.imwrite(str(shared / "depth_gt/nyu/depth/sync_depth_00000.png"), depth)
    return shared


def test_bench_input_size_runs_and_reports_every_row(tiny_shared: Path, tmp_path: Path):
    out = tmp_path / "input_size.json"
    args = [
        "--shared",
        str(tiny_shared),
        "--sets",
        "nyu",
        "--photo",
        str(tiny_shared / "depth_gt/nyu/rgb/rgb_00000.jpg"),
    ]
    args += ["--sizes", "28,42", "--reference", "42", "--tta-size", "42", "--runs", "1", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_input_size.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "input_size" and "random-init" in report["weights"] and "random" in report["note"]
    rows = {(r["input_size"], r["tta"]): r for r in report["results"]}
    assert set(rows) == {(28, "none"), (42, "none"), (42, "flip"), (42, "multi_scale"), (42, "multi_scale_flip")}
    ref = rows[(42, "none")]
    assert ref["speedup"] == 1.0 and ref["agree_err"] < 1e-6 and ref["agree_r"] > 0.9999
    for row in rows.values():
        assert row["ms_per_image"] > 0 and row["photos"] == 1 and row["gt_photos"] == 1
        assert 0 <= row["abs_rel"] and 0 <= row["delta1"] <= 1
    assert rows[(42, "flip")]["agree_err"] > 0  # TTA changes the map
    assert ref["cost"] == 1.0 and rows[(42, "flip")]["cost"] == 2.0  # forward FLOPs, machine-independent
    assert 2.5 < rows[(42, "multi_scale")]["cost"] < 4 and rows[(28, "none")]["cost"] < 1
    assert "x vs 42" in proc.stdout and "multi_scale_flip" in proc.stdout
