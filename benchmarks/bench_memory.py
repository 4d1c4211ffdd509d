"""Memory benchmark: does ``predict_depth``'s peak memory stay flat as the number of frames grows?

CUDA (default: 100 vs 1,000 frames of 1920x1080, vits fp16, chunks of 16 frames): frames live on the host,
depth comes back to the host; reported is ``torch.cuda.max_memory_allocated`` during the call (the counter is
reset after a one-chunk warm-up, so CUDA/cuDNN initialisation does not count), total and above the weights.
Flat = the engine streams chunks through the GPU and lets each go at once.

The chunk size is fixed (``--chunk-size``, 0 = the engine's automatic size) so that every frame count runs
as *several* chunks: with automatic sizing a large GPU could take 100 frames in one or two chunks, and
"flat memory" would hold trivially. The output says how many chunks each count took.

Without CUDA a reduced version runs instead (default: 8 vs 32 frames of 480x270, fp32, chunks of 2), and says
so: each frame count runs in a fresh process; after the model is built, the frames prepared and one chunk
run as warm-up, the resident high-water mark is reset (``/proc/self/clear_refs``) and the figure is the peak
RSS growth during the call minus the output tensor itself (B x H x W float32, which must grow with B).

The frames are one photo repeated through a stride-0 view (``expand``): the input costs no memory, so
everything measured is the engine's own working memory.

Full runs::

    .venv/bin/python benchmarks/bench_memory.py --out bench-results/memory.json            # CUDA: 100 vs 1000 x 1080p
    .venv/bin/python benchmarks/bench_memory.py --out bench-results/memory-cpu.json        # CPU: reduced
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import int_list, non_negative_int, positive_int  # noqa: E402
from benchmarks.memory import MIB, PeakRss, run_isolated  # noqa: E402
from benchmarks.models import DTYPES, add_seed_argument, seeded_ours, set_tf32, tf32_flags  # noqa: E402
from benchmarks.photos import add_photo_arguments, bgr_to_images, read_bgr, resolve_photo  # noqa: E402
from benchmarks.report import add_out_argument, print_table, write_report  # noqa: E402
from dav2_core.inference import auto_chunk_size, predict_depth  # noqa: E402
from dav2_core.preprocess import network_size  # noqa: E402

DEFAULTS = {  # device type -> frame counts, (height, width), dtype, chunk size
    "cuda": ([100, 1000], (1080, 1920), "fp16", 16),
    "cpu": ([8, 32], (270, 480), "fp32", 2),
}


def _frames(photo: Path, count: int, height: int, width: int) -> torch.Tensor:
    """``count`` frames [count,H,W,3] float32 0..1: the photo resized to HxW, repeated as a stride-0 view."""
    bgr = cv2.resize(read_bgr(photo), (width, height), interpolation=cv2.INTER_AREA)
    return bgr_to_images(bgr).expand(count, -1, -1, -1)


def _chunk(cfg: dict[str, Any], model: torch.nn.Module) -> int:
    """The chunk size the call will use: the given one, or the engine's automatic choice right now."""
    net = network_size(cfg["height"], cfg["width"], cfg["input_size"])
    return cfg["chunk_size"] or auto_chunk_size(model, net, (cfg["height"], cfg["width"]))


def _warm_up(cfg: dict[str, Any], model: torch.nn.Module, chunk: int) -> None:
    """One chunk through the engine first: library initialisation (CUDA context, cuDNN, oneDNN) is not measured."""
    frames = _frames(Path(cfg["photo"]), min(chunk, cfg["frames"]), cfg["height"], cfg["width"])
    predict_depth(model, frames, input_size=cfg["input_size"], chunk_size=chunk)


