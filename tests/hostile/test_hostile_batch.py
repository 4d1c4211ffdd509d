"""Hostile resumes of ``dav2 batch``: a rerun keeps only what it can verify. An output cut short or damaged
in the middle (PNG, .npy, EXR behind an intact sidecar), an input replaced by another image of the same size,
other weights saved under the same checkpoint path, a deleted manifest: each is redone (or refused, for the
weights), and the rerun's files are the ones a fresh run writes. The weights are hashed once per file version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from batch_helpers import output_files, read_manifest, write_image  # noqa: E402
from cli_fixtures import SMALL, models_dir, one_cpu_thread  # noqa: E402, F401  (fixtures)
from dav2_core import cli  # noqa: E402
from dav2_core.engines import export as export_module  # noqa: E402
from dav2_core.batch import JOB_FILE, MANIFEST_FILE, run_batch  # noqa: E402
from dav2_core.batch import job as job_module  # noqa: E402
from dav2_core.checkpoints.random_init import write_random_checkpoint  # noqa: E402
from dav2_core.cli.batch import parse_job  # noqa: E402

NAMES = ("a.png", "b.png", "c.png")


def _source(folder: Path) -> Path:
    for seed, name in enumerate(NAMES):
        write_image(folder / name, 40, 56, seed=seed)
    return folder


def _run(source: Path, out: Path, *extra: str):
    """``dav2 batch SOURCE -o OUT --npy --batch-size 1`` in-process; the summary (one image per batch, so
    ``processed`` counts exactly the images redone)."""
    return run_batch(parse_job([str(source), "-o", str(out), "--npy", "--batch-size", "1", *SMALL, *extra]))


@pytest.fixture
def done(tmp_path, models_dir) -> tuple[Path, Path, list[str]]:
    """(source, out, the model options) after one complete run."""
    model = ["--models-dir", str(models_dir)]
    source, out = _source(tmp_path / "src"), tmp_path / "out"
    assert _run(source, out, *model).processed == 3
    return source, out, model


def _fresh(tmp_path: Path, source: Path, model: list[str], *extra: str) -> dict[str, bytes]:
    """The outputs a fresh run on the same source writes (the reference a repaired folder must match)."""
    out = tmp_path / "fresh"
    shutil.rmtree(out, ignore_errors=True)
    _run(source, out, *model, *extra)
    return output_files(out)


def test_unchanged_rerun_redoes_nothing(done):
    source, out, model = done
    summary = _run(source, out, *model)
    assert summary.processed == 0 and summary.reused == 3 and summary.exit_code == 0


@pytest.mark.parametrize(
    "damage",
    ["png cut in half", "png bytes changed in the middle", "npy bytes changed in the middle", "colour png deleted"],
)
def test_damaged_output_is_redone(tmp_path, done, damage):
    source, out, model = done
    target = out / ("b_depth.npy" if "npy" in damage else "b_depth_color.png" if "colour" in damage else "b_depth.png")
    data = bytearray(target.read_bytes())
    if damage == "png cut in half":
        target.write_bytes(bytes(data[: len(data) // 2]))  # the header (and its size) stay readable
    elif "deleted" in damage:
        target.unlink()
    else:
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(16) if any(data[middle : middle + 16]) else b"\xff" * 16
        target.write_bytes(bytes(data))
    summary = _run(source, out, *model)
    assert summary.processed == 1 and summary.reused == 2
    assert output_files(out) == _fresh(tmp_path, source, model)


def test_exr_damaged_behind_an_intact_sidecar_is_redone(tmp_path, done):
    source, out, model = done
    assert _run(source, out, *model, "--exr").processed == 3  # a newly asked-for format: all
    exr = out / "a_depth.exr"
    assert json.loads((out / "a_depth.exr.json").read_text())["shape"] == [40, 56]
    exr.write_bytes(exr.read_bytes()[: exr.stat().st_size // 2])
    summary = _run(source, out, *model, "--exr")
    assert summary.processed == 1 and summary.reused == 2
    assert output_files(out) == _fresh(tmp_path, source, model, "--exr")


def test_input_replaced_by_another_image_of_the_same_size_is_redone(tmp_path, done):
    source, out, model = done
    before = (out / "c_depth.npy").read_bytes()
    write_image(source / "c.png", 40, 56, seed=99)  # same name, same size, other picture
    summary = _run(source, out, *model)
    assert summary.processed == 1 and summary.reused == 2
    assert (out / "c_depth.npy").read_bytes() != before
    assert output_files(out) == _fresh(tmp_path, source, model)
    row = next(r for r in read_manifest(out) if r["input"].endswith("c.png"))
    assert row["input_sha256"] == export_module.file_sha256(source / "c.png")


def test_deleted_manifest_vouches_for_nothing(done):
    source, out, model = done
    (out / MANIFEST_FILE).unlink()
    summary = _run(source, out, *model)
    assert summary.processed == 3 and summary.reused == 0


def test_other_weights_under_the_same_checkpoint_path_are_refused(tmp_path, capsys):
    checkpoint = write_random_checkpoint(tmp_path / "model.pth", "vits", "official-pth", seed=0)
    source, out = _source(tmp_path / "src"), tmp_path / "out"
    args = ["batch", str(source), "-o", str(out), "--checkpoint", str(checkpoint), *SMALL]
    assert cli.main(args) == 0
    before = output_files(out)
    write_random_checkpoint(checkpoint, "vits", "official-pth", seed=1)  # same path, other weights
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "model weights (sha256)" in err and "--overwrite" in err and "Traceback" not in err
    assert output_files(out) == before  # nothing touched
    assert cli.main([*args, "--overwrite"]) == 0
    assert all(output_files(out)[name] != before[name] for name in before if name.endswith(".png"))


def test_a_moved_but_identical_checkpoint_is_the_same_model(tmp_path):
    first = write_random_checkpoint(tmp_path / "one" / "model.pth", "vits", "official-pth", seed=0)
    source, out = _source(tmp_path / "src"), tmp_path / "out"
    assert _run(source, out, "--checkpoint", str(first)).processed == 3
    moved = tmp_path / "two" / "renamed.pth"
    moved.parent.mkdir()
    shutil.move(first, moved)
    summary = _run(source, out, "--checkpoint", str(moved))
    assert summary.processed == 0 and summary.reused == 3


def test_weights_are_hashed_once_per_file_version(tmp_path, monkeypatch):
    checkpoint = write_random_checkpoint(tmp_path / "model.pth", "vits", "official-pth", seed=0)
    source, out = _source(tmp_path / "src"), tmp_path / "out"
    hashed: list[Path] = []
    real = export_module.file_sha256

    def spy(path, remember=False):
        if Path(path).name == "model.pth":
            hashed.append(Path(path))
        return real(path, remember)

    monkeypatch.setattr(job_module, "file_sha256", spy)
    assert _run(source, out, "--checkpoint", str(checkpoint)).processed == 3
    assert len(hashed) == 1
    monkeypatch.setattr(export_module, "_FILE_SHAS", {})  # a new process: only the job file remembers
    assert _run(source, out, "--checkpoint", str(checkpoint)).reused == 3
    assert len(hashed) == 1  # size and mtime unchanged: the recorded hash is used
    record = json.loads((out / JOB_FILE).read_text())["model_file"]
    assert record["sha256"] == real(checkpoint) and record["size"] == checkpoint.stat().st_size
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data)  # same bytes, new mtime: hashed again, still the same model
    monkeypatch.setattr(export_module, "_FILE_SHAS", {})
    assert _run(source, out, "--checkpoint", str(checkpoint)).reused == 3
    assert len(hashed) == 2


def test_a_manifest_row_with_wrong_checksums_is_not_trusted(tmp_path, done):
    """A manifest edited (or from another folder) that vouches for bytes the files do not have: redone."""
    import pyarrow.parquet as pq

    source, out, model = done
    table = pq.read_table(out / MANIFEST_FILE).to_pylist()
    for row in table:
        row["checksums"] = [(name, "0" * 64) for name, _ in row["checksums"]]
    import pyarrow as pa

    from dav2_core.batch import manifest_schema

    pq.write_table(pa.Table.from_pylist(table, schema=manifest_schema()), out / MANIFEST_FILE)
    summary = _run(source, out, *model)
    assert summary.processed == 3
    assert output_files(out) == _fresh(tmp_path, source, model)
