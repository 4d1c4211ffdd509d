"""``dav2 batch`` with the local engine: same numbers as the CLI, manifest, resume, retries and bad input.

CPU only, a seeded random-init vits checkpoint, tiny images and ``--input-size 70``. The Ray engine is
tested in test_batch_ray.py; here only its import and connection errors (no cluster is started).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from batch_helpers import (  # noqa: E402
    assert_same_outputs,
    dataset,
    models_dir,
    one_cpu_thread,
    read_manifest,
    run_batch_cli,
    small_job,
    write_image,
)
from dav2_core.batch import BatchError, BatchJob, MANIFEST_FILE, manifest_schema, run_batch, worker  # noqa: E402
from dav2_core.cli.batch import parse_job  # noqa: E402
from dav2_core.effects.export import load_depth  # noqa: E402

__all__ = ["dataset", "models_dir", "one_cpu_thread"]  # fixtures used by the tests below


def count_batches(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[int]:
    """Record the size of every batch a worker runs; with ``stop_after``, Ctrl-C before that batch + 1."""
    sizes: list[int] = []
    real = worker.process_images

    def spy(model, items, *args, **kwargs):
        if stop_after is not None and len(sizes) == stop_after:
            raise KeyboardInterrupt
        sizes.append(len(items))
        return real(model, items, *args, **kwargs)

    monkeypatch.setattr(worker, "process_images", spy)
    return sizes


# ------------------------------------------------------------------------------ numbers and manifest
def test_local_engine_writes_what_the_cli_writes(dataset, models_dir, tmp_path, capsys) -> None:
    source, reference = dataset
    assert run_batch_cli(source, tmp_path / "out", models_dir, "--batch-size", "2") == 1  # the corrupt file failed
    assert_same_outputs(reference, tmp_path / "out")
    assert "broken.jpg" in capsys.readouterr().err


def test_manifest_schema_and_rows(dataset, models_dir, tmp_path) -> None:
    import pyarrow.parquet as pq

    source, _ = dataset
    out = tmp_path / "out"
    summary = run_batch(small_job(models_dir, str(source), "-o", str(out), "--batch-size", "4"))
    assert pq.read_schema(out / MANIFEST_FILE).equals(manifest_schema())
    rows = read_manifest(out)
    assert [row["index"] for row in rows] == list(range(10))
    broken = next(row for row in rows if row["input"].endswith("broken.jpg"))
    assert broken["status"] == "failed" and broken["attempts"] == 1
    assert "not a readable image" in broken["error"] or "corrupt JPEG data" in broken["error"]
    assert broken["output"] is None and broken["size"] is None
    done = [row for row in rows if row["status"] == "done"]
    assert len(done) == 9 and summary.processed == 9 and summary.count("done") == 9
    for row in done:
        assert (out / row["output"]).is_file() and row["output"].endswith("_depth.png")
        assert Path(row["input"]).stem in row["output"]
        assert row["kind"] == "relative" and row["units"] == "relative" and row["error"] is None
        assert row["attempts"] == 1 and row["worker"] and row["seconds"] > 0
    sub = next(row for row in done if "/sub/" in row["input"])
    assert sub["output"].startswith("sub/")
    assert tuple(next(row for row in done if row["input"].endswith("img000.png"))["size"]) == (48, 64)
    assert "1 failed" in summary.format() and "images/s" in summary.format()


# ------------------------------------------------------------------------------ resume and retries
def test_interrupted_run_resumes_with_the_same_numbers(dataset, models_dir, tmp_path, monkeypatch, capsys) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    first = count_batches(monkeypatch, stop_after=2)
    assert run_batch_cli(source, out, models_dir, "--batch-size", "2") == 130
    rows = read_manifest(out)
    assert len(first) == 2 and sum(row["status"] == "done" for row in rows) == sum(first)
    assert sum(row["status"] == "pending" for row in rows) == 9 - sum(first)
    assert "rerun the same command to resume" in capsys.readouterr().err
    monkeypatch.undo()
    second = count_batches(monkeypatch)
    assert run_batch_cli(source, out, models_dir, "--batch-size", "2") == 1
    assert len(second) == 4 and sum(second) == 9 - sum(first)  # 3 sizes x (2 + 1): 6 batches, 2 done before
    assert_same_outputs(reference, out)
    assert sum(row["status"] == "done" for row in read_manifest(out)) == 9


def test_rerun_skips_verified_outputs_and_redoes_broken_ones(dataset, models_dir, tmp_path, monkeypatch) -> None:
    source, reference = dataset
    out = tmp_path / "out"
    assert run_batch_cli(source, out, models_dir, "--batch-size", "2") == 1
    (out / "img000_depth.npy").unlink()  # deleted output
    write_image(out / "sub" / "img001_depth.png", 10, 10, seed=0)  # wrong size: must not verify
    np.save(out / "img002_depth.npy", np.zeros((3, 3), np.float32))  # wrong shape
    sizes = count_batches(monkeypatch)
    assert run_batch_cli(source, out, models_dir, "--batch-size", "2") == 1
    assert len(sizes) == 3  # the three batches holding a broken output ran again, whole (same composition)
    assert_same_outputs(reference, out)
    monkeypatch.undo()
    sizes = count_batches(monkeypatch)
    assert run_batch_cli(source, out, models_dir, "--batch-size", "2", "--exr") == 1
    assert sum(sizes) == 9 and (out / "img000_depth.exr").is_file()  # a newly asked-for format: all images
    meta = json.loads((out / "img000_depth.exr.json").read_text())
    assert meta["kind"] == "relative" and meta["units"] == "relative" and meta["shape"] == [48, 64]
    assert np.array_equal(load_depth(out / "img000_depth.exr").values[0].numpy(), np.load(out / "img000_depth.npy"))


def test_failures_are_retried_up_to_max_attempts(models_dir, tmp_path, monkeypatch) -> None:
    source = tmp_path / "src"
    write_image(source / "good.png", 40, 40, seed=1)
    (source / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    for attempt in (1, 2, 2):  # the third run leaves the final failure alone
        assert run_batch_cli(source, out, models_dir, "--max-attempts", "2") == 1
        bad = next(row for row in read_manifest(out) if row["input"].endswith("bad.png"))
        assert bad["status"] == "failed" and bad["attempts"] == attempt
    write_image(source / "bad.png", 40, 40, seed=2)  # repaired
    assert run_batch_cli(source, out, models_dir, "--max-attempts", "2") == 1  # still final
    assert run_batch_cli(source, out, models_dir, "--max-attempts", "2", "--retry-failed") == 0
    assert all(row["status"] == "done" for row in read_manifest(out))


def test_other_settings_into_the_same_folder_are_refused(dataset, models_dir, tmp_path, capsys) -> None:
    source, _ = dataset
    out = tmp_path / "out"
    assert run_batch_cli(source, out, models_dir) == 1
    capsys.readouterr()
    assert run_batch_cli(source, out, models_dir, "--invert") == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "invert" in err and "--overwrite" in err
    assert run_batch_cli(source, out, models_dir, "--invert", "--overwrite") == 1


# ------------------------------------------------------------------------------ bad input
def test_list_with_duplicates_missing_and_unsupported_entries(models_dir, tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    write_image(root / "a.png", 40, 40, seed=1)
    write_image(root / "b" / "c.png", 48, 64, seed=2)
    listing = tmp_path / "data" / "list.txt"
    listing.write_text(
        "# images\na.png\nb/c.png\n./a.png\n\nmissing.png\nnotes.txt\nclip.mp4\n" + str(root / "b/c.png") + "\n"
    )
    sizes = count_batches(monkeypatch)
    out = tmp_path / "out"
    assert run_batch_cli(listing, out, models_dir) == 1  # missing.png failed
    assert sum(sizes) == 2  # each file processed once
    rows = {row["index"]: row for row in read_manifest(out)}
    assert [rows[i]["status"] for i in range(7)] == [
        "done",
        "done",
        "duplicate",
        "failed",
        "skipped",
        "skipped",
        "duplicate",
    ]
    assert "same file as entry 0" in rows[2]["error"] and rows[2]["output"] == "a_depth.png"
    assert "cannot read the file" in rows[3]["error"]
    assert "unsupported file type" in rows[4]["error"] and "video" in rows[5]["error"]
    assert (out / "b" / "c_depth.png").is_file() and rows[6]["output"] == "b/c_depth.png"


def test_csv_and_parquet_sources_use_the_path_column(models_dir, tmp_path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "data"
    write_image(root / "x.png", 40, 40, seed=1)
    (root / "list.csv").write_text("id,file\n1,x.png\n")
    assert run_batch_cli(root / "list.csv", tmp_path / "csv_out", models_dir) == 2
    assert "no column 'path'" in capsys.readouterr().err
    assert run_batch_cli(root / "list.csv", tmp_path / "csv_out", models_dir, "--path-column", "file") == 0
    pq.write_table(pa.table({"path": [str(root / "x.png")]}), root / "list.parquet")
    assert run_batch_cli(root / "list.parquet", tmp_path / "pq_out", models_dir) == 0
    assert (tmp_path / "csv_out" / "x_depth.png").is_file() and (tmp_path / "pq_out" / "x_depth.png").is_file()


def test_paths_outside_the_list_folder_need_a_flag(models_dir, tmp_path, capsys) -> None:
    write_image(tmp_path / "elsewhere" / "far.png", 40, 40, seed=3)
    write_image(tmp_path / "data" / "near.png", 40, 40, seed=4)
    listing = tmp_path / "data" / "list.txt"
    listing.write_text("near.png\n../elsewhere/far.png\n")
    out = tmp_path / "out"
    assert run_batch_cli(listing, out, models_dir) == 2
    err = capsys.readouterr().err
    assert "outside" in err and "--allow-outside" in err and "far.png" in err
    assert not out.exists()  # refused before anything was written
    assert run_batch_cli(listing, out, models_dir, "--allow-outside") == 0
    far = next(row for row in read_manifest(out) if row["input"].endswith("far.png"))
    assert far["output"].startswith("_outside/") and (out / far["output"]).is_file()


def test_output_folder_inside_the_source_is_never_read(models_dir, tmp_path, monkeypatch) -> None:
    source = tmp_path / "src"
    write_image(source / "a.png", 40, 40, seed=1)
    out = source / "depth"
    for _ in range(2):
        sizes = count_batches(monkeypatch)
        assert run_batch_cli(source, out, models_dir) == 0
        assert [row["input"] for row in read_manifest(out)] == [str(source / "a.png")]
        monkeypatch.undo()
    assert sizes == []  # the rerun found the output verified and read no output as an input
    listing = tmp_path / "list.txt"
    listing.write_text(f"{source / 'a.png'}\n")
    assert run_batch_cli(listing, source / "depth2", models_dir, "--root", str(source)) == 0
    listing.write_text(f"{source / 'a.png'}\n{source / 'depth2' / 'a_depth.png'}\n")
    assert run_batch_cli(listing, source / "depth2", models_dir, "--root", str(source)) == 0
    rows = read_manifest(source / "depth2")
    assert rows[1]["status"] == "skipped" and "inside the output folder" in rows[1]["error"]


def test_zero_images_is_a_clear_error(models_dir, tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# nothing yet\n")
    for source in ("empty", "videos", "list.txt", "nowhere"):
        assert run_batch_cli(tmp_path / source, tmp_path / "out", models_dir) == 2
        err = capsys.readouterr().err
        assert "dav2 batch: error:" in err and ("no image" in err or "not found" in err), err
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused(models_dir, tmp_path, capsys) -> None:
    write_image(tmp_path / "src" / "a.png", 40, 40, seed=1)
    cases = [
        (["--num-workers", "2"], "--engine ray"),
        (["--temporal"], "video"),
        (["--gpus-per-worker", "-1"], "0 or more"),
        (["--checkpoint", str(tmp_path / "nope.pth")], "checkpoint not found"),
    ]
    for extra, message in cases:
        code = None
        try:
            code = run_batch_cli(tmp_path / "src", tmp_path / "out", models_dir, *extra)
        except SystemExit as exc:  # argparse errors exit with status 2
            code = exc.code
        assert code == 2 and message in capsys.readouterr().err, extra


# ------------------------------------------------------------------------------ Ray absent / unreachable
def test_ray_engine_without_ray_says_how_to_install(models_dir, tmp_path, monkeypatch, capsys) -> None:
    write_image(tmp_path / "src" / "a.png", 40, 40, seed=1)
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert run_batch_cli(tmp_path / "src", tmp_path / "out", models_dir, "--engine", "ray") == 2
    assert "pip install 'ray[data]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # waits out Ray's connection timeout
def test_a_ray_address_that_does_not_answer_fails_within_seconds(models_dir, tmp_path, capsys) -> None:
    ray = pytest.importorskip("ray")
    import socket
    import threading

    write_image(tmp_path / "src" / "a.png", 40, 40, seed=1)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}", "10.255.255.1:6379"):
        start = time.monotonic()
        code = run_batch_cli(
            tmp_path / "src",
            tmp_path / "out",
            models_dir,
            "--engine",
            "ray",
            "--address",
            address,
            "--connect-timeout",
            "2",
        )
        assert code == 2 and time.monotonic() - start < 15  # refused: at once; silent or not Ray: 2 s / 10 s
        err = capsys.readouterr().err
        assert f"no Ray cluster answers at {address}" in err and "ray start --head" in err
    for thread in threading.enumerate():  # Ray's own give-up on the silent address (~20 s): do not overlap
        if thread.name == "dav2-ray-connect":  # the next Ray test's session
            thread.join(90)
    assert not ray.is_initialized()
    with pytest.raises(BatchError, match="not host:port"):
        run_batch(
            BatchJob(
                parse_job([str(tmp_path / "src"), "-o", str(tmp_path / "out")]).options,
                engine="ray",
                address="nonsense",
            )
        )
