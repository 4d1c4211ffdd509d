"""Benchmark output: the machine block, the report and its ``--out`` JSON file, plain-text tables.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import torch


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch version and threads (and the GPU when CUDA is present)."""
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / (1 << 30), 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temp file + rename: never a half-written file)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def add_out_argument(parser: argparse.ArgumentParser, help: str = "JSON file to write") -> None:
    """``--out PATH``: where :func:`write_json` writes the report (absent: no file)."""
    parser.add_argument("--out", type=Path, default=None, help=help)


#: The columns that several benchmarks' tables share: result key -> (header, format spec).
COMMON_COLUMNS = {
    "encoder": ("encoder", "s"),
    "dtype": ("dtype", "s"),
    "mode": ("mode", "s"),
    "batch": ("batch", "d"),
    "speedup_vs_official": ("x official", ".2f"),
    "ms_per_call": ("ms/call", ".2f"),
    "frames": ("frames", "d"),
    "device": ("device", "s"),
    "model": ("model", "s"),
    "chunk_size": ("chunk", "d"),
    "frames_per_s": ("frames/s", ".2f"),
}

#: A table column: a key of :data:`COMMON_COLUMNS`, or (result key, header, format spec).
Column = str | tuple[str, str, str]


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table of ``rows``, one column per entry of ``columns``; missing values print as '-'."""
    specs = [(column, *COMMON_COLUMNS[column]) if isinstance(column, str) else column for column in columns]
    cells = [[header for _, header, _ in specs]]
    for row in rows:
        line = []
        for key, _, spec in specs:
            value = row.get(key)
            line.append("-" if value is None else format(value, spec))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Print :func:`format_table` of ``rows``."""
    print(format_table(rows, columns))


ACCURACY_COLUMNS: list[Column] = [
    "encoder",
    ("comparison", "comparison", "s"),
    ("max_abs_over_range", "max abs/range", ".2e"),
    ("mean_abs_over_range", "mean abs/range", ".2e"),
    ("pearson", "Pearson", ".6f"),
]


def print_accuracy(rows: Sequence[dict[str, Any]], photo_count: int) -> None:
    """Print the worst-case accuracy table (one row per encoder and comparison) over ``photo_count`` photos."""
    print(f"\nAccuracy on {photo_count} photo(s), worst case (errors over the reference's output range):")
    print_table(rows, ACCURACY_COLUMNS)


def run_info(argv: Sequence[str] | None) -> dict[str, Any]:
    """The report's ``command`` (script name and arguments; ``argv`` None = this process's) and ``machine``."""
    return {
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "machine": machine_info(),
    }


def write_report(path: Path | None, benchmark: str, argv: Sequence[str] | None, **sections: Any) -> dict[str, Any]:
    """The report of one run: ``benchmark``, :func:`run_info` and ``sections`` in that order; written to ``path``
    (:func:`write_json`, None: not written) and returned."""
    report = {"benchmark": benchmark, **run_info(argv), **sections}
    write_json(path, report)
    return report
