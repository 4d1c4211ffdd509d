"""Benchmark output: the machine block, JSON files, plain-text tables.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

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


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table; ``columns`` = (key, header, format spec); missing values print as '-'."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key)
            line.append("-" if value is None else format(value, spec))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


ACCURACY_COLUMNS = [
    ("encoder", "encoder", "s"),
    ("comparison", "comparison", "s"),
    ("max_abs_over_range", "max abs/range", ".2e"),
    ("mean_abs_over_range", "mean abs/range", ".2e"),
    ("pearson", "Pearson", ".6f"),
]


def print_accuracy(rows: Sequence[dict[str, Any]], photo_count: int) -> None:
    """Print the worst-case accuracy table (one row per encoder and comparison) over ``photo_count`` photos."""
    print(f"\nAccuracy on {photo_count} photo(s), worst case (errors over the reference's output range):")
    print(format_table(rows, ACCURACY_COLUMNS))


def run_info(argv: Sequence[str] | None) -> dict[str, Any]:
    """The report's ``command`` (script name and arguments; ``argv`` None = this process's) and ``machine``."""
    return {
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "machine": machine_info(),
    }
