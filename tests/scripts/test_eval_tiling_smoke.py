"""Smoke test for benchmarks/eval_tiling.py: runs end to end on a tiny shared-folder layout and writes
well-formed JSON; its tiled map is the product path's (estimate with resolution 'tiled')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("depth_anything_v2.dpt", reason="official jkp-depth-anything-v2 not installed (seeded weights)")


@pytest.fixture
def tiny_shared(tmp_path: Path) -> Path:
    """../shared's layout with one 84x112 NYU-like frame (16-bit mm depth, 0 = invalid) and one photo."""
    shared = tmp_path / "shared"
    (shared / "depth_gt/nyu/rgb").mkdir(parents=True)
    (shared / "depth_gt/nyu/depth").mkdir(parents=True)
    (shared / "images").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:84, 0:112]
    photo = np.stack([xx * 2, yy * 3, (xx + yy)], -1) + rng.integers(0, 40, (84, 112, 3))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    assert cv2.imwrite(str(shared / "depth_gt/nyu/rgb/rgb_00000.jpg"), photo)
    assert cv2.imwrite(str(shared / "images/demo.jpg"), photo[:, ::-1])
    depth = (1000 + 20 * xx + 10 * yy).astype(np.uint16)
    depth[:5, :5] = 0
    assert cv2.imwrite(str(shared / "depth_gt/nyu/depth/sync_depth_00000.png"), depth)
    return shared


def test_eval_tiling_runs_and_reports_seams(tiny_shared: Path, tmp_path: Path):
    out = tmp_path / "tiling.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "eval_tiling.py"),
            "--shared",
            str(tiny_shared),
            "--sets",
            "nyu,photos",
            "--input-size",
            "28",
            "--tile-size",
            "42",
            "--tile-overlap",
            "14",
            "--max-tiles",
            "6",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "tiling" and "random-init" in report["weights"]
    rows = {r["sample"]: r for r in report["results"]}
    assert set(rows) == {"nyu/rgb_00000", "photos/demo"}
    nyu = rows["nyu/rgb_00000"]
    assert 1 < nyu["tiles"] <= 6
    assert nyu["path_max_abs_diff"] < 1e-4  # the benchmark measures what resolution='tiled' computes
    for key in (
        "seam_plain",
        "seam_tiled",
        "seam_hard",
        "seam_naive",
        "abs_rel_plain",
        "abs_rel_tiled",
        "delta1_tiled",
        "img_edge_tiled",
    ):
        assert isinstance(nyu[key], float), key
    assert "seam_tiled" in rows["photos/demo"] and "abs_rel_tiled" not in rows["photos/demo"]
    assert "seam tiled" in proc.stdout
