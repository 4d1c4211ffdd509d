"""Smoke test for benchmarks/bench_video.py at tiny sizes: it runs end to end and writes well-formed JSON
(no timing or memory target is asserted: benchmarks are not timed tests), and its synthetic clip really has
a static region for the flicker metric."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("depth_anything_v2.dpt", reason="official jkp-depth-anything-v2 not installed (seeded weights)")

from benchmarks import bench_video  # noqa: E402
from bench_scripts import benchmark_report  # noqa: E402
from video_clips import decoded  # noqa: E402


def test_bench_video_writes_rows_flicker_and_targets(tmp_path: Path):
    args = ["--frames", "3,5", "--width", "64", "--height", "48", "--input-size", "28"]
    args += ["--flicker-modes", "per_frame,two_pass", "--repeats", "1"]
    report, _ = benchmark_report("bench_video.py", *args, out=tmp_path / "video.json")
    assert report["benchmark"] == "video" and report["settings"]["frames"] == [3, 5]
    cpu = [r for r in report["results"] if r["device"] == "cpu"]
    assert [r["frames"] for r in cpu] == [3, 5]  # --repeats 1
    for row in cpu:
        assert row["range_mode"] == "two_pass" and row["passes"] == 2 and row["frames_per_s"] > 0
        assert row["peak_rss_growth_mib"] >= 0 and row["model_mib"] > 0 and row["memory_method"]
    assert [f["range_mode"] for f in report["flicker"]] == ["per_frame", "two_pass"]
    assert all(0.0 <= f["flicker"] <= 1.0 and 0.0 <= f["flicker_encoded"] <= 1.0 for f in report["flicker"])
    assert set(report["targets"]) == {"rss_ratio_last_to_first", "rss_ratio_ok", "rss_growth_below_2gib"}
    summary = [r for r in report["summary"] if r["device"] == "cpu"]
    assert [(r["frames"], r["runs"]) for r in summary] == [(3, 1), (5, 1)]
    assert summary[0]["peak_rss_median_mib"] == cpu[0]["peak_rss_growth_mib"]
    assert report["targets"]["rss_ratio_last_to_first"] == pytest.approx(
        summary[1]["peak_rss_median_mib"] / summary[0]["peak_rss_median_mib"]
    )
    if not torch.cuda.is_available():
        assert report["gpu"] == {"skipped": "no CUDA device"}


def test_synthetic_clip_is_static_below_the_moving_shapes(tmp_path: Path):
    clip = bench_video.make_clip(tmp_path / "c.mp4", 6, 160, 96)
    frames = np.stack(decoded(clip)[0]).astype(np.float32)
    assert frames.shape == (6, 96, 160, 3)
    static = frames[:, int(96 * bench_video.STATIC_FROM) :]
    moving = frames[:, : 96 // 2]
    still, changing = np.abs(np.diff(static, axis=0)).mean(), np.abs(np.diff(moving, axis=0)).mean()
    assert still < 0.5 and changing > 4 * max(still, 0.1), (still, changing)  # codec noise only / the shapes move
    assert bench_video.flicker(clip) >= 0.0


def test_bench_video_vda_rows(tmp_path: Path):
    """--vda: memory rows of our VDA per clip length, inference frames/s of ours and the official code (when
    ../shared/vendor holds it), flicker of DA-V2, DA-V2 + alignment and VDA; targets present."""
    args = ["--vda", "--frames", "3,5", "--width", "64", "--height", "48", "--input-size", "28", "--repeats", "1"]
    report, _ = benchmark_report("bench_video.py", *args, out=tmp_path / "vda.json")
    assert report["benchmark"] == "video_vda"
    models = [(r["frames"], r["model"]) for r in report["rows"]]
    assert (3, "vda (ours, depth_video)") in models and (5, "vda (ours, depth_video)") in models
    assert (3, "vda (ours, inference only)") in models
    if report["official"] == "ran":
        assert (3, "vda (official, inference only)") in models and (5, "vda (official, inference only)") not in models
        assert report["targets"]["speedup_vs_official"]["3"] > 0
    assert all(r["frames"] in (3, 5) and r["frames_per_s"] > 0 for r in report["rows"])
    assert [f["model"] for f in report["flicker"]] == [
        "DA-V2 per frame",
        "DA-V2 + temporal alignment",
        "VDA (offline windows)",
    ]
    assert all(0.0 <= f["flicker"] <= 1.0 for f in report["flicker"])
    assert report["targets"]["rss_ratio_last_to_first"] is not None
