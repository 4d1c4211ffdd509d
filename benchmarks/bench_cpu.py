"""CPU benchmark: the official ``infer_image`` vs ours, on the same seeded weights and the same photo.

For each encoder (``--encoders``, default vits,vitb) and in one run:

* speed - official ``infer_image``, our ``infer_image`` and our batched tensor API
  ``dav2_core.inference.predict_depth`` (fp32 at ``--batches``, bf16 at ``--bf16-batches``; a batch is the
  timed photo repeated B times, run as one chunk): median wall time per image over ``--runs`` calls after
  ``--warmup`` untimed calls, and the speed-up over official; with ``--compile`` also our paths through the
  engine's ``torch.compile`` fast path (``dav2_core.accel.optimize``; compilation happens in the warm-up);
* peak memory - every configuration runs in a fresh spawned process; after the model is built and the input
  prepared, the kernel's resident high-water mark is reset (``/proc/self/clear_refs``) and the reported
  figure is VmHWM minus VmRSS at that point: the working memory of the timed calls, weights excluded;
* accuracy - on every photo of ``--images`` (default: the timed photo): our ``infer_image`` and tensor API
  vs official ``infer_image`` (parity: we are the same model), and bf16 vs fp32 of our tensor API; max and
  mean abs error over the reference's output range, and Pearson;
* backends - a row per installed runtime backend and precision (``--backends``; ONNX Runtime fp32 and int8,
  OpenVINO fp32, int8 and bf16): its ``infer_image`` timed like ours (the ONNX export / compilation happens
  before timing), its accuracy vs official (the approximate int8/bf16 rows also vs our fp32), and the machine's exact-fp32 floor (forward FLOPs / measured fp32 GEMM
  rate, :mod:`benchmarks.backends`) with each row's efficiency against it.

The official model is called exactly as its users call it (its own ``infer_image``, under its own
``torch.no_grad``); ours under ``torch.inference_mode`` as the engine does. Weights are random
(``torch.manual_seed``), as the Hub is unreachable here; speed does not depend on weight values.

Full run (what ``make bench`` does)::

    .venv/bin/python benchmarks/bench_cpu.py --images ../shared/images --out bench-results/cpu.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import choice_list, int_list, positive_int  # noqa: E402
from benchmarks.accuracy import compare, worst  # noqa: E402
from benchmarks.memory import MIB, PeakRss, run_isolated  # noqa: E402
from benchmarks.models import (
    DTYPES,
    add_compile_argument,
    add_seed_argument,
    compile_model,
    is_compiled,
    load_accel,
    seeded_models,
    seeded_ours,
    time_model_calls,
)  # noqa: E402
from benchmarks.photos import add_photo_arguments, bgr_to_images, load_photos, read_bgr  # noqa: E402
from benchmarks.report import add_out_argument, print_accuracy, print_table, write_report  # noqa: E402
from benchmarks.timing import add_timing_arguments, median  # noqa: E402
from benchmarks.backends import accuracy as backend_accuracy, build_engine, cpu_rows, floor  # noqa: E402
from dav2_core.inference import predict_depth  # noqa: E402
from dav2_core.preprocess import network_size  # noqa: E402

CPU_ENCODERS = ("vits", "vitb", "vitl")
IMPLS = {
    "official": "official infer_image",
    "ours_infer_image": "our infer_image",
    "ours_tensor": "our predict_depth",
    "backend": "infer_image",  # prefixed with the backend's name
}
COMPARISONS = {
    "ours_infer_image_vs_official": "our infer_image vs official",
    "ours_tensor_fp32_vs_official": "our predict_depth fp32 vs official",
    "ours_tensor_bf16_vs_fp32": "our predict_depth bf16 vs fp32",
}


def measure_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Time one configuration and measure its peak RSS; meant to run in a fresh process (``run_isolated``)."""
    torch.set_num_threads(cfg["threads"])
    official, ours = seeded_models(cfg["encoder"], cfg["seed"])
    bgr = read_bgr(Path(cfg["photo"]))
    input_size = cfg["input_size"]
    if cfg["impl"] == "backend":
        del official
        model = build_engine(ours, cfg["backend"], cfg["dtype"], cfg["cache_dir"])
        del ours

        def call() -> Any:
            return model.infer_image(bgr, input_size)
    elif cfg["impl"] == "official":
        del ours
        model = official

        def call() -> Any:
            return model.infer_image(bgr, input_size)
    elif cfg["impl"] == "ours_infer_image":
        del official
        model = ours if cfg["mode"] == "eager" else compile_model(ours, cfg["compile"])

        def call() -> Any:
            return model.infer_image(bgr, input_size)
    else:
        del official
        model = ours.to(DTYPES[cfg["dtype"]])
        if cfg["mode"] == "compiled":
            model = compile_model(model, cfg["compile"])
        images = bgr_to_images(bgr, cfg["batch"])

        def call() -> Any:
            return predict_depth(model, images, input_size=input_size, chunk_size=cfg["batch"])

    gc.collect()
    rss = PeakRss()
    rss.start()
    times, ran = time_model_calls(model, call, cfg["runs"], cfg["warmup"])
    peak = rss.peak_growth()
    per_image = median(times) / cfg["batch"]
    return {
        **{k: cfg[k] for k in ("encoder", "impl", "mode", "dtype", "batch")},
        **({"backend": cfg["backend"]} if cfg["impl"] == "backend" else {}),
        **({"compiled_active": is_compiled(model), **ran} if cfg["mode"] == "compiled" else {}),
        "label": f"{cfg['backend']} {IMPLS['backend']}" if cfg["impl"] == "backend" else IMPLS[cfg["impl"]],
        "median_ms_per_image": per_image * 1e3,
        "images_per_s": 1.0 / per_image,
        "call_ms": [t * 1e3 for t in times],
        "peak_rss_mib": peak / MIB,
        "rss_after_load_mib": rss.baseline / MIB,
        "memory_method": rss.method,
    }