def _row(cfg: dict[str, Any], chunk: int, seconds: float, depth: torch.Tensor) -> dict[str, Any]:
    return {
        "frames": cfg["frames"],
        "chunk_size": chunk,
        "chunks": -(-cfg["frames"] // chunk),
        "seconds": seconds,
        "frames_per_s": cfg["frames"] / seconds,
        "output_mib": depth.nbytes / MIB,
    }


def _model(cfg: dict[str, Any], device: torch.device) -> torch.nn.Module:
    return seeded_ours(cfg["encoder"], cfg["seed"]).to(device=device, dtype=DTYPES[cfg["dtype"]])


def measure_cuda(cfg: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """GPU peak memory of one ``predict_depth`` call over ``cfg['frames']`` frames (output on the host)."""
    device = torch.device("cuda")
    frames = _frames(Path(cfg["photo"]), cfg["frames"], cfg["height"], cfg["width"])
    chunk = _chunk(cfg, model)
    _warm_up(cfg, model, chunk)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    depth = predict_depth(model, frames, input_size=cfg["input_size"], chunk_size=chunk)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device)
    return {
        **_row(cfg, chunk, seconds, depth),
        "peak_mib": peak / MIB,
        "peak_above_weights_mib": (peak - before) / MIB,
        "output_device": str(depth.device),
    }


def measure_cpu(cfg: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS growth of one ``predict_depth`` call on the CPU; meant for a fresh process (``run_isolated``)."""
    torch.set_num_threads(cfg["threads"])
    model = _model(cfg, torch.device("cpu"))
    frames = _frames(Path(cfg["photo"]), cfg["frames"], cfg["height"], cfg["width"])
    chunk = _chunk(cfg, model)
    _warm_up(cfg, model, chunk)
    gc.collect()
    rss = PeakRss()
    rss.start()
    start = time.perf_counter()
    depth = predict_depth(model, frames, input_size=cfg["input_size"], chunk_size=chunk)
    seconds = time.perf_counter() - start
    growth = rss.peak_growth()
    return {
        **_row(cfg, chunk, seconds, depth),
        "peak_rss_growth_mib": growth / MIB,
        "peak_beyond_output_mib": (growth - depth.nbytes) / MIB,
        "memory_method": rss.method,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_photo_arguments(parser, "frame content (default: the 640x480 NYU frame)")
    parser.add_argument(
        "--frames", type=int_list, default=None, help="frame counts to compare (default: 100,1000 on CUDA, 8,32 on CPU)"
    )
    parser.add_argument("--height", type=positive_int, default=None, help="frame height (default: 1080 CUDA, 270 CPU)")
    parser.add_argument("--width", type=positive_int, default=None, help="frame width (default: 1920 CUDA, 480 CPU)")
    parser.add_argument("--encoder", choices=("vits", "vitb", "vitl"), default="vits")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--input-size", type=positive_int, default=518)
    parser.add_argument(
        "--chunk-size",
        type=non_negative_int,
        default=None,
        help="frames per chunk (default: 16 on CUDA, 2 on CPU, so every frame count runs as several "
        "chunks); 0 = the engine's automatic size",
    )
    add_seed_argument(parser)
    add_out_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames, (height, width), dtype, chunk_size = DEFAULTS[device]
    dtype = args.dtype or dtype
    if device == "cpu" and dtype == "fp16":
        parser.error("--dtype fp16 is not supported on the CPU; use fp32 or bf16")
    try:
        photo = resolve_photo(args.photo)
    except ValueError as exc:
        raise SystemExit(f"bench_memory: {exc}") from None
    cfg = {
        "photo": str(photo),
        "encoder": args.encoder,
        "dtype": dtype,
        "seed": args.seed,
        "height": args.height or height,
        "width": args.width or width,
        "input_size": args.input_size,
        "chunk_size": chunk_size if args.chunk_size is None else args.chunk_size,
        "threads": torch.get_num_threads(),
    }
    counts = args.frames or frames
    net = network_size(cfg["height"], cfg["width"], cfg["input_size"])
    note = (
        "CUDA: torch.cuda.max_memory_allocated during predict_depth, frames on the host, depth back to the host"
        if device == "cuda"
        else "no CUDA device - reduced CPU version: peak RSS growth during predict_depth in a fresh process per "
        "frame count, minus the output tensor (which must grow with the frame count); not a GPU figure"
    )
    print(
        f"bench_memory: {cfg['encoder']} {dtype} on {device}, {cfg['width']}x{cfg['height']} frames "
        f"(network {net[1]}x{net[0]}), frame counts {counts}\n  {note}"
    )

    tf32 = set_tf32(False) if device == "cuda" else tf32_flags()
    if device == "cuda":
        model = _model(cfg, torch.device("cuda"))
        results = [measure_cuda({**cfg, "frames": n}, model) for n in counts]
        key, label = "peak_above_weights_mib", "GPU peak above weights MiB"
    else:
        results = [run_isolated(measure_cpu, {**cfg, "frames": n}) for n in counts]
        key, label = "peak_beyond_output_mib", "RSS peak beyond output MiB"
    ratio = results[-1][key] / results[0][key] if results[0][key] > 0 else None

    print_table(
        results,
        [
            "frames",
            "chunk_size",
            ("chunks", "chunks", "d"),
            "frames_per_s",
            ("output_mib", "output MiB", ".0f"),
            (key, label, ".0f"),
        ],
    )
    single = [r["frames"] for r in results if r["chunks"] < 2]
    if single:
        print(
            f"note: {', '.join(map(str, single))} frames ran as a single chunk - flat memory is trivial there; "
            "use more frames or a smaller --chunk-size"
        )
    if ratio is not None:
        print(
            f"peak memory at {counts[-1]} frames / at {counts[0]} frames: {ratio:.2f} (1.00 = independent of the frame count)"
        )

    return write_report(
        args.out,
        "memory",
        argv,
        device=device,
        note=note,
        settings={
            **{k: cfg[k] for k in ("photo", "encoder", "dtype", "height", "width", "input_size", "chunk_size", "seed")},
            "network_size_hw": list(net),
            "frames": counts,
            "tf32": tf32,
            "chunking": "fixed chunk size so every frame count runs as several chunks (0 = automatic)",
            "warmup": "one chunk through the engine before each measurement",
            "input": "one photo repeated as a stride-0 view (the input itself costs no memory)",
        },
        results=results,
        peak_ratio_last_to_first=ratio,
    )


if __name__ == "__main__":
    main()
