"""GPU (CUDA) benchmark: official ``infer_image`` vs ours, and the batched tensor API's throughput.

On the first CUDA device, with the same seeded weights as ``bench_cpu.py``:

* ``infer_image`` - official vs ours in fp32 on ``--photo`` (640x480 -> 518x686 by default): median ms per
  image after warm-up and the speed-up (the official method moves its input to CUDA itself);
* throughput - ``predict_depth`` on ``--size`` x ``--size`` images already on the GPU (the photo resized,
  repeated B times, one chunk, depth left on the GPU), for ``--encoders`` x ``--dtypes`` x ``--batches``:
  images/s, ms per call (the batch-1 row is the latency), and ``torch.cuda.max_memory_allocated`` during
  the timed calls (reset after the warm-up; total, and above the weights). Each (encoder, dtype, mode)
  model is released - compiled graphs included - before the next, so rows do not inherit memory;
* accuracy on the photos of ``--images`` (default: ``--photo``): our ``infer_image`` vs official (parity) and
  fp16/bf16 vs fp32 of the tensor API (max/mean abs error over the fp32 output range, Pearson).

Runtime backends: when installed, TensorRT fp16 (ONNX Runtime's TensorRT provider) and ONNX Runtime CUDA
fp16 engines of the same weights get throughput rows (dtype "tensorrt fp16" / "onnxruntime fp16", mode
"engine"; peak MiB counts torch allocations only) and an accuracy row vs our fp32 ``infer_image``.

``--compile`` adds rows for the engine's fast path (``dav2_core.accel.optimize``) and stops with a clear
message when the engine has none; each compiled row says whether every timed call really ran a compiled
graph (``ran_compiled``, from ``dav2_core.accel.compile_stats``). TF32 is off unless ``--tf32`` (fp32 means
fp32); the flags in force are recorded in ``settings.tf32``. Without CUDA the script prints why, writes ``{"skipped": "no CUDA device"}``
and exits 0 - no GPU figure is ever claimed from a CPU run.

Full run::

    .venv/bin/python benchmarks/bench_gpu.py --images ../shared/images --out bench-results/gpu.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import choice_list, int_list, positive_int  # noqa: E402
from benchmarks.accuracy import compare, worst  # noqa: E402
from benchmarks.memory import MIB  # noqa: E402
from benchmarks.models import (
    DTYPES,
    add_compile_argument,
    add_seed_argument,
    compile_model,
    free_memory,
    is_compiled,
    load_accel,
    official_available,
    release_model,
    seeded_models,
    seeded_ours,
    set_tf32,
    time_model_calls,
)  # noqa: E402
from benchmarks.photos import add_photo_arguments, bgr_to_images, load_photos, read_bgr  # noqa: E402
from benchmarks.report import add_out_argument, print_accuracy, print_table, write_json, write_report  # noqa: E402
from benchmarks.timing import OomRetries, add_timing_arguments, device_sync, median, time_calls  # noqa: E402
from benchmarks.backends import build_engine, gpu_rows  # noqa: E402
from dav2_core.inference import predict_depth  # noqa: E402
from dav2_core.memory import OutOfMemoryError  # noqa: E402
from dav2_core.preprocess import network_size  # noqa: E402

GPU_ENCODERS = ("vits", "vitb", "vitl")


def infer_image_row(model: torch.nn.Module, bgr: np.ndarray, input_size: int, runs: int, warmup: int) -> dict[str, Any]:
    """Median ms per ``infer_image`` call (the result comes back to the host, so each call is synchronous)."""
    times = time_calls(lambda: model.infer_image(bgr, input_size), runs, warmup)
    return {"median_ms_per_image": median(times) * 1e3, "call_ms": [t * 1e3 for t in times]}


def throughput_row(
    model: torch.nn.Module, images: torch.Tensor, input_size: int, runs: int, warmup: int
) -> dict[str, Any]:
    """Time ``predict_depth`` on ``images`` [B,H,W,3] (on the model's device) as one chunk; CUDA peak memory.

    Returns images/s, ms per call, and on CUDA: ``peak_allocated_mib`` (max_memory_allocated during the timed
    calls; the counter is reset *after* the warm-up, so compilation and CUDA-graph recording do not count, but
    memory they keep - graph pools, frozen weights - does), ``resident_before_mib`` (allocated before the
    warm-up: weights and input) and ``peak_above_weights_mib`` (the difference). For an optimized model,
    ``compiled_row`` fields say whether every timed call really ran compiled. ``oom_retries`` > 0 means the
    engine had to split the batch. An out-of-memory failure at chunk 1 is reported as ``error``.
    """
    device = images.device
    batch = images.shape[0]
    reset_peak = (lambda: torch.cuda.reset_peak_memory_stats(device)) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
    try:
        with OomRetries().watch() as handler:
            times, ran = time_model_calls(
                model,
                lambda: predict_depth(model, images, input_size=input_size, chunk_size=batch, output_device=None),
                runs,
                warmup,
                device_sync(device),
                reset_peak,
            )
    except OutOfMemoryError as exc:
        return {"error": f"out of memory: {str(exc).splitlines()[0]}"}
    call = median(times)
    row: dict[str, Any] = {
        "ms_per_call": call * 1e3,
        "images_per_s": batch / call,
        "call_ms": [t * 1e3 for t in times],
        "oom_retries": handler.count,
        **ran,
    }
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        row.update(
            peak_allocated_mib=peak / MIB,
            resident_before_mib=before / MIB,
            peak_above_weights_mib=(peak - before) / MIB,
            peak_reserved_mib=torch.cuda.max_memory_reserved(device) / MIB,
        )
    return row


def variant_rows(
    ours: torch.nn.Module, square: np.ndarray, encoder: str, dtype: str, mode: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Throughput rows of one (encoder, dtype, eager/compiled) model over ``args.batches``; the model (and, when
    compiled, its graphs) is released before returning, so the next variant starts from the same memory."""
    device = next(ours.parameters()).device
    model = copy.deepcopy(ours).to(DTYPES[dtype])
    if mode == "compiled":
        compile_model(model, args.compile)
    rows = []
    try:
        for batch in args.batches:
            images = bgr_to_images(square, batch).to(device)
            row = {
                "encoder": encoder,
                "dtype": dtype,
                "mode": mode,
                "batch": batch,
                **throughput_row(model, images, args.input_size, args.runs, args.warmup),
            }
            if mode == "compiled":
                row["compiled_active"] = is_compiled(model)  # False when the engine fell back to eager (it warns once)
            rows.append(row)
            del images
            ran = (
                ""
                if mode == "eager"
                else (" (all timed calls compiled)" if row.get("ran_compiled") else " (NOT all timed calls compiled)")
            )
            print(
                f"  {encoder} {dtype} {mode} b{batch}: "
                + (
                    row.get("error")
                    or f"{row['images_per_s']:.0f} images/s, {row['ms_per_call']:.2f} ms/call, "
                    f"peak {row.get('peak_allocated_mib', 0):.0f} MiB{ran}"
                ),
                flush=True,
            )
    finally:
        release_model(model)
        del model
        free_memory()
    return rows


def precision_errors(model: torch.nn.Module, photos: list[Path], dtypes: list[str], input_size: int) -> dict[str, Any]:
    """fp16/bf16 vs fp32 ``predict_depth`` on each photo (model on its device, fp32); worst case and per photo."""
    low = {name: copy.deepcopy(model).to(DTYPES[name]) for name in dtypes if name != "fp32"}
    per_photo = []
    for path in photos:
        images = bgr_to_images(read_bgr(path))
        ref = predict_depth(model, images, input_size=input_size)[0]
        per_photo.append(
            {
                "photo": path.name,
                **{
                    f"{name}_vs_fp32": compare(ref, predict_depth(m, images, input_size=input_size)[0])
                    for name, m in low.items()
                },
            }
        )
    keys = [f"{name}_vs_fp32" for name in low]
    del low
    return {"worst": {k: worst([p[k] for p in per_photo]) for k in keys}, "photos": per_photo}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_photo_arguments(
        parser,
        "photo for infer_image and the throughput input (default: the 640x480 NYU frame)",
        "folder of photos for the accuracy figures",
    )
    parser.add_argument("--encoders", type=choice_list(GPU_ENCODERS), default=["vits", "vitl"])
    parser.add_argument("--dtypes", type=choice_list(tuple(DTYPES)), default=["fp32", "fp16", "bf16"])
    parser.add_argument("--batches", type=int_list, default=[1, 8, 32, 64])
    parser.add_argument("--size", type=positive_int, default=518, help="square throughput input side, pixels")
    parser.add_argument("--input-size", type=positive_int, default=518, help="network input_size")
    add_timing_arguments(parser, 10, 3)
    add_compile_argument(
        parser,
        "also time the engine's fast path dav2_core.accel.optimize (torch.compile; MODE auto = "
        "the engine's choice, reduce-overhead with CUDA graphs on CUDA); errors if not available",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 for fp32 matmuls and convolutions (default: off, so fp32 rows and the fp32 "
        "reference of the accuracy figures are true fp32); the flags are recorded either way",
    )
    add_seed_argument(parser)
    add_out_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench_gpu: skipped - no CUDA device on this machine; no GPU figures measured "
            "(run bench_cpu.py for the CPU numbers)"
        )
        report: dict[str, Any] = {"skipped": "no CUDA device"}
        write_json(args.out, report)
        return report
    if args.compile:
        load_accel(args.compile)  # fail before measuring anything
    photos, bgr = load_photos(args, "bench_gpu")
    tf32 = set_tf32(args.tf32)
    device = torch.device("cuda")
    square = cv2.resize(bgr, (args.size, args.size), interpolation=cv2.INTER_AREA)
    print(
        f"bench_gpu: {torch.cuda.get_device_name(device)}, infer_image on {args.photo.name} "
        f"{bgr.shape[1]}x{bgr.shape[0]}, throughput at {args.size}x{args.size}, {args.runs} runs after {args.warmup} warm-up"
    )

    infer_rows, throughput, parity, precision = [], [], [], []
    with_official = official_available()
    if not with_official:
        print(
            "  official package (jkp-depth-anything-v2) not installed here: official infer_image rows and parity "
            "skipped; our model uses its own seeded init"
        )
    for encoder in args.encoders:
        official, ours = seeded_models(encoder, args.seed) if with_official else (None, seeded_ours(encoder, args.seed))
        ours.to(device)
        our = {
            "encoder": encoder,
            "impl": "our infer_image",
            **infer_image_row(ours, bgr, args.input_size, args.runs, args.warmup),
        }
        if with_official:  # infer_image: official vs ours, fp32, and parity on every photo
            official.to(device)
            off = {
                "encoder": encoder,
                "impl": "official infer_image",
                **infer_image_row(official, bgr, args.input_size, args.runs, args.warmup),
            }
            our["speedup_vs_official"] = off["median_ms_per_image"] / our["median_ms_per_image"]
            infer_rows.append(off)
            comparisons = [
                compare(
                    official.infer_image(read_bgr(p), args.input_size), ours.infer_image(read_bgr(p), args.input_size)
                )
                for p in photos
            ]
            parity.append({"encoder": encoder, "comparison": "our infer_image vs official", **worst(comparisons)})
            print(
                f"  {encoder} infer_image: official {off['median_ms_per_image']:.2f} ms, ours {our['median_ms_per_image']:.2f} ms "
                f"({our['speedup_vs_official']:.2f}x)",
                flush=True,
            )
        infer_rows.append(our)
        del official
        free_memory()
        # Throughput of the tensor API, eager and (with --compile) the engine's fast path.
        modes = ["eager", "compiled"] if args.compile else ["eager"]
        for dtype in args.dtypes:
            for mode in modes:
                throughput += variant_rows(ours, square, encoder, dtype, mode, args)
        for backend, precision_name in gpu_rows():  # TensorRT / ONNX Runtime CUDA engines of the same weights
            with tempfile.TemporaryDirectory(prefix="bench-engines-") as cache:
                engine = build_engine(copy.deepcopy(ours).float().cpu(), backend, precision_name, cache, device="cuda")
                for batch in args.batches:
                    images = bgr_to_images(square, batch).to(device)
                    row = {
                        "encoder": encoder,
                        "dtype": f"{backend} {precision_name}",
                        "mode": "engine",
                        "batch": batch,
                        **throughput_row(engine, images, args.input_size, args.runs, args.warmup),
                    }
                    throughput.append(row)
                    print(
                        f"  {encoder} {backend} {precision_name} b{batch}: "
                        + (row.get("error") or f"{row['images_per_s']:.0f} images/s, {row['ms_per_call']:.2f} ms/call"),
                        flush=True,
                    )
                comparisons = [
                    compare(
                        ours.infer_image(read_bgr(p), args.input_size), engine.infer_image(read_bgr(p), args.input_size)
                    )
                    for p in photos
                ]
                parity.append(
                    {"encoder": encoder, "comparison": f"{backend} {precision_name} vs our fp32", **worst(comparisons)}
                )
                engine.close()
                del engine
        errors = precision_errors(ours, photos, args.dtypes, args.input_size)
        precision.append({"encoder": encoder, **errors})
        del ours
        free_memory()

    print()
    print_table(
        infer_rows,
        ["encoder", ("impl", "implementation", "s"), ("median_ms_per_image", "ms/image", ".2f"), "speedup_vs_official"],
    )
    print()
    print_table(
        throughput,
        [
            "encoder",
            "dtype",
            "mode",
            "batch",
            ("images_per_s", "images/s", ".0f"),
            "ms_per_call",
            ("peak_allocated_mib", "peak MiB", ".0f"),
            ("oom_retries", "OOM splits", "d"),
            ("ran_compiled", "ran compiled", ""),
            ("error", "error", "s"),
        ],
    )
    acc_rows = parity + [
        {"encoder": p["encoder"], "comparison": k.replace("_", " "), **v}
        for p in precision
        for k, v in p["worst"].items()
    ]
    print_accuracy(acc_rows, len(photos))

    return write_report(
        args.out,
        "gpu",
        argv,
        settings={
            "photo": str(args.photo),
            "photo_size_hw": list(bgr.shape[:2]),
            "network_size_hw": list(network_size(*bgr.shape[:2], args.input_size)),
            "throughput_size": args.size,
            "input_size": args.input_size,
            "runs": args.runs,
            "warmup": args.warmup,
            "seed": args.seed,
            "compile": args.compile,
            "tf32": tf32,
            "official": "jkp-depth-anything-v2" if with_official else "not installed: official rows and parity skipped",
            "throughput_input": "the photo resized to size x size, repeated B times, on the GPU; depth left on the GPU",
            "memory": "torch.cuda.max_memory_allocated during the timed calls, reset after the warm-up "
            "(peak_allocated_mib), and that minus the memory allocated before the warm-up "
            "(peak_above_weights_mib); every model and its compiled graphs are released between variants",
        },
        infer_image=infer_rows,
        throughput=throughput,
        accuracy={"parity": parity, "precision": precision},
    )


if __name__ == "__main__":
    main()
