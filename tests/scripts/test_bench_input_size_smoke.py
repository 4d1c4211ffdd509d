"""Smoke test for benchmarks/bench_input_size.py: a tiny run end to end on a tiny shared-folder layout writes
well-formed JSON with a row per input size and TTA mode, and the reference row agrees with itself."""

from __future__ import annotations

from pathlib import Path

from bench_scripts import TINY_NYU_PHOTO, benchmark_report


def test_bench_input_size_runs_and_reports_every_row(tiny_shared: Path, tmp_path: Path):
    args = ["--shared", str(tiny_shared), "--sets", "nyu", "--photo", str(tiny_shared / TINY_NYU_PHOTO)]
    args += ["--sizes", "28,42", "--reference", "42", "--tta-size", "42", "--runs", "1"]
    report, stdout = benchmark_report("bench_input_size.py", *args, out=tmp_path / "input_size.json")
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
    assert "x vs 42" in stdout and "multi_scale_flip" in stdout
