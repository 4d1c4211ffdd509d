"""benchmarks/gpu_first_run.sh is rehearsed here, without a GPU, so a short GPU slot measures instead of debugging:
the CPU dry run goes through every step (tiny sizes, CUDA-only steps marked skipped), prints one table and
writes the merged JSON (also to $OUT, as the device tool collects it); budget and failures are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_first_run.sh"

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="rehearses the no-GPU dry run")


def _run(*args: str, out: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _table(stdout: str) -> dict[str, str]:
    """step -> status from the summary table at the end of the output."""
    lines = stdout[stdout.rindex("=== summary") :].splitlines()
    rows = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {
            "env",
            "smoke",
            "sdpa",
            "chunks",
            "oom",
            "compile",
            "bench_gpu",
            "bench_memory",
        }:
            rows[parts[0]] = " ".join(parts[1:3]) if parts[1] in ("not", "no", "TIMED") else parts[1]
    return rows


def test_dry_run_goes_through_the_steps_and_reports(tmp_path: Path):
    results, out = tmp_path / "results", tmp_path / "out"
    out.mkdir()
    proc = _run("--cpu-dry-run", "--results", str(results), "--skip", "compile,bench_memory", out=out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert _table(proc.stdout) == {
        "env": "ok",
        "smoke": "ok",
        "sdpa": "ok",
        "chunks": "ok",
        "oom": "skipped",
        "compile": "not run",
        "bench_gpu": "skipped",
        "bench_memory": "not run",
    }
    merged = json.loads((results / "gpu_first_run.json").read_text())
    assert merged["dry_run"] is True and set(merged["steps"]) >= {"env", "smoke", "sdpa", "oom", "bench_gpu"}
    smoke = merged["steps"]["smoke"]["result"]
    assert smoke["tf32"]["cudnn_allow_tf32"] is False and smoke["tf32"]["float32_matmul_precision"] == "highest"
    assert {(r["dtype"], r["finite"]) for r in smoke["rows"]} == {("fp32", True), ("bf16", True)}
    sdpa = merged["steps"]["sdpa"]["result"]["rows"]
    assert {r["backend"] for r in sdpa} >= {"default", "flash", "efficient", "math"}
    assert all("max_abs_err" in r or "unsupported" in r for r in sdpa)
    chunks = merged["steps"]["chunks"]["result"]
    assert chunks["rows"] and all(r["ok"] for r in chunks["rows"])
    assert merged["steps"]["env"]["run"]["rc"] == "0" and int(merged["steps"]["env"]["run"]["seconds"]) >= 0
    assert (results / "photos.txt").read_text().strip()
    # What the device tool brings back: the merged JSON, the log and the benchmark JSON, under $OUT.
    assert sorted(p.name for p in out.iterdir()) == ["bench_gpu.json", "gpu_first_run.json", "gpu_first_run.log"]
    assert "=== summary" in (out / "gpu_first_run.log").read_text()


def test_failures_and_the_time_budget_are_reported(tmp_path: Path):
    # Without --cpu-dry-run on a machine without CUDA, each step fails on its own and the next still runs.
    proc = _run("--results", str(tmp_path / "real"), "--only", "env,chunks")
    assert proc.returncode == 1
    assert _table(proc.stdout) == {
        "env": "fail",
        "smoke": "not run",
        "sdpa": "not run",
        "chunks": "fail",
        "oom": "not run",
        "compile": "not run",
        "bench_gpu": "not run",
        "bench_memory": "not run",
    }
    assert "no CUDA device (use --cpu-dry-run" in proc.stdout
    # A budget too small for any step: nothing runs, the table says why, the exit status says incomplete.
    proc = _run("--cpu-dry-run", "--results", str(tmp_path / "budget"), "--budget", "20", "--only", "env")
    assert proc.returncode == 1 and _table(proc.stdout)["env"] == "no time"
    proc = _run("--warp-speed")
    assert proc.returncode == 2 and "unknown option --warp-speed" in proc.stderr


@pytest.mark.slow
def test_dry_run_compile_and_memory_steps(tmp_path: Path):
    """The two slow steps of the dry run: compilation of the real network (twice: a recompile) and bench_memory."""
    results = tmp_path / "results"
    proc = _run(
        "--cpu-dry-run",
        "--results",
        str(results),
        "--only",
        "env,compile,bench_memory",
        "--budget",
        "900",
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    table = _table(proc.stdout)
    assert table["compile"] == "ok" and table["bench_memory"] == "ok"
    compiled = json.loads((results / "compile.json").read_text())
    assert compiled["stats"]["compiles"] == 2 and compiled["stats"]["eager_calls"] == 0
    assert "Recompiling function forward" in (results / "gpu_first_run.log").read_text()  # recompile logging is on
    memory = json.loads((results / "bench_memory.json").read_text())
    assert [r["chunks"] for r in memory["results"]] == [1, 2]
