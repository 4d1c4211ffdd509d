"""Shared pieces of the benchmark scripts: seeded models, photos, timing, memory, error metrics, output.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from dav2_core import DepthAnythingV2
from dav2_core.cli.args import choice_list, int_list, non_negative_int, positive_int  # noqa: F401 (for the scripts)
from dav2_core.dtypes import PRECISION_DTYPES
from dav2_core.variants import ENCODERS

ROOT = Path(__file__).resolve().parents[1]
#: ../shared (real photos), overridable like the tests' fixture.
SHARED = Path(os.environ.get("DAV2_SHARED_DIR", ROOT.parent / "shared"))
#: The 640x480 NYU photo the speed targets are stated for (518x686 at the network).
DEFAULT_PHOTO = SHARED / "depth_gt" / "nyu" / "rgb" / "rgb_00000.jpg"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DTYPES = PRECISION_DTYPES
SEED = 1234
MIB = 1 << 20


# ----------------------------------------------------------------------------------------- models
def seeded_models(encoder: str, seed: int = SEED) -> tuple[torch.nn.Module, DepthAnythingV2]:
    """The official model built under ``torch.manual_seed(seed)`` and ours loaded strictly from it, both eval/CPU fp32.

    Random init can leave the final ReLU output all zero; the last conv's bias is set to 0.05 (on the official
    model, before copying) so the depth maps are live and error metrics mean something.
    """
    from depth_anything_v2.dpt import DepthAnythingV2 as OfficialDepthAnythingV2

    spec = ENCODERS[encoder]
    torch.manual_seed(seed)
    official = OfficialDepthAnythingV2(encoder=encoder, features=spec.features, out_channels=list(spec.out_channels))
    with torch.no_grad():
        official.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
    official.eval()
    ours = DepthAnythingV2(encoder, spec.features, list(spec.out_channels)).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    return official, ours


def official_available() -> bool:
    """Whether the official implementation (PyPI ``jkp-depth-anything-v2``) is importable here (a GPU machine
    may lack it: then the official rows and parity figures are skipped, said so in the output)."""
    import importlib.util

    try:
        return importlib.util.find_spec("depth_anything_v2") is not None
    except (ImportError, ValueError):
        return False


def seeded_ours(encoder: str, seed: int = SEED) -> DepthAnythingV2:
    """Our model, eval/CPU fp32: the weights of :func:`seeded_models` when the official package is installed,
    else our own init under ``torch.manual_seed(seed)`` (same live-output bias). Speed and precision figures
    do not depend on which."""
    if official_available():
        return seeded_models(encoder, seed)[1]
    spec = ENCODERS[encoder]
    torch.manual_seed(seed)
    ours = DepthAnythingV2(encoder, spec.features, list(spec.out_channels)).eval()
    with torch.no_grad():
        ours.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
    return ours


def load_accel(mode: str) -> Any:
    """The engine's fast-path module ``dav2_core.accel`` (``optimize``, ``is_compiled``) for ``--compile MODE``.

    SystemExit with a clear message when the engine has no such module or does not know ``mode``
    ("auto" = the engine's own choice).
    """
    try:
        from dav2_core import accel
    except ImportError as exc:
        raise SystemExit(f"--compile: not available - this engine has no dav2_core.accel ({exc})") from None
    modes = ("auto", *getattr(accel, "COMPILE_MODES", ()))
    if mode not in modes:
        raise SystemExit(f"--compile: unknown mode {mode!r}; choose one of {', '.join(modes)}")
    return accel


def compile_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``dav2_core.accel.optimize(model)`` with ``mode`` ("auto": the engine's default for the device)."""
    return load_accel(mode).optimize(model, mode=None if mode == "auto" else mode)


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether the engine's compiled forward is still active (False after its fallback to eager)."""
    from dav2_core.accel import is_compiled as engine_is_compiled

    return bool(engine_is_compiled(model))


def compile_counts(model: torch.nn.Module) -> dict[str, int] | None:
    """The engine's ``compile_stats`` of ``model`` as a dict (graphs compiled, calls that ran compiled / eagerly);
    None when the model is not optimized."""
    from dav2_core.accel import compile_stats

    stats = compile_stats(model)
    if stats is None:
        return None
    return {"compiles": stats.compiles, "compiled_calls": stats.compiled_calls, "eager_calls": stats.eager_calls}


def compiled_row(model: torch.nn.Module, before: dict[str, int] | None) -> dict[str, Any]:
    """Row fields saying what the timed calls really ran: ``timed_compiled_calls`` / ``timed_eager_calls``
    since the ``before`` snapshot (taken after warm-up), ``graphs_compiled`` in all, and ``ran_compiled``
    (every timed call ran a compiled graph). Empty for a model that is not optimized."""
    after = compile_counts(model)
    if after is None or before is None:
        return {}
    compiled = after["compiled_calls"] - before["compiled_calls"]
    eager = after["eager_calls"] - before["eager_calls"]
    return {
        "graphs_compiled": after["compiles"],
        "timed_compiled_calls": compiled,
        "timed_eager_calls": eager,
        "ran_compiled": compiled > 0 and eager == 0,
    }


def release_model(model: torch.nn.Module) -> None:
    """Drop the engine's compiled graphs of ``model`` (call before ``del model``, then :func:`free_memory`):
    a compiled model is not freed by ``del`` alone (its graphs, frozen weights and CUDA-graph pools live on)."""
    from dav2_core.accel import unoptimize

    unoptimize(model)


def free_memory() -> None:
    """Forget every compiled graph (Dynamo caches, CUDA-graph trees), collect garbage, return cached CUDA
    memory: the next benchmark row starts from the same state as the first."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------- TF32
def set_tf32(enabled: bool) -> dict[str, Any]:
    """Allow (or forbid) TF32 for float32 matmuls and cuDNN convolutions, process-wide; returns :func:`tf32_flags`.

    PyTorch's own defaults are mixed: float32 matmuls in full precision, cuDNN convolutions in TF32 on
    Ampere and newer. Reference and benchmark runs set both explicitly (off by default: "fp32" means fp32).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    return tf32_flags()


def tf32_flags() -> dict[str, Any]:
    """The TF32-related flags in force (recorded in every GPU result): legacy flags, and the newer
    ``fp32_precision`` settings where this torch has them."""
    flags: dict[str, Any] = {
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    for name, holder in (
        ("cuda_matmul_fp32_precision", torch.backends.cuda.matmul),
        ("cudnn_conv_fp32_precision", getattr(torch.backends.cudnn, "conv", None)),
    ):
        value = getattr(holder, "fp32_precision", None)
        if value is not None:
            flags[name] = value
    return flags


# ----------------------------------------------------------------------------------------- photos
def read_bgr(path: Path) -> np.ndarray:
    """A photo as BGR uint8 [H,W,3] (the official ``infer_image`` input)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the photo {path} (missing or not an image); pass another with --photo/--images")
    return bgr


def list_photos(folder: Path) -> list[Path]:
    """The photos (.jpg/.jpeg/.png) in a folder, sorted by name."""
    if not folder.is_dir():
        raise ValueError(f"photo folder {folder} does not exist; pass --images DIR (e.g. ../shared/images)")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise ValueError(f"no .jpg/.png photos in {folder}; pass --images DIR with at least one photo")
    return photos


def resolve_photo(path: Path | None) -> Path:
    """The timed photo: ``path`` or the default 640x480 NYU frame, with a clear error when absent."""
    photo = path or DEFAULT_PHOTO
    if not photo.is_file():
        raise ValueError(f"photo {photo} not found; pass --photo PATH (the targets are stated for a 640x480 photo)")
    return photo


def load_photos(args: argparse.Namespace, prog: str) -> tuple[list[Path], np.ndarray]:
    """Resolve ``args.photo`` in place; return (accuracy photos: ``--images`` or the timed photo, timed photo
    as BGR). A missing photo or folder ends the script with a message naming ``prog``."""
    try:
        args.photo = resolve_photo(args.photo)
        photos = list_photos(args.images) if args.images else [args.photo]
        return photos, read_bgr(args.photo)
    except ValueError as exc:
        raise SystemExit(f"{prog}: {exc}") from None


def bgr_to_images(bgr: np.ndarray, batch: int = 1) -> torch.Tensor:
    """BGR uint8 [H,W,3] -> ComfyUI IMAGE [batch,H,W,3] float32 0..1 (the photo repeated, contiguous)."""
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float().div_(255.0)
    return rgb[None].repeat(batch, 1, 1, 1)


# ----------------------------------------------------------------------------------------- timing
def device_sync(device: torch.device) -> Callable[[], None] | None:
    """The ``sync`` for :func:`time_calls` on ``device``: waits for CUDA work; None elsewhere (synchronous)."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def time_calls(
    fn: Callable[[], Any],
    runs: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
    after_warmup: Callable[[], None] | None = None,
) -> list[float]:
    """Wall time in seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls (``sync`` ends each call).

    ``after_warmup`` runs between the two (e.g. to reset a peak-memory counter, so that compilation and
    CUDA-graph recording in the warm-up do not count)."""
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class OomRetries(logging.Handler):
    """Collects the engine's "out of memory; retrying" warnings while attached (:meth:`watch`): a batch that
    was split is not that batch."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    @property
    def count(self) -> int:
        return len(self.messages)

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def watch(self) -> Iterator[OomRetries]:
        engine_log = logging.getLogger("dav2_core.inference")
        engine_log.addHandler(self)
        try:
            yield self
        finally:
            engine_log.removeHandler(self)


# ----------------------------------------------------------------------------------------- CPU memory
def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory of this process above a baseline, in bytes.

    Linux: the high-water mark VmHWM is reset through ``/proc/self/clear_refs`` ("5") at ``start()``, so
    ``peak_growth()`` = VmHWM since ``start()`` minus VmRSS at ``start()`` (method "VmHWM-reset"). Elsewhere:
    ``ru_maxrss`` minus the RSS at ``start()`` (method "ru_maxrss"), an underestimate when an earlier peak
    was higher than this one.
    """

    def __init__(self) -> None:
        self.method = ""
        self.baseline = 0

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            self.method = "VmHWM-reset"
        except OSError:
            self.method = "ru_maxrss"
        self.baseline = self.current()

    @staticmethod
    def current() -> int:
        rss = _proc_status_kib("VmRSS")
        if rss is not None:
            return rss * 1024
        import resource

        return _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def peak(self) -> int:
        if self.method == "VmHWM-reset":
            hwm = _proc_status_kib("VmHWM")
            if hwm is not None:
                return hwm * 1024
        import resource

        return _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def peak_growth(self) -> int:
        return max(0, self.peak() - self.baseline)


def _maxrss_bytes(value: int) -> int:
    return value if sys.platform == "darwin" else value * 1024  # macOS reports bytes, Linux KiB


def run_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh spawned Python process and return its result (so its peak RSS is its own).

    ``fn`` must be a module-level function; exceptions in the child come back as RuntimeError with its traceback.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    try:
        ok, payload = queue.get()
    finally:
        process.join()
    if not ok:
        raise RuntimeError(f"benchmark worker failed:\n{payload}")
    return payload


def _child(queue: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        queue.put((True, fn(*args)))
    except BaseException:  # noqa: BLE001 - reported to the parent with the traceback
        queue.put((False, traceback.format_exc()))


# ----------------------------------------------------------------------------------------- accuracy
def compare(reference: np.ndarray | torch.Tensor, other: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Errors of ``other`` against ``reference`` (same shape): max and mean abs error over the reference's range, Pearson."""
    ref = np.asarray(reference.float().cpu() if isinstance(reference, torch.Tensor) else reference, np.float64)
    got = np.asarray(other.float().cpu() if isinstance(other, torch.Tensor) else other, np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare depth maps of shapes {ref.shape} and {got.shape}")
    span = float(ref.max() - ref.min())
    if span <= 0:
        raise ValueError("reference depth map is constant; the seeded weights are degenerate")
    diff = np.abs(got - ref)
    return {
        "max_abs_over_range": float(diff.max() / span),
        "mean_abs_over_range": float(diff.mean() / span),
        "pearson": float(np.corrcoef(ref.ravel(), got.ravel())[0, 1]),
    }


def worst(comparisons: Sequence[dict[str, float]]) -> dict[str, float]:
    """The worst case over photos: largest errors, smallest Pearson."""
    return {
        "max_abs_over_range": max(c["max_abs_over_range"] for c in comparisons),
        "mean_abs_over_range": max(c["mean_abs_over_range"] for c in comparisons),
        "pearson": min(c["pearson"] for c in comparisons),
    }


# ----------------------------------------------------------------------------------------- machine + output
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
