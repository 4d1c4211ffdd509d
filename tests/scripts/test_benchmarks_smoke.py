"""Smoke tests for benchmarks/: each script runs end to end with the smallest settings and writes
well-formed JSON, so the scripts do not rot. No timing is asserted (benchmarks are not timed tests)."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("depth_anything_v2.dpt", reason="official jkp-depth-anything-v2 not installed")

from bench_scripts import benchmark_report, run_benchmark  # noqa: E402
from benchmarks import bench_gpu  # noqa: E402
from benchmarks.accuracy import compare  # noqa: E402
from benchmarks.memory import PeakRss  # noqa: E402
from benchmarks.models import seeded_models  # noqa: E402

MACHINE_KEYS = {"cpu_model", "cpu_count", "torch", "torch_threads"}
#: One timed call, no warm-up, a 28 px network input: the quickest timing run of bench_cpu / bench_gpu.
QUICK_TIMING = ["--runs", "1", "--warmup", "0", "--input-size", "28"]


@pytest.fixture
def tiny_photo(tmp_path: Path) -> Path:
    """A 56x70 textured photo in its own folder (so --images can point at the folder)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:56, 0:70]
    image = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1) + rng.integers(0, 40, (56, 70, 3))
    path = folder / "tiny.png"
    assert cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
    return path


def _run(script: str, *args: str, out: Path) -> dict:
    """The JSON report of a successful run of ``benchmarks/<script>``."""
    return benchmark_report(script, *args, out=out)[0]


def test_bench_cpu_writes_results_and_parity(tiny_photo: Path, tmp_path: Path):
    args = ["--photo", str(tiny_photo), "--images", str(tiny_photo.parent), "--encoders", "vits", "--batches", "2"]
    report = _run("bench_cpu.py", *args, "--bf16-batches", "", *QUICK_TIMING, out=tmp_path / "cpu.json")
    assert report["benchmark"] == "cpu"
    assert MACHINE_KEYS <= report["machine"].keys()
    assert report["settings"]["photo_size_hw"] == [56, 70]
    assert all(side % 14 == 0 for side in report["settings"]["network_size_hw"])
    assert report["settings"]["compile"] is None
    rows = {(r["impl"], r["dtype"], r["batch"]): r for r in report["results"] if r["impl"] != "backend"}
    assert all(r["mode"] == "eager" for r in rows.values())
    assert set(rows) == {("official", "fp32", 1), ("ours_infer_image", "fp32", 1), ("ours_tensor", "fp32", 2)}
    # a row per installed runtime backend, exact (fp32) ones at parity with official, int8 close
    from benchmarks.backends import cpu_rows

    backend_rows = {(r["backend"], r["dtype"]) for r in report["results"] if r["impl"] == "backend"}
    assert backend_rows == set(cpu_rows(None))
    assert all(r["floor_efficiency"] > 0 for r in report["results"]) and report["floor"]["vits"]["floor_ms"] > 0
    for entry in report["backend_accuracy"]:
        limit = 1e-3 if entry["precision"] == "fp32" else 0.2
        assert entry["vs_official"]["max_abs_over_range"] <= limit, entry
    for row in rows.values():
        assert row["median_ms_per_image"] > 0 and len(row["call_ms"]) == 1
        assert row["peak_rss_mib"] >= 0 and row["memory_method"]
    assert rows[("official", "fp32", 1)]["speedup_vs_official"] == 1.0
    batched = rows[("ours_tensor", "fp32", 2)]
    assert batched["median_ms_per_image"] == pytest.approx(batched["call_ms"][0] / 2)
    (acc,) = report["accuracy"]
    assert acc["encoder"] == "vits" and [p["photo"] for p in acc["photos"]] == ["tiny.png"]
    # Same weights, same photo: our infer_image is the official model (the parity the table proves).
    parity = acc["worst"]["ours_infer_image_vs_official"]
    assert parity["pearson"] >= 0.9999 and parity["max_abs_over_range"] <= 1e-3
    assert acc["worst"]["ours_tensor_bf16_vs_fp32"]["pearson"] > 0.9