def shared_settings(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """What every configuration runs with (and the report's settings record): photo, network input size,
    timed and warm-up calls, torch threads, seed, compile mode."""
    return {
        "photo": str(args.photo),
        "input_size": args.input_size,
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": threads,
        "seed": args.seed,
        "compile": args.compile,
    }


def configurations(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """Every timed configuration, official first for each encoder; with --compile each of ours also compiled."""
    common = shared_settings(args, threads)
    modes = ["eager", "compiled"] if args.compile else ["eager"]
    configs = []
    for encoder in args.encoders:
        configs.append({**common, "encoder": encoder, "impl": "official", "mode": "eager", "dtype": "fp32", "batch": 1})
        for mode in modes:
            configs.append(
                {**common, "encoder": encoder, "impl": "ours_infer_image", "mode": mode, "dtype": "fp32", "batch": 1}
            )
            for dtype, batches in (("fp32", args.batches), ("bf16", args.bf16_batches)):
                for batch in batches:
                    configs.append(
                        {
                            **common,
                            "encoder": encoder,
                            "impl": "ours_tensor",
                            "mode": mode,
                            "dtype": dtype,
                            "batch": batch,
                        }
                    )
        for backend, precision in cpu_rows(args.backends):
            configs.append(
                {
                    **common,
                    "encoder": encoder,
                    "impl": "backend",
                    "backend": backend,
                    "mode": "eager",
                    "dtype": precision,
                    "batch": 1,
                    "cache_dir": str(args.cache_dir),
                }
            )
    return configs


def accuracy(encoder: str, photos: list[Path], input_size: int, seed: int) -> dict[str, Any]:
    """Parity with official and bf16-vs-fp32 error on every photo; per photo and the worst case."""
    official, ours = seeded_models(encoder, seed)
    low = copy.deepcopy(ours).to(torch.bfloat16)
    per_photo = []
    for path in photos:
        bgr = read_bgr(path)
        expected = official.infer_image(bgr, input_size)
        images = bgr_to_images(bgr)
        fp32 = predict_depth(ours, images, input_size=input_size)[0]
        per_photo.append(
            {
                "photo": path.name,
                "size": list(bgr.shape[:2]),
                "ours_infer_image_vs_official": compare(expected, ours.infer_image(bgr, input_size)),
                "ours_tensor_fp32_vs_official": compare(expected, fp32),
                "ours_tensor_bf16_vs_fp32": compare(fp32, predict_depth(low, images, input_size=input_size)[0]),
            }
        )
    keys = ("ours_infer_image_vs_official", "ours_tensor_fp32_vs_official", "ours_tensor_bf16_vs_fp32")
    return {"encoder": encoder, "worst": {k: worst([p[k] for p in per_photo]) for k in keys}, "photos": per_photo}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_photo_arguments(
        parser,
        "timed photo (default: ../shared/depth_gt/nyu/rgb/rgb_00000.jpg, 640x480 -> 518x686)",
        "folder of photos for the accuracy figures (default: the timed photo only)",
    )
    parser.add_argument("--encoders", type=choice_list(CPU_ENCODERS), default=["vits", "vitb"])
    parser.add_argument("--batches", type=int_list, default=[1, 4], help="fp32 tensor-API batch sizes (e.g. 1,4,16)")
    parser.add_argument(
        "--bf16-batches",
        type=lambda s: int_list(s) if s.strip() else [],
        default=[],
        help="also time bf16 at these batch sizes, e.g. 1 (default none: CPUs without native bf16 "
        "run it many times slower; the bf16 error is always measured)",
    )
    add_timing_arguments(parser, 5, 1, "timed calls per configuration (median)", "untimed calls first")
    parser.add_argument("--input-size", type=positive_int, default=518)
    add_compile_argument(
        parser,
        "also time our paths through dav2_core.accel.optimize (torch.compile; MODE auto = the "
        "engine's choice); errors if the engine has no fast path",
    )
    parser.add_argument(
        "--backends",
        type=lambda s: [b for b in s.split(",") if b] if s.strip() else [],
        default=None,
        help="runtime backends to time (comma list of onnxruntime,openvino; default: every installed one; '' for none)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="engine cache for the backends' ONNX exports (default: a temporary folder)",
    )
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's own)")
    add_seed_argument(parser)
    add_out_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    photos, bgr = load_photos(args, "bench_cpu")
    if args.compile:
        load_accel(args.compile)  # fail before measuring anything
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    height, width = bgr.shape[:2]
    net = network_size(height, width, args.input_size)
    print(
        f"bench_cpu: {args.photo.name} {width}x{height} -> network {net[1]}x{net[0]}, {threads} threads, "
        f"{args.runs} runs after {args.warmup} warm-up, encoders {','.join(args.encoders)}"
    )

    scratch = None
    if args.cache_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="bench-engines-")
        args.cache_dir = Path(scratch.name)
    results = []
    for cfg in configurations(args, threads):
        row = run_isolated(measure_config, cfg)
        results.append(row)
        print(
            f"  {row['encoder']} {row['label']} {row['mode']} {row['dtype']} b{row['batch']}: "
            f"{row['median_ms_per_image']:.1f} ms/image, peak +{row['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    floors = {}
    for encoder in args.encoders:
        floors[encoder] = floor(seeded_ours(encoder, args.seed), net)
        print(
            f"  {encoder} fp32 floor: {floors[encoder]['forward_gflops']:.1f} GFLOP / "
            f"{floors[encoder]['gemm_gflops_per_s']:.0f} GFLOP/s = {floors[encoder]['floor_ms']:.0f} ms",
            flush=True,
        )
    for row in results:
        base = next(r for r in results if r["encoder"] == row["encoder"] and r["impl"] == "official")
        row["speedup_vs_official"] = base["median_ms_per_image"] / row["median_ms_per_image"]
        row["floor_efficiency"] = floors[row["encoder"]]["floor_ms"] / row["median_ms_per_image"]

    acc = [accuracy(encoder, photos, args.input_size, args.seed) for encoder in args.encoders]
    backend_acc = []
    for encoder in args.encoders:
        official, ours = seeded_models(encoder, args.seed)
        rows = cpu_rows(args.backends)
        backend_acc += [
            {"encoder": encoder, **a}
            for a in backend_accuracy(official, ours, rows, photos, args.input_size, args.cache_dir)
        ]
    if scratch is not None:
        scratch.cleanup()

    print()
    print_table(
        results,
        [
            "encoder",
            ("label", "implementation", "s"),
            "mode",
            "dtype",
            "batch",
            ("median_ms_per_image", "ms/image", ".1f"),
            ("images_per_s", "images/s", ".2f"),
            "speedup_vs_official",
            ("peak_rss_mib", "peak RSS MiB", ".0f"),
            ("floor_efficiency", "of fp32 floor", ".0%"),
        ],
    )
    print(
        "fp32 floor (forward FLOPs / measured fp32 GEMM rate, one image): "
        + ", ".join(
            f"{e} {f['floor_ms']:.0f} ms ({f['forward_gflops']:.1f} GFLOP at {f['gemm_gflops_per_s']:.0f} GFLOP/s)"
            for e, f in floors.items()
        )
    )
    acc_rows = [
        {"encoder": a["encoder"], "comparison": COMPARISONS[k], **v} for a in acc for k, v in a["worst"].items()
    ]
    acc_rows += [
        {"encoder": a["encoder"], "comparison": f"{a['backend']} {a['precision']} infer_image vs {what}", **a[key]}
        for a in backend_acc
        for key, what in (("vs_official", "official"), ("vs_ours_fp32", "our fp32"))
        if key == "vs_official" or a["precision"] != "fp32"
    ]
    print_accuracy(acc_rows, len(photos))

    return write_report(
        args.out,
        "cpu",
        argv,
        settings={
            "photo": str(args.photo),  # first, the sizes next: **shared_settings keeps the keys' order
            "photo_size_hw": [height, width],
            "network_size_hw": list(net),
            **shared_settings(args, threads),
            "batch_input": "the timed photo repeated B times, one chunk",
            "memory": "peak_rss_mib = VmHWM - VmRSS after model load and input preparation, in a fresh process "
            "per configuration (high-water mark reset via /proc/self/clear_refs); weights excluded",
            "weights": "random init under torch.manual_seed(seed), final conv bias 0.05",
        },
        results=results,
        floor=floors,
        accuracy=acc,
        backend_accuracy=backend_acc,
    )


if __name__ == "__main__":
    main()
