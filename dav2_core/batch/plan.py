"""Scan, resume and plan: which inputs still need work, and the fixed batches they run in.

- :func:`scan_batch` (run in-process or as Ray tasks) reads each input's size from its header (decoding
  it only when the header cannot be parsed, as the CLI does) and checks whether its outputs already
  exist and verify: every asked-for file present, PNGs of the input's size (the depth PNG 16-bit),
  the ``.npy`` a complete float32 array of that shape, the EXR's metadata of that shape.
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
from ..jobs import CliOptions, output_paths, probe_size
from .manifest import Row


def _png_verified(path: Path, size: tuple[int, int], sixteen_bit: bool) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except (OSError, ValueError, SyntaxError):
        return False
    return (height, width) == size and (not sixteen_bit or mode.startswith("I"))


def _npy_verified(path: Path, size: tuple[int, int]) -> bool:
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(file)
            header = file.tell()
    except (OSError, ValueError):
        return False
    return tuple(shape) == size and dtype == np.float32 and path.stat().st_size == header + size[0] * size[1] * 4


def _exr_verified(path: Path, size: tuple[int, int]) -> bool:
    try:
        meta = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return path.stat().st_size > 0 and meta.get("shape") == list(size)


def outputs_verified(paths: dict[str, Path], size: tuple[int, int]) -> bool:
    """True when every file in ``paths`` (:func:`output_paths` names) exists and matches an (H, W) input."""
    for name, path in paths.items():
        if not path.is_file():
            return False
        if name in ("depth", "color") and not _png_verified(path, size, sixteen_bit=name == "depth"):
            return False
        if name == "npy" and not _npy_verified(path, size):
            return False
        if name == "exr" and not _exr_verified(path, size):
            return False
    return True


def scan_batch(batch: dict[str, Any], out_dir: str, options: CliOptions) -> dict[str, np.ndarray]:
    """``{index, input, stem}`` columns -> ``{index, height, width, error, done}`` (height -1 and an
    error message for an unreadable input; ``done`` when its outputs exist and verify)."""
    indices = np.asarray(batch["index"], dtype=np.int64)
    heights = np.full(len(indices), -1, dtype=np.int64)
    widths = np.full(len(indices), -1, dtype=np.int64)
    errors = np.full(len(indices), "", dtype=object)
    done = np.zeros(len(indices), dtype=bool)
    for i, (path, stem) in enumerate(zip(batch["input"], batch["stem"])):
        try:
            size = probe_size(Path(str(path)))
        except io.ImageReadError as exc:
            errors[i] = str(exc).removeprefix(f"{path}: ")
            continue
        heights[i], widths[i] = size
        done[i] = outputs_verified(output_paths(Path(out_dir), Path(str(stem)), options), size)
    return {"index": indices, "height": heights, "width": widths, "error": errors, "done": done}


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
