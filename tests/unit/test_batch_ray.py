"""``dav2 batch --engine ray``: a local Ray cluster with 2 CPU workers, one Ray session for the module.

Checks the same bytes as the single-process CLI, failures recorded without stopping, and a worker killed
mid-run (after writing a batch, before reporting it): every image done exactly once, nothing lost.
"""

from __future__ import annotations

import logging
import os

import pytest

ray = pytest.importorskip("ray")
#: Ray clusters take tens of seconds to start: the slow tier (left out of make test-fast).
pytestmark = pytest.mark.slow
pytest.importorskip("ray.data")

from batch_helpers import (  # noqa: E402
    assert_same_outputs,
    dataset,
    models_dir,
    one_cpu_thread,
    read_manifest,
    run_batch_cli,
    small_job,
)
from dav2_core import io  # noqa: E402
from dav2_core.batch import KillOnce, run_batch  # noqa: E402
from dav2_core.batch.ray_engine import RayEngine  # noqa: E402

__all__ = ["dataset", "models_dir", "one_cpu_thread"]  # fixtures used by the tests below


@pytest.fixture(scope="module")
def ray_session(one_cpu_thread):
    """One local Ray cluster (2 CPUs) shared by the module; dav2 batch reuses a connected session."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_two_workers_write_what_one_process_writes(ray_session, dataset, models_dir, tmp_path) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    assert run_batch_cli(source, out, models_dir, "--engine", "ray", "--num-workers", "2", "--batch-size", "2") == 1
    assert_same_outputs(reference, out)
    rows = read_manifest(out)
    assert sorted(row["status"] for row in rows) == ["done"] * 9 + ["failed"]
    error = next(row["error"] for row in rows if row["status"] == "failed")
    assert "not a readable image" in error or "corrupt JPEG data" in error
    assert all(row["worker"] and row["kind"] == "relative" for row in rows if row["status"] == "done")


def test_a_killed_worker_loses_no_work(ray_session, dataset, models_dir, tmp_path, monkeypatch) -> None:
    source, reference = dataset
    listing = tmp_path / "list.txt"  # the folder's files in the CLI's order, then a path that does not exist
    files = [item.path for item in io.collect_inputs([source], recursive=True)]
    listing.write_text("\n".join(map(str, files)) + f"\n{source / 'gone.png'}\n")
    monkeypatch.setattr(RayEngine, "local_scan_rows", 0)  # the scan as Ray Data tasks too
    out = tmp_path / "out"
    args = [str(listing), "-o", str(out), "--root", str(source), "--npy", "--batch-size", "2"]
    job = small_job(models_dir, *args, "--engine", "ray", "--num-workers", "2")
    marker = tmp_path / "killed"
    summary = run_batch(job, fault=KillOnce(str(marker), after_batches=1))
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # that worker process is gone ...
    assert summary.results == 9 and summary.processed == 9  # ... yet every image was reported exactly once
    assert_same_outputs(reference, out)
    rows = read_manifest(out)
    assert [row["index"] for row in rows] == list(range(11))
    assert sorted(row["status"] for row in rows) == ["done"] * 9 + ["failed"] * 2
    assert "cannot read the file" in rows[-1]["error"]
    workers = {row["worker"] for row in rows if row["status"] == "done"}
    assert any(name.endswith(f":{killed}") for name in workers) and len(workers) >= 2
    again = run_batch(job)  # a rerun finds everything verified and starts no worker
    assert again.processed == 0 and again.reused == 9 and not again.workers


def test_a_model_the_workers_cannot_load_is_a_clear_error(ray_session, dataset, models_dir, tmp_path, capsys) -> None:
    source, _ = dataset
    code = run_batch_cli(source, tmp_path / "out", models_dir, "--engine", "ray", "--device", "cuda:7")
    assert code == 2
    err = capsys.readouterr().err
    assert "dav2 batch: error: the Ray workers stopped:" in err and "CUDA is not available here" in err
    assert all(row["status"] in ("pending", "failed") for row in read_manifest(tmp_path / "out"))
