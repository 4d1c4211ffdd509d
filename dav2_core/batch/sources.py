"""SOURCE -> one :class:`~.manifest.Row` per entry: a folder (recursive), a text list, or CSV / Parquet.

- A folder is read like ``dav2 FOLDER --recursive`` (:func:`dav2_core.io.collect_inputs`): the same
  order, output names and collision rule, and nothing inside the output folder is ever read as input.
  Videos are listed as skipped (``dav2`` streams videos).
- A list (text: one path a line, blank lines and ``#`` comments ignored; CSV / Parquet: the
  ``path_column``) names files relative to ``root`` (default: the list's folder). Outputs mirror the
  path under ``root``; a path outside ``root`` is refused unless ``allow_outside``, then its outputs go
  to ``_outside/<hash of its folder>/``. A file listed twice is processed once (later rows: duplicate);
  entries inside the output folder, videos and other types are skipped. Missing files are not an error
  here: the scan records them as failed, and a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import io
from .job import BatchError, BatchJob
from .manifest import Row, require_pyarrow

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
VIDEO_NOTE = "a video: dav2 batch does images; run dav2 on videos (streamed chunk by chunk)"
OUTSIDE_FOLDER = "_outside"


def _abspath(path: Path) -> Path:
    return Path(os.path.abspath(path))  # normalised, symlinks kept (a folder of links is a valid source)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def read_source(job: BatchJob) -> list[Row]:
    """The job's rows in SOURCE order (BatchError for a bad SOURCE or when it holds no image)."""
    source, out_dir = job.source, job.output
    if not source.exists():
        raise BatchError(f"SOURCE not found: {source}")
    if source.is_dir():
        rows = _folder_rows(source, out_dir)
    else:
        if io.input_kind(source) is not None:
            raise BatchError(
                f"SOURCE {source} is a single image or video; give a folder or a list of paths (or run dav2 on it)"
            )
        paths = _read_list(source, job.path_column)
        root = _abspath(job.root.expanduser() if job.root is not None else source.parent)
        rows = _list_rows(paths, root, out_dir, job.allow_outside, source)
    if not any(row.status == "pending" for row in rows):
        skipped = "; ".join(sorted({row.error or row.status for row in rows}))[:300]
        raise BatchError(f"no images to process in {source}" + (f" ({len(rows)} entries: {skipped})" if rows else ""))
    return rows


def _folder_rows(folder: Path, out_dir: Path) -> list[Row]:
    try:
        found = io.collect_inputs([folder], recursive=True, exclude=out_dir)
    except io.InputError as exc:
        raise BatchError(str(exc)) from None
    rows = []
    for index, item in enumerate(found):
        row = Row(index, str(_abspath(item.path)), stem=item.out_stem.as_posix())
        if item.kind == "video":
            row.status, row.error, row.stem = "skipped", VIDEO_NOTE, None
        rows.append(row)
    return rows


def _read_list(path: Path, column: str) -> list[str | None]:
    """The listed paths, in order (None for an empty CSV/Parquet cell)."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BatchError(
                f"cannot read the list {path} ({exc}); a text list holds one path a line (UTF-8)"
            ) from None
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    require_pyarrow()
    import pyarrow.csv
    import pyarrow.parquet

    try:
        table = pyarrow.csv.read_csv(path) if kind == "csv" else pyarrow.parquet.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise BatchError(f"cannot read {path} as {kind.upper()} ({exc})") from None
    if column not in table.column_names:
        raise BatchError(
            f"{path} has no column {column!r} (columns: {', '.join(table.column_names) or 'none'}); "
            "name the path column with --path-column"
        )
    return [None if value is None else str(value).strip() or None for value in table.column(column).to_pylist()]


def _outside_stem(path: Path) -> Path:
    digest = hashlib.sha1(str(path.parent).encode("utf-8")).hexdigest()[:12]
    return Path(OUTSIDE_FOLDER, digest, path.stem)


def _list_rows(paths: list[str | None], root: Path, out_dir: Path, allow_outside: bool, source: Path) -> list[Row]:
    rows: list[Row] = []
    first_row: dict[Path, Row] = {}
    outside: list[str] = []
    found: list[tuple[Path, io.InputKind, Path]] = []
    to_process: list[Row] = []
    for index, raw in enumerate(paths):
        if raw is None:
            rows.append(Row(index, "", status="skipped", error="empty path"))
            continue
        path = _abspath(root / Path(raw).expanduser())
        row = Row(index, str(path))
        rows.append(row)
        kind = io.input_kind(path)
        if _inside(path, out_dir):
            row.status, row.error = "skipped", f"inside the output folder {out_dir} (outputs are never read as inputs)"
        elif kind == "video":
            row.status, row.error = "skipped", VIDEO_NOTE
        elif kind is None:
            row.status, row.error = "skipped", f"unsupported file type {path.suffix or '(no extension)'!r}"
        elif (first := first_row.setdefault(path.resolve(), row)) is not row:
            row.status, row.error = "duplicate", f"same file as entry {first.index} ({first.input})"
        else:
            if _inside(path, root):
                stem = path.relative_to(root).with_suffix("")
            else:
                outside.append(raw)
                stem = _outside_stem(path)
            found.append((path, kind, stem))
            to_process.append(row)
    if outside and not allow_outside:
        examples = ", ".join(outside[:3]) + (", ..." if len(outside) > 3 else "")
        raise BatchError(
            f"{source} lists {len(outside)} path(s) outside {root} ({examples}); pass --allow-outside "
            f"to process them (outputs under {OUTSIDE_FOLDER}/), or --root a folder holding them all"
        )
    for row, item in zip(to_process, io.unique_output_stems(found)):
        row.stem = item.out_stem.as_posix()
    for row in rows:
        if row.status == "duplicate":
            row.stem = first_row[Path(row.input).resolve()].stem
    return rows
