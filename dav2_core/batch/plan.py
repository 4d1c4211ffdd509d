"""Scan, resume and plan: which inputs still need work, and the fixed batches they run in.

- :func:`scan_batch` (run in-process or as Ray tasks) reads each input's size from its header (decoding
  it only when the header cannot be parsed, as the CLI does), hashes its content (sha256) and checks
  whether its outputs may be kept: the earlier manifest recorded this input content and a checksum for
  every asked-for output file, and each file still has it. A file cut short, rewritten, or made from an
  input that has since been replaced does not verify and is redone; so is anything the manifest does not
  vouch for (a run killed before its manifest was written, a deleted or unreadable manifest).
- :func:`plan_batches` groups the readable inputs exactly as the single-process CLI does (SOURCE order,
  :func:`dav2_core.io.group_by_size`, then ``batch_size`` at a time). The plan does not depend on the
  number of workers or on what is already done, so every image always runs in the same batch, and the
  float results are bit-identical to one ``dav2 --batch-size B`` process on the same files.
- :func:`batches_to_run` keeps the batches with any pending input; their done members run again with
  them (same composition, same numbers) and are rewritten atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..engines.export import file_sha256
from ..jobs import CliOptions, output_paths, probe_size
from .manifest import Row


def output_files(out_dir: Path, stem: str, options: CliOptions) -> dict[str, Path]:
    """Every file the options write for one image: :func:`output_paths` plus the EXR's ``.json`` sidecar."""
    paths = output_paths(out_dir, Path(stem), options)
    if "exr" in paths:
        paths["exr.json"] = Path(str(paths["exr"]) + ".json")
    return paths


def output_checksums(out_dir: Path, stem: str, options: CliOptions) -> dict[str, str]:
    """sha256 of each output file of one image, by :func:`output_files` name (OSError if one is missing)."""
    return {name: file_sha256(path) for name, path in output_files(out_dir, stem, options).items()}


def outputs_verified(paths: dict[str, Path], checksums: dict[str, str] | None) -> bool:
    """True when every file in ``paths`` exists and has the sha256 the manifest recorded for it."""
    if not checksums:
        return False
    for name, path in paths.items():
        try:
            if checksums.get(name) is None or file_sha256(path) != checksums[name]:
                return False
        except OSError:
            return False
    return True


def scan_batch(batch: dict[str, Any], out_dir: str, options: CliOptions) -> dict[str, np.ndarray]:
    """``{index, input, stem, input_sha256, checksums}`` columns (the last two from the earlier manifest; the
    checksums as JSON, "" for none) -> ``{index, height, width, error, done, sha256}`` (height -1 and an error
    message for an unreadable input; ``done`` when its outputs may be kept; ``sha256`` of the input now)."""
    indices = np.asarray(batch["index"], dtype=np.int64)
    heights = np.full(len(indices), -1, dtype=np.int64)
    widths = np.full(len(indices), -1, dtype=np.int64)
    errors = np.full(len(indices), "", dtype=object)
    hashes = np.full(len(indices), "", dtype=object)
    done = np.zeros(len(indices), dtype=bool)
    for i, (path, stem, before, checksums) in enumerate(
        zip(batch["input"], batch["stem"], batch["input_sha256"], batch["checksums"])
    ):
        try:
            size = probe_size(Path(str(path)))
            hashes[i] = file_sha256(str(path))
        except io.ImageReadError as exc:
            errors[i] = str(exc).removeprefix(f"{path}: ")
            continue
        except OSError as exc:
            errors[i] = f"cannot read the file ({exc.strerror or exc})"
            continue
        heights[i], widths[i] = size
        if before and hashes[i] == str(before) and checksums:
            recorded = json.loads(str(checksums))
            done[i] = outputs_verified(output_files(Path(out_dir), str(stem), options), recorded)
    return {"index": indices, "height": heights, "width": widths, "error": errors, "done": done, "sha256": hashes}


def rows_to_scan(rows: list[Row], previous: dict[str, Row], max_attempts: int, retry_failed: bool) -> list[Row]:
    """Carry attempts over from an earlier manifest; the rows to scan (final failures are kept as they were)."""
    scan = []
    for row in rows:
        if row.stem is not None:
            row.output = row.stem + io.OUTPUT_SUFFIXES["depth"]
        if row.status != "pending":
            continue
        before = previous.get(row.input)
        if before is not None and before.status == "failed":
            row.attempts = 0 if retry_failed else before.attempts
            if row.attempts >= max_attempts:
                row.status, row.error = "failed", before.error
                row.height, row.width = before.height, before.width
                continue
        elif before is not None and before.status == "done":
            row.attempts, row.worker, row.seconds = before.attempts, before.worker, before.seconds
            row.input_sha256, row.checksums = before.input_sha256, before.checksums
        scan.append(row)
    return scan


def apply_scan(rows_by_index: dict[int, Row], result: dict[str, np.ndarray], reuse_outputs: bool) -> None:
    """Record a :func:`scan_batch` result: size, then 'done' (verified), 'pending' or 'failed' (unreadable)."""
    for index, height, width, error, done in zip(
        result["index"], result["height"], result["width"], result["error"], result["done"]
    ):
        row = rows_by_index[int(index)]
        if error:
            row.status, row.error, row.attempts = "failed", str(error), row.attempts + 1
            continue
        row.height, row.width = int(height), int(width)
        row.status = "done" if done and reuse_outputs else "pending"
        row.error = None
        if row.status == "pending":
            row.checksums = None  # recorded again when the batch has run


def plan_batches(rows: list[Row], batch_size: int) -> list[list[Row]]:
    """Every readable input (status done or pending) in fixed batches: the CLI's grouping (see module doc)."""
    readable = sorted((row for row in rows if row.status in ("done", "pending")), key=lambda r: r.index)
    batches = []
    for group in io.group_by_size([(row.height, row.width) for row in readable]):
        for start in range(0, len(group), batch_size):
            batches.append([readable[i] for i in group[start : start + batch_size]])
    return batches


def batches_to_run(plan: list[list[Row]]) -> list[list[Row]]:
    """The planned batches with at least one pending input."""
    return [batch for batch in plan if any(row.status == "pending" for row in batch)]