def test_bench_cpu_unknown_compile_mode_is_refused_before_measuring(tmp_path: Path):
    proc = run_benchmark("bench_cpu.py", "--compile", "warp-speed", "--out", str(tmp_path / "cpu.json"), timeout=300)
    assert proc.returncode != 0
    assert "--compile: unknown mode 'warp-speed'" in proc.stderr
    assert not (tmp_path / "cpu.json").exists()


def test_bench_memory_compares_frame_counts(tiny_photo: Path, tmp_path: Path):
    args = ["--photo", str(tiny_photo), "--frames", "1,3", "--height", "42", "--width", "56", "--input-size", "28"]
    report = _run("bench_memory.py", *args, out=tmp_path / "memory.json")
    assert report["benchmark"] == "memory" and MACHINE_KEYS <= report["machine"].keys()
    assert [r["frames"] for r in report["results"]] == [1, 3]
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert report["device"] == expected_device
    key = "peak_above_weights_mib" if expected_device == "cuda" else "peak_beyond_output_mib"
    for row in report["results"]:
        assert row["frames_per_s"] > 0 and key in row
        assert row["output_mib"] == pytest.approx(row["frames"] * 42 * 56 * 4 / 2**20)
    if expected_device == "cpu":  # fixed chunks of 2 by default: 3 frames run as two chunks
        assert [(r["chunk_size"], r["chunks"]) for r in report["results"]] == [(2, 1), (2, 2)]
    assert report["settings"]["tf32"]["float32_matmul_precision"] in ("highest", "high", "medium")
    if expected_device == "cpu":
        assert "reduced CPU version" in report["note"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_bench_gpu_skips_cleanly_without_cuda(tmp_path: Path):
    assert _run("bench_gpu.py", out=tmp_path / "gpu.json") == {"skipped": "no CUDA device"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_gpu_smoke_on_cuda(tiny_photo: Path, tmp_path: Path):
    args = ["--photo", str(tiny_photo), "--encoders", "vits", "--batches", "1,2", "--size", "28"]
    report = _run("bench_gpu.py", *args, *QUICK_TIMING, out=tmp_path / "gpu.json")
    assert report["benchmark"] == "gpu" and "gpu" in report["machine"]
    assert len(report["throughput"]) == 3 * 2
    assert all(r["images_per_s"] > 0 and r["peak_allocated_mib"] > 0 for r in report["throughput"])
    assert report["accuracy"]["parity"][0]["pearson"] >= 0.9999


def test_gpu_benchmark_helpers_run_on_cpu(tiny_photo: Path):
    """The GPU script's measuring functions are device-agnostic; exercise them on the CPU."""
    _, model = seeded_models("vits")
    bgr = cv2.imread(str(tiny_photo))
    row = bench_gpu.infer_image_row(model, bgr, 28, runs=2, warmup=0)
    assert row["median_ms_per_image"] > 0 and len(row["call_ms"]) == 2
    images = torch.rand(3, 28, 28, 3, generator=torch.Generator().manual_seed(0))
    row = bench_gpu.throughput_row(model, images, 28, runs=1, warmup=0)
    assert row["images_per_s"] == pytest.approx(3000 / row["ms_per_call"])
    assert row["oom_retries"] == 0 and "peak_allocated_mib" not in row  # CUDA-only figure
    errors = bench_gpu.precision_errors(model, [tiny_photo], ["fp32", "bf16"], 28)
    assert set(errors["worst"]) == {"bf16_vs_fp32"}
    assert 0 < errors["worst"]["bf16_vs_fp32"]["mean_abs_over_range"] < 0.1


def test_compiled_rows_say_what_ran_and_tf32_is_recorded(tiny_photo: Path, monkeypatch):
    """Compiled rows count the timed calls that really ran compiled (from the engine's compile_stats)."""
    import argparse

    def fake_compile(fn, **kwargs):
        stats = kwargs["backend"].stats

        def compiled(x):
            if x.shape[0] == 2:
                raise RuntimeError("FailOnRecompileLimitHit: recompile_limit reached (simulated)")
            stats.compiled_calls += 1
            return fn(x)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    _, model = seeded_models("vits")
    square = cv2.resize(cv2.imread(str(tiny_photo)), (28, 28))
    args = argparse.Namespace(batches=[1, 2], input_size=28, runs=2, warmup=1, compile="auto")
    with pytest.warns(RuntimeWarning, match="ran without compilation"):
        rows = bench_gpu.variant_rows(model, square, "vits", "fp32", "compiled", args)
    assert [(r["batch"], r["ran_compiled"], r["timed_compiled_calls"], r["timed_eager_calls"]) for r in rows] == [
        (1, True, 2, 0),
        (2, False, 0, 2),
    ]
    assert "forward" not in model.__dict__  # the benchmark compiled a copy and released it
    eager = bench_gpu.variant_rows(model, square, "vits", "fp32", "eager", args)
    assert all("ran_compiled" not in r for r in eager)

    from benchmarks.models import set_tf32, tf32_flags

    saved = tf32_flags()
    try:
        flags = set_tf32(False)
        assert not flags["cuda_matmul_allow_tf32"] and not flags["cudnn_allow_tf32"]
        assert flags["float32_matmul_precision"] == "highest"
        assert set_tf32(True)["cudnn_allow_tf32"]
    finally:
        set_tf32(saved["cudnn_allow_tf32"])
        torch.backends.cuda.matmul.allow_tf32 = saved["cuda_matmul_allow_tf32"]
        torch.set_float32_matmul_precision(saved["float32_matmul_precision"])


def test_compare_metrics():
    ref = np.linspace(0.0, 2.0, 100, dtype=np.float32).reshape(10, 10)
    got = ref.copy()
    got[0, 0] += 0.2
    result = compare(ref, torch.from_numpy(got))
    assert result["max_abs_over_range"] == pytest.approx(0.1)
    assert result["mean_abs_over_range"] == pytest.approx(0.001)
    assert 0.99 < result["pearson"] < 1.0
    with pytest.raises(ValueError, match="shapes"):
        compare(ref, ref[:5])
    with pytest.raises(ValueError, match="constant"):
        compare(np.ones((4, 4)), ref[:4, :4])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_sees_a_freed_allocation():
    rss = PeakRss()
    rss.start()
    block = mmap.mmap(-1, 64 << 20)  # 64 MiB of fresh pages (not recycled from the allocator), touched, freed
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    block.close()
    assert rss.peak_growth() >= 60 << 20
    rss.start()  # the earlier peak is forgotten after a reset (Linux clear_refs)
    if rss.method == "VmHWM-reset":
        assert rss.peak_growth() < 60 << 20


def test_bench_scale_reports_throughput_and_a_killed_worker(tmp_path: Path):
    pytest.importorskip("ray.data", reason="the ray extra is not installed")
    args = ["--images", "12", "--workers", "1", "--batch-size", "4", "--input-size", "28"]
    report = _run("bench_scale.py", *args, "--work-dir", str(tmp_path / "work"), out=tmp_path / "scale.json")
    assert report["benchmark"] == "scale" and MACHINE_KEYS <= report["machine"].keys()
    plain, killed = report["results"]
    assert plain["run"] == "1 worker(s)" and killed["run"] == "1 workers, 1 killed"
    for row in (plain, killed):
        assert row["manifest_complete"] and row["results_reported"] == 12 and row["images_per_s"] > 0
        assert row["max_worker_peak_rss_mib"] > 0
    assert killed["exactly_once"] and killed["identical_to_first"] and killed["worker_processes"] == 2
