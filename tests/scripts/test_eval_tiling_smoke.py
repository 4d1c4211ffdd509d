"""Smoke test for benchmarks/eval_tiling.py: runs end to end on a tiny shared-folder layout and writes
well-formed JSON; its tiled map is the product path's (estimate with resolution 'tiled')."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_scripts import benchmark_report

pytest.importorskip("depth_anything_v2.dpt", reason="official jkp-depth-anything-v2 not installed (seeded weights)")


def test_eval_tiling_runs_and_reports_seams(tiny_shared: Path, tmp_path: Path):
    args = ["--shared", str(tiny_shared), "--sets", "nyu,photos", "--input-size", "28"]
    args += ["--tile-size", "42", "--tile-overlap", "14", "--max-tiles", "6"]
    report, stdout = benchmark_report("eval_tiling.py", *args, out=tmp_path / "tiling.json")
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
    assert "seam tiled" in stdout
