"""The steps of ``benchmarks/gpu_first_run.sh``: one per call, each writing ``RESULTS/STEP.json``.

    python3 -m benchmarks.gpu_checks STEP --results DIR [--cpu-dry-run]

Steps: ``env`` (versions, photos), ``smoke`` (eager fp32/fp16/bf16, TF32 off), ``sdpa`` (attention backends at
the model's token counts), ``chunks`` (chunk invariance of ``predict_depth``), ``oom`` (forced out-of-memory
halving), ``compile`` (``dav2_core.accel`` with recompile logging) and ``summary`` (one table, one merged JSON).
Each step JSON holds ``status`` (ok / fail / skipped), a one-line ``summary`` and the measurements.

``--cpu-dry-run`` runs the CPU-capable steps with tiny sizes and marks the CUDA-only ones skipped, so the
script is exercised before a GPU slot. Needs only torch, numpy, opencv and the repository.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import compare  # noqa: E402
from benchmarks.models import DTYPES, official_available, seeded_ours, set_tf32, tf32_flags  # noqa: E402
from benchmarks.photos import ROOT, SHARED, bgr_to_images, list_photos, read_bgr  # noqa: E402
from benchmarks.report import machine_info, print_table, write_json  # noqa: E402
from benchmarks.timing import OomRetries, device_sync, median, time_calls  # noqa: E402
from dav2_core.inference import predict_depth  # noqa: E402
from dav2_core.preprocess import network_size  # noqa: E402
from dav2_core.variants import DEFAULT_INPUT_SIZE, ENCODERS, PATCH_SIZE  # noqa: E402

STEPS = ("env", "smoke", "sdpa", "chunks", "oom", "compile")
#: fp16/bf16 vs fp32 target of the GPU-proof issue: max abs error <= 1e-2 x the fp32 output range.
LOW_PRECISION_TARGET = 1e-2
#: Attention heads and channels per head of each encoder (the official table in variants.ENCODERS).
HEADS = {name: ENCODERS[name].num_heads for name in ("vits", "vitb", "vitl")}
HEAD_DIM = {name: ENCODERS[name].embed_dim // ENCODERS[name].num_heads for name in HEADS}
#: Tokens (patches + the class token) at the default size and at 640x480's keep_aspect size.
TOKENS = {
    f"{h}x{w}": (h // PATCH_SIZE) * (w // PATCH_SIZE) + 1
    for h, w in ((DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE), network_size(480, 640, DEFAULT_INPUT_SIZE))
}


class Sizes:
    """Problem sizes: real ones on the GPU, tiny ones for the CPU dry run."""

    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.device = torch.device("cpu" if dry else "cuda")
        self.encoders = ["vits"] if dry else ["vits", "vitl"]
        self.dtypes = ["fp32", "bf16"] if dry else ["fp32", "fp16", "bf16"]
        self.input_size = 28 if dry else 518
        self.runs, self.warmup = (1, 0) if dry else (10, 3)
        self.tokens = {"tiny": 37} if dry else TOKENS


def _median_ms(fn: Callable[[], Any], sizes: Sizes) -> float:
    return median(time_calls(fn, sizes.runs, sizes.warmup, device_sync(sizes.device))) * 1e3


def _model(encoder: str, sizes: Sizes, dtype: str = "fp32") -> torch.nn.Module:
    return seeded_ours(encoder).to(device=sizes.device, dtype=DTYPES[dtype])


def _photos(results: Path) -> list[Path]:
    """Real photos (``$DAV2_SHARED_DIR``/images, ``shared/images`` in the repo, ``../shared/images``), else a
    synthetic 640x480 photo written under ``results``."""
    for folder in (SHARED / "images", ROOT / "shared" / "images"):
        try:
            return list_photos(folder)[:4]
        except ValueError:
            continue
    import cv2

    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    rng = np.random.default_rng(0)
    image = np.stack([xx / 640 * 255, yy / 480 * 255, 128 + 100 * np.sin(xx / 37) * np.cos(yy / 23)], -1)
    cv2.circle(image, (420, 200), 90, (30, 200, 60), -1)
    cv2.rectangle(image, (80, 260), (300, 440), (220, 40, 40), -1)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    path = results / "photos" / "synthetic_640x480.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise RuntimeError(f"could not write {path}")
    return [path]


def _photo_batch(results: Path, count: int, height: int, width: int) -> torch.Tensor:
    """``count`` different frames [count,H,W,3] float 0..1 from the photos (resized, flipped, shifted)."""
    import cv2

    photos = [read_bgr(p) for p in _photos(results)]
    frames = []
    for index in range(count):
        bgr = cv2.resize(photos[index % len(photos)], (width, height), interpolation=cv2.INTER_AREA)
        bgr = np.roll(bgr[:, ::-1] if index % 2 else bgr, index * 7, axis=1)
        frames.append(bgr_to_images(bgr)[0])
    return torch.stack(frames)


# ----------------------------------------------------------------------------------------- steps
def step_env(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Versions of everything that decides GPU behaviour, and the photos the later steps use."""
    import cv2

    info: dict[str, Any] = {
        **machine_info(),
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "tf32_defaults": tf32_flags(),
        "official_package": official_available(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            sdp_enabled={
                name: getattr(torch.backends.cuda, f"{name}_sdp_enabled")()
                for name in ("flash", "mem_efficient", "math", "cudnn")
                if hasattr(torch.backends.cuda, f"{name}_sdp_enabled")
            },
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable ({type(exc).__name__})"
    photos = _photos(args.results)
    info["photos"] = [str(p) for p in photos]
    (args.results / "photos.txt").write_text("\n".join(str(p) for p in photos) + "\n")
    gpu = info.get("gpu", "no GPU")
    summary = (
        f"{gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {info['cudnn']}, "
        f"driver {info['nvidia_smi'].split(',')[1].strip() if info['nvidia_smi'].count(',') >= 3 else '?'}; "
        f"{len(photos)} photo(s){' (synthetic)' if 'synthetic' in str(photos[0]) else ''}"
    )
    status = "ok" if sizes.dry or torch.cuda.is_available() else "fail"
    return {"status": status, "summary": summary, **info}


@torch.inference_mode()
def step_smoke(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Eager forward in every precision with TF32 off: finite, right shape; errors vs fp32 (and GPU vs CPU fp32)."""
    flags = set_tf32(False)
    images = _photo_batch(args.results, 2, 480, 640) if not sizes.dry else _photo_batch(args.results, 1, 42, 56)
    rows, ok = [], True
    for encoder in sizes.encoders:
        reference, base = None, seeded_ours(encoder)
        for dtype in sizes.dtypes:
            model = copy.deepcopy(base).to(device=sizes.device, dtype=DTYPES[dtype])
            depth = predict_depth(model, images, input_size=sizes.input_size, output_device=None)
            row: dict[str, Any] = {
                "encoder": encoder,
                "dtype": dtype,
                "finite": bool(torch.isfinite(depth).all()),
                "shape_ok": tuple(depth.shape) == tuple(images.shape[:3]),
                "ms_per_call": _median_ms(
                    lambda: predict_depth(model, images, input_size=sizes.input_size, output_device=None), sizes
                ),
            }
            if dtype == "fp32":
                reference = depth
                if encoder == "vits" and sizes.device.type == "cuda":
                    cpu = predict_depth(base, images.cpu(), input_size=sizes.input_size)
                    row["vs_cpu_fp32"] = compare(cpu, depth.cpu())
            elif reference is not None:
                row["vs_fp32"] = compare(reference, depth)
                row["within_target"] = row["vs_fp32"]["max_abs_over_range"] <= LOW_PRECISION_TARGET
            ok &= row["finite"] and row["shape_ok"]
            rows.append(row)
    worst_low = max((r["vs_fp32"]["max_abs_over_range"] for r in rows if "vs_fp32" in r), default=None)
    print_table(
        [{**r, "max_err": r.get("vs_fp32", r.get("vs_cpu_fp32", {})).get("max_abs_over_range")} for r in rows],
        ["encoder", "dtype", ("finite", "finite", ""), "ms_per_call", ("max_err", "max err/range", ".2e")],
    )
    summary = f"{len(rows)} runs {'all finite' if ok else 'NOT all finite/shaped'}"
    if worst_low is not None:
        summary += f"; worst half-precision max err {worst_low:.1e} x range (target {LOW_PRECISION_TARGET:g})"
    return {"status": "ok" if ok else "fail", "summary": summary, "tf32": flags, "rows": rows}


@torch.inference_mode()
def step_sdpa(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Each SDPA backend at the model's real token counts (batch 8, the encoders' head counts, 64 channels per head):
    max error vs a float64 math reference on the same inputs, and median time."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    set_tf32(False)
    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends["cudnn"] = SDPBackend.CUDNN_ATTENTION
    batch = 1 if sizes.dry else 8
    rows = []
    for encoder in sizes.encoders:
        for shape, tokens in sizes.tokens.items():
            gen = torch.Generator(device=sizes.device).manual_seed(tokens)
            q, k, v = (
                torch.randn(batch, HEADS[encoder], tokens, HEAD_DIM[encoder], device=sizes.device, generator=gen)
                for _ in range(3)
            )
            for dtype in ["fp32", "fp16", "bf16"] if not sizes.dry else ["fp32", "bf16"]:
                qd, kd, vd = (t.to(DTYPES[dtype]) for t in (q, k, v))
                with sdpa_kernel(SDPBackend.MATH):  # float64 reference on the same (rounded) inputs: kernel error only
                    ref = torch.nn.functional.scaled_dot_product_attention(qd.double(), kd.double(), vd.double())
                for name, backend in [("default", None), *backends.items()]:
                    row: dict[str, Any] = {
                        "encoder": encoder,
                        "tokens": tokens,
                        "input": shape,
                        "dtype": dtype,
                        "backend": name,
                    }

                    def call() -> torch.Tensor:
                        if backend is None:
                            return torch.nn.functional.scaled_dot_product_attention(qd, kd, vd)
                        with sdpa_kernel(backend):
                            return torch.nn.functional.scaled_dot_product_attention(qd, kd, vd)

                    try:
                        out = call()
                        row["max_abs_err"] = float((out.double() - ref).abs().max())
                        row["ms"] = _median_ms(call, sizes)
                    except RuntimeError as exc:
                        row["unsupported"] = str(exc).splitlines()[0][:120]
                    rows.append(row)
    print_table(
        rows,
        [
            ("encoder", "enc", "s"),
            ("tokens", "tokens", "d"),
            "dtype",
            ("backend", "backend", "s"),
            ("ms", "ms", ".3f"),
            ("max_abs_err", "max err", ".1e"),
            ("unsupported", "unsupported", "s"),
        ],
    )
    fastest = {}
    for row in rows:
        if "ms" in row and row["backend"] != "default":
            key = (row["dtype"], row["tokens"], row["encoder"])
            if key not in fastest or row["ms"] < fastest[key]["ms"]:
                fastest[key] = row
    half = [r for r in fastest.values() if r["dtype"] != "fp32"]
    summary = ", ".join(f"{r['dtype']}/{r['tokens']}/{r['encoder']}: {r['backend']} {r['ms']:.3f} ms" for r in half[:4])
    bad = [r for r in rows if "max_abs_err" in r and r["max_abs_err"] > (2e-2 if r["dtype"] != "fp32" else 1e-4)]
    return {
        "status": "fail" if bad else "ok",
        "summary": f"fastest: {summary}" + (f"; {len(bad)} inaccurate" if bad else ""),
        "batch": batch,
        "head_dim": 64,
        "rows": rows,
    }


@torch.inference_mode()
def step_chunks(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """``predict_depth`` gives the same depth whatever the chunk size (and with flip TTA)."""
    set_tf32(False)
    count = 3 if sizes.dry else 8
    images = _photo_batch(args.results, count, 42, 56) if sizes.dry else _photo_batch(args.results, count, 360, 480)
    rows, ok = [], True
    for dtype in ("fp32",) if sizes.dry else ("fp32", "fp16"):  # (bf16 convolutions are very slow on most CPUs)
        model = _model("vits", sizes, dtype)
        for flip in (False, True):
            one = predict_depth(model, images, input_size=sizes.input_size, chunk_size=1, flip_tta=flip)
            for chunk in sorted({3, count}):
                got = predict_depth(model, images, input_size=sizes.input_size, chunk_size=chunk, flip_tta=flip)
                err = compare(one, got)["max_abs_over_range"]
                limit = 1e-4 if dtype == "fp32" else 1e-2
                rows.append(
                    {
                        "dtype": dtype,
                        "flip_tta": flip,
                        "chunk": chunk,
                        "vs_chunk_1": err,
                        "bitwise_equal": bool(torch.equal(one, got)),
                        "ok": err <= limit,
                    }
                )
                ok &= err <= limit
    print_table(
        rows,
        [
            "dtype",
            ("flip_tta", "flip", ""),
            ("chunk", "chunk", "d"),
            ("vs_chunk_1", "max err/range vs chunk 1", ".1e"),
            ("bitwise_equal", "bitwise", ""),
        ],
    )
    worst_err = max(r["vs_chunk_1"] for r in rows)
    return {
        "status": "ok" if ok else "fail",
        "frames": count,
        "summary": f"{len(rows)} comparisons, worst {worst_err:.1e} x range vs chunk 1",
        "rows": rows,
    }


@torch.inference_mode()
def step_oom(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """A memory cap (``set_per_process_memory_fraction``) forces out-of-memory: the chunk must halve until it
    fits and give the same depth; a cap below one image must end in a clear error."""
    if sizes.dry:
        return {"status": "skipped", "summary": "CUDA only (memory fraction); halving is unit-tested on CPU"}
    from dav2_core.memory import is_out_of_memory

    set_tf32(False)
    device = sizes.device
    model = _model("vits", sizes, "fp16")
    images = _photo_batch(args.results, 16, 540, 960)
    reference = predict_depth(model, images, input_size=sizes.input_size, chunk_size=1)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    predict_depth(model, images[:2], input_size=sizes.input_size, chunk_size=2)
    per_image = (torch.cuda.max_memory_allocated(device) - base) / 2
    total = torch.cuda.get_device_properties(device).total_memory
    handler = OomRetries()
    result: dict[str, Any] = {"per_image_peak_mib": per_image / 2**20, "weights_mib": base / 2**20}
    try:
        for label, chunk in (("fixed chunk 16", 16), ("automatic chunk", None)):
            torch.cuda.empty_cache()
            cap = base + 3.5 * per_image  # room for about 3 images: 16 must halve to 2
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
            handler.messages.clear()
            start = time.perf_counter()
            try:
                with handler.watch():
                    got = predict_depth(model, images, input_size=sizes.input_size, chunk_size=chunk)
                err = compare(reference, got)["max_abs_over_range"]
                result[label] = {
                    "retries": len(handler.messages),
                    "max_err_vs_chunk_1": err,
                    "seconds": time.perf_counter() - start,
                    "messages": handler.messages[:6],
                }
            except Exception as exc:  # noqa: BLE001 - recorded: this is what the step is for
                result[label] = {
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                    "retries": len(handler.messages),
                }
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, (base + 0.3 * per_image) / total), device)
        try:
            predict_depth(model, images[:1], input_size=sizes.input_size, chunk_size=1)
            result["below_one_image"] = {"error": None}
        except Exception as exc:  # noqa: BLE001 - expected: an out-of-memory error saying what to do
            result["below_one_image"] = {
                "error": str(exc).splitlines()[0][:300],
                "type": type(exc).__name__,
                "is_out_of_memory": is_out_of_memory(exc),
            }
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    halved = [result[k] for k in ("fixed chunk 16", "automatic chunk")]
    ok = (
        all("error" not in r and r["max_err_vs_chunk_1"] <= 1e-2 for r in halved)
        and halved[0]["retries"] >= 1
        and bool(result["below_one_image"].get("is_out_of_memory"))
    )
    summary = (
        f"chunk 16: {halved[0].get('retries', '?')} halvings, err {halved[0].get('max_err_vs_chunk_1', float('nan')):.1e}; "
        f"auto: {halved[1].get('retries', '?')} halvings; below one image: "
        f"{'clear error' if result['below_one_image']['error'] else 'NO error'}"
    )
    return {"status": "ok" if ok else "fail", "summary": summary, **result}


@torch.inference_mode()
def step_compile(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """``dav2_core.accel.optimize`` (reduce-overhead on CUDA) with recompile logging: compile time, speed-up,
    error vs eager, and whether the calls really ran compiled. Writes partial results as it goes."""
    from dav2_core import accel

    torch._logging.set_logs(recompiles=True, graph_breaks=True)
    set_tf32(False)
    dtype = "fp32" if sizes.dry else "fp16"
    side = 28 if sizes.dry else 518
    eager = _model("vits", sizes, dtype)
    compiled = accel.optimize(_model("vits", sizes, dtype))
    result: dict[str, Any] = {
        "dtype": dtype,
        "size": side,
        "mode": "default" if sizes.dry else "reduce-overhead",
        "status": "fail",
        "summary": "did not finish",
        "rows": [],
    }
    if accel.compile_stats(compiled) is None:
        return {**result, "summary": "torch.compile is unavailable here (the warning above says why)"}
    for batch in (1, 2) if sizes.dry else (1, 8):
        x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(batch)).to(
            sizes.device, DTYPES[dtype]
        )
        start = time.perf_counter()
        out = compiled(x)
        if sizes.device.type == "cuda":
            torch.cuda.synchronize()
        first = time.perf_counter() - start
        expected = eager(x)
        row = {
            "batch": batch,
            "first_call_s": first,
            "vs_eager": compare(expected, out),
            "eager_ms": _median_ms(lambda: eager(x), sizes),
            "compiled_ms": _median_ms(lambda: compiled(x), sizes),
        }
        row["speedup"] = row["eager_ms"] / row["compiled_ms"]
        result["rows"].append(row)
        stats = accel.compile_stats(compiled)
        result["stats"] = {
            "compiles": stats.compiles,
            "compiled_calls": stats.compiled_calls,
            "eager_calls": stats.eager_calls,
            "failure": stats.failure,
        }
        write_json(args.results / "compile.json", result)  # partial, in case the time box ends the step
    stats = result["stats"]
    worst_err = max(r["vs_eager"]["max_abs_over_range"] for r in result["rows"])
    ok = stats["failure"] is None and stats["eager_calls"] == 0 and stats["compiles"] == 2 and worst_err <= 1e-2
    print_table(
        result["rows"],
        [
            "batch",
            ("first_call_s", "first call s", ".1f"),
            ("eager_ms", "eager ms", ".2f"),
            ("compiled_ms", "compiled ms", ".2f"),
            ("speedup", "speed-up", ".2f"),
        ],
    )
    result.update(
        status="ok" if ok else "fail",
        summary=(
            f"{stats['compiles']} graphs, {stats['compiled_calls']} compiled / {stats['eager_calls']} eager calls; "
            + ", ".join(
                f"b{r['batch']} {r['speedup']:.2f}x (compile {r['first_call_s']:.0f} s)" for r in result["rows"]
            )
            + f"; max err {worst_err:.1e} x range"
            + (f"; FAILURE {stats['failure']}" if stats["failure"] else "")
        ),
    )
    return result


# ----------------------------------------------------------------------------------------- summary
def step_summary(args: argparse.Namespace) -> dict[str, Any]:
    """One table over every step (status, seconds, summary) and one merged JSON ``gpu_first_run.json``."""
    timing = {}
    steps_file = args.results / "steps.tsv"
    if steps_file.is_file():
        for line in steps_file.read_text().splitlines():
            name, rc, seconds, box = (line.split("\t") + ["", "", "", ""])[:4]
            timing[name] = {"rc": rc, "seconds": seconds, "box": box}
    rows, merged = [], {"benchmark": "gpu_first_run", "dry_run": args.cpu_dry_run, "steps": {}}
    for name in (*STEPS, "bench_gpu", "bench_memory"):
        path = args.results / f"{name}.json"
        data = json.loads(path.read_text()) if path.is_file() else None
        run = timing.get(name, {})
        rc = run.get("rc", "")
        if data is None:
            status = {"not-run": "not run", "no-time": "no time left"}.get(rc, "no result")
        elif "skipped" in data and "status" not in data:
            status = "skipped"
        else:
            status = data.get("status", "ok")
        if rc in ("124", "137"):
            status = f"TIMED OUT ({status})"
        elif rc not in ("", "0", "not-run", "no-time") and not status.startswith("fail"):
            status = f"exit {rc} ({status})"
        summary = _bench_summary(name, data) if name.startswith("bench_") else (data or {}).get("summary", "")
        rows.append({"step": name, "status": status, "seconds": run.get("seconds", "-"), "summary": summary})
        merged["steps"][name] = {"status": status, "run": run, "result": data}
    print_table(
        rows, [("step", "step", "s"), ("status", "status", "s"), ("seconds", "s", "s"), ("summary", "summary", "s")]
    )
    write_json(args.results / "gpu_first_run.json", merged)
    return merged


def _bench_summary(name: str, data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    if "skipped" in data:
        return f"skipped: {data['skipped']}"
    if name == "bench_memory":
        ratio = data.get("peak_ratio_last_to_first")
        chunks = [r.get("chunks") for r in data.get("results", [])]
        return f"peak ratio {ratio:.2f} over frames {data['settings']['frames']} (chunks {chunks})" if ratio else ""
    best = {}
    for row in data.get("throughput", []):
        if "images_per_s" in row:
            key = (row["encoder"], row["dtype"])
            best[key] = max(best.get(key, 0.0), row["images_per_s"])
    return ", ".join(f"{e} {d} {v:.0f} img/s" for (e, d), v in best.items())


STEP_FUNCTIONS = {
    "env": step_env,
    "smoke": step_smoke,
    "sdpa": step_sdpa,
    "chunks": step_chunks,
    "oom": step_oom,
    "compile": step_compile,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=(*STEPS, "summary"))
    parser.add_argument("--results", type=Path, required=True, help="folder of the step JSON files")
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU; CUDA-only steps skipped")
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    if args.step == "summary":
        step_summary(args)
        return 0
    path = args.results / f"{args.step}.json"
    path.unlink(missing_ok=True)  # never report a stale result
    if not args.cpu_dry_run and not torch.cuda.is_available() and args.step != "env":
        result = {"status": "fail", "summary": "no CUDA device (use --cpu-dry-run to test the script on a CPU)"}
    else:
        sizes = Sizes(args.cpu_dry_run)
        try:
            result = STEP_FUNCTIONS[args.step](args, sizes)
        except Exception as exc:  # noqa: BLE001 - a failed step is a result; the next step still runs
            import traceback

            traceback.print_exc()
            partial = json.loads(path.read_text()) if path.is_file() else {}  # what the step saved before failing
            result = {
                **partial,
                "status": "fail",
                "summary": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            }
    write_json(path, result)
    print(f"{args.step}: {result['status']} - {result['summary']}")
    return 0 if result["status"] in ("ok", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
