"""The job's record: one manifest row per SOURCE entry (Parquet, atomic), and the job file with its fingerprint.

Manifest columns (``MANIFEST_SCHEMA``): ``index`` (position in SOURCE), ``input`` (absolute path),
``output`` (the 16-bit depth PNG, relative to OUT, for done and duplicate rows; the other files share its stem), ``size`` ([height,
width] of the input in pixels), ``kind`` / ``units`` ('relative' / 'relative' or 'metric' / 'm'),
``status`` (one of ``STATUSES``), ``error`` (why, for failed / duplicate / skipped), ``attempts`` (tries
so far, across runs), ``worker`` (host:pid that wrote it), ``seconds`` (its share of the batch's time),
``input_sha256`` (the input file's content when it was run), ``checksums`` (done rows: output name as in
:data:`~dav2_core.io.OUTPUT_SUFFIXES`, plus ``exr.json``, -> sha256 of the file as written). A rerun
keeps a row's outputs only when its input still has that hash and every output file still has its checksum.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..variants import units_for
from .job import JOB_FILE, BatchError, fingerprint_differences

#: done: outputs written and verified (this run or before); failed: tried ``attempts`` times, see error;
#: pending: not reached (an interrupted run); duplicate: same file as an earlier row (processed once);
#: skipped: not an image this job handles (video, unsupported type, inside the output folder).
STATUSES: tuple[str, ...] = ("done", "failed", "pending", "duplicate", "skipped")

PYARROW_HELP = "dav2 batch writes a Parquet manifest and needs pyarrow: pip install pyarrow (or pip install '.[ray]')"


def require_pyarrow() -> Any:
    """The pyarrow module, or BatchError saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise BatchError(PYARROW_HELP) from None
    return pyarrow


def manifest_schema() -> Any:
    """The manifest's pyarrow schema."""
    pa = require_pyarrow()
    return pa.schema(
        [
            ("index", pa.int64()),
            ("input", pa.string()),
            ("output", pa.string()),
            ("size", pa.list_(pa.int32(), 2)),
            ("kind", pa.string()),
            ("units", pa.string()),
            ("status", pa.string()),
            ("error", pa.string()),
            ("attempts", pa.int32()),
            ("worker", pa.string()),
            ("seconds", pa.float64()),
            ("input_sha256", pa.string()),
            ("checksums", pa.map_(pa.string(), pa.string())),
        ]
    )


@dataclass
class Row:
    """One SOURCE entry's state. ``stem``: output path without suffix, relative to OUT (None if none)."""

    index: int
    input: str
    stem: str | None = None
    output: str | None = None
    height: int | None = None
    width: int | None = None
    status: str = "pending"
    error: str | None = None
    attempts: int = 0
    worker: str | None = None
    seconds: float | None = None
    input_sha256: str | None = None
    checksums: dict[str, str] | None = None


def write_manifest(path: Path, rows: list[Row], kind: str | None) -> None:
    """Atomically write the rows (in ``index`` order) as Parquet."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r.index)
    units = units_for(kind) if kind else None
    columns = {
        "index": [r.index for r in rows],
        "input": [r.input for r in rows],
        "output": [r.output if r.status in ("done", "duplicate") else None for r in rows],
        "size": [None if r.height is None else [r.height, r.width] for r in rows],
        "kind": [kind] * len(rows),
        "units": [units] * len(rows),
        "status": [r.status for r in rows],
        "error": [r.error for r in rows],
        "attempts": [r.attempts for r in rows],
        "worker": [r.worker for r in rows],
        "seconds": [r.seconds for r in rows],
        "input_sha256": [r.input_sha256 for r in rows],
        "checksums": [list(r.checksums.items()) if r.checksums and r.status == "done" else None for r in rows],
    }
    table = pa.Table.from_pydict(columns, schema=manifest_schema())
    with io.atomic_path(path, suffix=".parquet") as temp:
        pq.write_table(table, temp)


def read_manifest(path: Path) -> tuple[dict[str, Row], str | None]:
    """An earlier run's rows by input path, and its depth kind (({}, None) if there is none; a warning
    if it cannot be read)."""
    if not path.is_file():
        return {}, None
    require_pyarrow()
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - any unreadable file: start afresh
        warnings.warn(
            f"{path}: cannot read the earlier manifest ({exc}); its outputs cannot be verified and are redone, "
            "attempt counts start afresh",
            stacklevel=2,
        )
        return {}, None
    rows, kind = {}, None
    for d in data:
        size = d.get("size") or [None, None]
        rows[d["input"]] = Row(
            index=d["index"],
            input=d["input"],
            output=d.get("output"),
            height=size[0],
            width=size[1],
            status=d["status"],
            error=d.get("error"),
            attempts=d.get("attempts") or 0,
            worker=d.get("worker"),
            seconds=d.get("seconds"),
            input_sha256=d.get("input_sha256"),
            checksums=dict(d["checksums"]) if d.get("checksums") else None,
        )
        kind = kind or d.get("kind")
    return rows, kind


def read_job_file(out_dir: Path) -> dict[str, Any] | None:
    """The job file of an earlier run in ``out_dir`` (None if there is none); BatchError if unreadable."""
    path = out_dir / JOB_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict) or not isinstance(stored["fingerprint"], dict):
            raise TypeError("not a job file")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BatchError(
            f"{path}: cannot read the earlier job's settings ({exc}); delete it, or pass --overwrite"
        ) from None
    return stored


def check_job_file(out_dir: Path, stored: dict[str, Any] | None, fingerprint: dict[str, Any], overwrite: bool) -> bool:
    """Compare with the job file of an earlier run in ``out_dir`` (``stored``, from :func:`read_job_file`); True
    if outputs there may be reused.

    BatchError when they were made with other settings or other model weights (unless ``overwrite``: then
    nothing is reused). A job file of an older version (no weights' hash) differs too: pass ``overwrite``.
    """
    if stored is None:
        return True
    differences = fingerprint_differences(stored["fingerprint"], fingerprint)
    if not differences:
        return True
    if overwrite:
        return False
    raise BatchError(
        f"{out_dir} holds outputs of a job with other settings ("
        + "; ".join(differences)
        + "); write to a new -o folder, or pass --overwrite to redo them all"
    )


def write_job_file(out_dir: Path, fingerprint: dict[str, Any], source: Path, model_file: dict[str, Any]) -> None:
    """Record the job's fingerprint and its model file's (path, size, mtime, sha256) atomically, before any
    output is written (the record lets a rerun skip hashing an unchanged model file)."""
    text = json.dumps({"source": str(source), "fingerprint": fingerprint, "model_file": model_file}, indent=1)
    io.atomic_write(out_dir / JOB_FILE, lambda f: f.write(text.encode("utf-8")))
