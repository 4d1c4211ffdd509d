"""Video benchmark: does the streaming Video Depth core keep memory flat over a long clip, and how much does
clip-wide normalisation reduce flicker?

A synthetic clip (default 1920x1080 at 30 fps: a static textured background in the lower part, shapes moving
across the upper part) is written with PyAV for each frame count (default 100 and 1,000) and run through
``dav2_core.video.depth_video`` with the Video Depth node's default settings (``VideoOptions()``: two-pass
clip-wide range, temporal alignment, grey output), except a small network input size so that a CPU run
ends in minutes. Each run is a fresh process; after the model is built, the resident high-water mark is
reset (``/proc/self/clear_refs``) and the figure is the peak RSS growth during the whole run (decode,
estimate, encode, both passes). Each frame count runs ``--repeats`` times (the peak varies by several
per cent from run to run with thread timing in the decoder/encoder and the C heap), and the medians are
compared. Targets: the 1,000-frame median peak within 10 % of the 100-frame one, and every run below
2 GiB above the loaded model.

Flicker: the mean absolute frame-to-frame change of normalised depth (0..1) over the static region
(``dav2_core.effects.flicker_metric``) for per-frame, running and two-pass (clip-wide) normalisation of the
first clip: of the normalised depth itself (the 16-bit PNG sequence, lossless) and of the encoded video
(8-bit, with the codec's noise). With CUDA, the runs also report
``torch.cuda.max_memory_allocated`` (GPU rows); without it they are skipped and say so.

Video Depth Anything (``--vda``): the same memory rows for a seeded random VDA model through the same core
(its offline windows), its frames/s against the official ``infer_video_depth(..., fp32=True)`` at the same
weights and input size on the same decoded frames (inference only, both; ``--official-frames``: the clip
lengths the official code also runs, default the first: it holds every frame and depth map, so its peak
RSS grows with the clip), and the flicker of per-frame DA-V2, DA-V2 + temporal alignment and VDA on the
first clip (random weights: a report, not a quality claim). The official code comes from the
``../shared/vendor`` tarball (tests/support/vda_oracle.py); without it those rows are skipped and say so.

    .venv/bin/python benchmarks/bench_video.py --out bench-results/video.json
    .venv/bin/python benchmarks/bench_video.py --vda --frames 100,1000 --out bench-results/video_vda.json
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import int_list, positive_int  # noqa: E402
from benchmarks.memory import MIB, PeakRss, run_isolated  # noqa: E402
from benchmarks.models import add_seed_argument, seeded_ours  # noqa: E402
from benchmarks.report import Column, add_out_argument, print_table, write_report  # noqa: E402
from dav2_core.effects import flicker_metric  # noqa: E402
from dav2_core.video import VideoOptions, depth_video  # noqa: E402

#: The static part of the synthetic clip: rows from this fraction of the height down (shapes stay above).
STATIC_FROM = 0.6
TARGET_RATIO, TARGET_GROWTH_MIB = 1.10, 2048


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 30, seed: int = 0) -> Path:
    """Write the synthetic clip: a static smooth texture, and six shapes moving across the upper half."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((max(2, height // 40), max(2, width // 40), 3))
    background = (cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 180 + 40).astype(
        np.uint8
    )
    scale = height / 1080
    shapes = [
        dict(
            radius=max(2, int(rng.uniform(40, 110) * scale)),
            colour=tuple(int(c) for c in rng.integers(0, 255, 3)),
            x=rng.uniform(0, width),
            speed=rng.uniform(4, 14) * scale * rng.choice([-1, 1]),
            square=bool(i % 2),
        )
        for i in range(6)
    ]
    for shape in shapes:
        shape["y"] = int(rng.uniform(shape["radius"], max(shape["radius"] + 1, height * 0.5 - shape["radius"])))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for t in range(frames):
            frame = background.copy()
            for s in shapes:
                x, r = int((s["x"] + s["speed"] * t) % width), s["radius"]
                if s["square"]:
                    cv2.rectangle(frame, (x - r, s["y"] - r), (x + r, s["y"] + r), s["colour"], -1)
                else:
                    cv2.circle(frame, (x, s["y"]), r, s["colour"], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def options(cfg: dict[str, Any], range_mode: str, sequence: tuple[str, ...] = ()) -> VideoOptions:
    """The node's defaults (VideoOptions()), with the benchmark's network size, chunk size and range mode."""
    base = VideoOptions()
    estimate = base.estimate.with_(input_size=cfg["input_size"], chunk_size=cfg["chunk_size"])
    if "temporal" in cfg:
        estimate = estimate.with_(temporal_consistency=cfg["temporal"])
    return VideoOptions(
        estimate=estimate, range_mode=range_mode, colormap=base.colormap, cache=base.cache, sequence=sequence
    )


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """One depth_video run on ``cfg['clip']``; meant for a fresh process (``run_isolated``)."""
    torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    model = seeded_ours(cfg["encoder"], cfg["seed"]).to(device)
    model_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / MIB
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    rss = PeakRss()
    rss.start()
    start = time.perf_counter()
    report = depth_video(
        model, cfg["clip"], cfg["output"], options(cfg, cfg["range_mode"], cfg.get("sequence", ())), on_warning=print
    )
    seconds = time.perf_counter() - start
    row = {
        "frames": report.frames,
        "range_mode": cfg["range_mode"],
        "device": device.type,
        "chunk_size": report.chunk,
        "passes": report.passes,
        "cache": report.cache or "-",
        "seconds": seconds,
        "frames_per_s": report.frames / seconds,
        "model_mib": model_mib,
        "peak_rss_growth_mib": rss.peak_growth() / MIB,
        "memory_method": rss.method,
    }
    if device.type == "cuda":
        row["gpu_peak_above_weights_mib"] = (torch.cuda.max_memory_allocated(device) - before) / MIB
    return row


def seeded_vda(encoder: str, seed: int) -> torch.nn.Module:
    """A seeded random-init Video Depth Anything model (eval, CPU fp32) with its checkpoint info."""
    from dav2_core.checkpoints import CheckpointInfo
    from dav2_core.checkpoints.random_init import random_state_dict
    from dav2_core.model import VideoDepthAnything

    model = VideoDepthAnything(encoder).eval()
    model.load_state_dict(random_state_dict(encoder, seed, "vda"), strict=True)
    model.checkpoint_info = CheckpointInfo(encoder, "relative", None, "state-dict", torch.float32, family="vda")
    model.source = f"random vda_{encoder}"
    return model


def measure_vda(cfg: dict[str, Any]) -> dict[str, Any]:
    """One depth_video run of VDA (the node's defaults, offline windows); a fresh process (``run_isolated``)."""
    torch.set_num_threads(cfg["threads"])
    model = seeded_vda(cfg["encoder"], cfg["seed"])
    model_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / MIB
    gc.collect()
    rss = PeakRss()
    rss.start()
    start = time.perf_counter()
    report = depth_video(model, cfg["clip"], cfg["output"], options(cfg, "two_pass", cfg.get("sequence", ())))
    seconds = time.perf_counter() - start
    return {
        "frames": report.frames,
        "model": "vda (ours, depth_video)",
        "seconds": seconds,
        "frames_per_s": report.frames / seconds,
        "model_mib": model_mib,
        "peak_rss_growth_mib": rss.peak_growth() / MIB,
    }


def _decode_all(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def measure_vda_inference(cfg: dict[str, Any]) -> dict[str, Any]:
    """Inference only on the decoded frames (RGB uint8 [T,H,W,3], as the official run.py reads them): ours
    (``OfflineVDA``) or the official ``infer_video_depth(..., fp32=True)`` with the same weights and input size.
    Peak RSS growth includes the decoded clip (the official code needs it whole; ours is fed it in chunks)."""
    from dav2_core.vda import OfflineVDA

    torch.set_num_threads(cfg["threads"])
    if cfg["which"] == "official":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
        from vda_oracle import official_vda

        model = official_vda(cfg["encoder"], cfg["seed"])
    else:
        model = seeded_vda(cfg["encoder"], cfg["seed"])
    gc.collect()
    rss = PeakRss()
    rss.start()
    frames = _decode_all(cfg["clip"])
    start = time.perf_counter()
    if cfg["which"] == "official":
        depth, _ = model.infer_video_depth(frames, 30, input_size=cfg["input_size"], device="cpu", fp32=True)
        count = len(depth)
    else:
        runner, count = OfflineVDA(model, cfg["input_size"]), 0
        for i in range(0, len(frames), 22):
            count += runner.push(torch.from_numpy(frames[i : i + 22])).shape[0]
        count += runner.finish().shape[0]
    seconds = time.perf_counter() - start
    return {
        "frames": count,
        "model": f"vda ({cfg['which']}, inference only)",
        "seconds": seconds,
        "frames_per_s": count / seconds,
        "peak_rss_growth_mib": rss.peak_growth() / MIB,
    }


def vda_rows(args: argparse.Namespace, cfg: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The --vda section: memory over clip lengths, frames/s vs the official code, flicker per model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
    from vda_oracle import unavailable_reason

    official_missing = unavailable_reason()
    official_frames = args.official_frames or args.frames[:1]
    rows, flickers = [], []
    for count in args.frames:
        clip = make_clip(tmp / f"vda_clip_{count}.mp4", count, args.width, args.height)
        for repeat in range(args.repeats):
            row = run_isolated(measure_vda, {**cfg, "clip": str(clip), "output": str(tmp / f"vda_{count}.mp4")})
            rows.append({**row, "repeat": repeat})
            print_table([rows[-1]], VDA_COLUMNS)
        for which in ("ours", "official"):
            if which == "official" and (official_missing or count not in official_frames):
                continue
            row = run_isolated(measure_vda_inference, {**cfg, "clip": str(clip), "which": which})
            rows.append({**row, "repeat": 0})
            print_table([rows[-1]], VDA_COLUMNS)
        if count == args.frames[0]:  # flicker of the normalised depth (png16, lossless) on the first clip
            for label, fn, extra in (
                ("DA-V2 per frame", measure, {"temporal": False}),
                ("DA-V2 + temporal alignment", measure, {"temporal": True}),
                ("VDA (offline windows)", measure_vda, {}),
            ):
                video = tmp / f"flicker_{len(flickers)}.mp4"
                run_isolated(
                    fn,
                    {
                        **cfg,
                        **extra,
                        "clip": str(clip),
                        "output": str(video),
                        "range_mode": "two_pass",
                        "device": "cpu",
                        "sequence": ("png16",),
                    },
                )
                flickers.append(
                    {"model": label, "frames": count, "flicker": flicker_png16(video.with_name(video.stem + "_frames"))}
                )
        clip.unlink()
    ours = [r for r in rows if r["model"] == "vda (ours, depth_video)"]
    by_count = {c: float(np.median([r["peak_rss_growth_mib"] for r in ours if r["frames"] == c])) for c in args.frames}
    first, last = by_count[args.frames[0]], by_count[args.frames[-1]]
    speed = {}
    for count in official_frames:
        mine = [r for r in rows if r["frames"] == count and r["model"] == "vda (ours, inference only)"]
        theirs = [r for r in rows if r["frames"] == count and r["model"] == "vda (official, inference only)"]
        if mine and theirs:
            speed[count] = mine[0]["frames_per_s"] / theirs[0]["frames_per_s"]
    print_table(rows, VDA_COLUMNS)
    if flickers:
        print_table(flickers, ["model", "frames", ("flicker", "flicker", ".5f")])
    return {
        "rows": rows,
        "flicker": flickers,
        "official": official_missing or "ran",
        "targets": {
            "rss_ratio_last_to_first": last / first if first > 0 else None,
            "rss_ratio_ok": first > 0 and last / first <= TARGET_RATIO,
            "speedup_vs_official": speed,
            "speedup_goal": 1.5,
        },
    }


VDA_COLUMNS: list[Column] = [
    "frames",
    "model",
    ("seconds", "s", ".1f"),
    "frames_per_s",
    ("peak_rss_growth_mib", "RSS peak growth MiB", ".0f"),
]


def _static(frames: list[np.ndarray], static_from: float, step: int) -> torch.Tensor:
    return torch.stack(
        [torch.from_numpy(f[int(f.shape[0] * static_from) :: step, ::step].astype(np.float32)) for f in frames]
    )


def flicker(video: Path, static_from: float = STATIC_FROM, step: int = 4) -> float:
    """Flicker of a grey depth video over its static rows (every ``step``-th pixel), grey levels 0..1."""
    import av

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    return flicker_metric(_static(frames, static_from, step) / 255.0)


def flicker_png16(folder: Path, static_from: float = STATIC_FROM, step: int = 4) -> float:
    """Flicker of the normalised depth itself: the 16-bit PNG sequence (lossless, before the video codec)."""
    from PIL import Image

    frames = [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]
    return flicker_metric(_static(frames, static_from, step) / 65535.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int_list, default=[100, 1000], help="frame counts (default 100,1000)")
    parser.add_argument("--width", type=positive_int, default=1920)
    parser.add_argument("--height", type=positive_int, default=1080)
    parser.add_argument("--encoder", choices=("vits", "vitb", "vitl"), default="vits")
    parser.add_argument(
        "--input-size", type=positive_int, default=70, help="network short side (default 70: quick on CPU)"
    )
    parser.add_argument("--chunk-size", type=positive_int, default=None, help="default: automatic, as the node")
    parser.add_argument(
        "--flicker-modes",
        default="per_frame,running,two_pass",
        help="normalisations compared for flicker on the first clip ('' = none)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="runs per frame count (fresh processes); peaks are compared by their median (default 3)",
    )
    add_seed_argument(parser)
    add_out_argument(parser)
    parser.add_argument(
        "--vda",
        action="store_true",
        help="Video Depth Anything rows instead (memory, frames/s vs the official code, flicker vs DA-V2)",
    )
    parser.add_argument(
        "--official-frames",
        type=int_list,
        default=None,
        help="--vda: clip lengths the official code runs too (default: the first of --frames)",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    modes = [m for m in args.flicker_modes.split(",") if m]
    cfg = {
        "encoder": args.encoder,
        "input_size": args.input_size,
        "chunk_size": args.chunk_size,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
    }
    print(
        f"bench_video: {args.encoder} at input size {args.input_size}, {args.width}x{args.height} clips of "
        f"{args.frames} frames, node defaults (two-pass, temporal alignment, grey)"
    )
    if args.vda:
        with tempfile.TemporaryDirectory(prefix="bench_video_vda_") as tmp:
            vda = vda_rows(args, cfg, Path(tmp))
        settings = {
            **{k: cfg[k] for k in ("encoder", "input_size", "seed")},
            "width": args.width,
            "height": args.height,
            "frames": args.frames,
            "weights": "seeded random VDA",
        }
        return write_report(args.out, "video_vda", argv, settings=settings, **vda)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results, flickers = [], []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        for count in args.frames:
            clip = make_clip(Path(tmp) / f"clip_{count}.mp4", count, args.width, args.height)
            for device in devices:
                for repeat in range(args.repeats):
                    out = Path(tmp) / f"depth_{count}_{device}_{repeat}.mp4"
                    row = run_isolated(
                        measure,
                        {**cfg, "clip": str(clip), "output": str(out), "range_mode": "two_pass", "device": device},
                    )
                    results.append({**row, "repeat": repeat})
                    print_table([results[-1]], COLUMNS)
                if count == args.frames[0] and device == "cpu":
                    for mode in modes:  # with the png16 sequence: the normalised depth before the codec
                        video = Path(tmp) / f"depth_{count}_{mode}.mp4"
                        run_isolated(
                            measure,
                            {
                                **cfg,
                                "clip": str(clip),
                                "output": str(video),
                                "range_mode": mode,
                                "device": "cpu",
                                "sequence": ("png16",),
                            },
                        )
                        frames = video.with_name(video.stem + "_frames")
                        flickers.append(
                            {
                                "range_mode": mode,
                                "frames": count,
                                "flicker": flicker_png16(frames),
                                "flicker_encoded": flicker(video),
                            }
                        )
            clip.unlink()
    summary = summarise(results)
    print_table(results, COLUMNS)
    print_table(summary, SUMMARY_COLUMNS)
    if flickers:
        print_table(
            flickers,
            [
                ("range_mode", "normalisation", "s"),
                "frames",
                ("flicker", "flicker: normalised depth", ".5f"),
                ("flicker_encoded", "flicker: encoded video", ".5f"),
            ],
        )
    cpu = [r for r in summary if r["device"] == "cpu"]
    first, last = cpu[0]["peak_rss_median_mib"], cpu[-1]["peak_rss_median_mib"]
    ratio = last / first if len(cpu) > 1 and first > 0 else None
    targets = {
        "rss_ratio_last_to_first": ratio,
        "rss_ratio_ok": ratio is not None and ratio <= TARGET_RATIO,
        "rss_growth_below_2gib": all(
            r["peak_rss_growth_mib"] < TARGET_GROWTH_MIB for r in results if r["device"] == "cpu"
        ),
    }
    if ratio is not None:
        print(
            f"median peak RSS growth {args.frames[-1]} / {args.frames[0]} frames: {ratio:.3f} (target <= "
            f"{TARGET_RATIO}); every run below {TARGET_GROWTH_MIB} MiB above the model: {targets['rss_growth_below_2gib']}"
        )
    return write_report(
        args.out,
        "video",
        argv,
        settings={
            **{k: cfg[k] for k in ("encoder", "input_size", "chunk_size", "seed")},
            "width": args.width,
            "height": args.height,
            "frames": args.frames,
            "node_defaults": "VideoOptions() (two_pass, temporal alignment, gray), input_size/chunk_size as given",
        },
        results=results,
        summary=summary,
        flicker=flickers,
        gpu=None if "cuda" in devices else {"skipped": "no CUDA device"},
        targets=targets,
    )


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (frames, device): median frames/s and the median, min and max of the peaks over the repeats."""
    rows = []
    for key in dict.fromkeys((r["frames"], r["device"]) for r in results):
        runs = [r for r in results if (r["frames"], r["device"]) == key]
        peaks = [r["peak_rss_growth_mib"] for r in runs]
        row = {
            "frames": key[0],
            "device": key[1],
            "runs": len(runs),
            "frames_per_s_median": float(np.median([r["frames_per_s"] for r in runs])),
            "peak_rss_median_mib": float(np.median(peaks)),
            "peak_rss_min_mib": min(peaks),
            "peak_rss_max_mib": max(peaks),
        }
        if "gpu_peak_above_weights_mib" in runs[0]:
            row["gpu_peak_median_mib"] = float(np.median([r["gpu_peak_above_weights_mib"] for r in runs]))
        rows.append(row)
    return rows


SUMMARY_COLUMNS: list[Column] = [
    "frames",
    "device",
    ("runs", "runs", "d"),
    ("frames_per_s_median", "frames/s", ".2f"),
    ("peak_rss_median_mib", "RSS peak median MiB", ".0f"),
    ("peak_rss_min_mib", "min", ".0f"),
    ("peak_rss_max_mib", "max", ".0f"),
    ("gpu_peak_median_mib", "GPU peak median MiB", ".0f"),
]
COLUMNS: list[Column] = [
    "frames",
    "device",
    "chunk_size",
    ("cache", "cache", "s"),
    "frames_per_s",
    ("model_mib", "model MiB", ".0f"),
    ("peak_rss_growth_mib", "RSS peak above model MiB", ".0f"),
    ("gpu_peak_above_weights_mib", "GPU peak MiB", ".0f"),
]


if __name__ == "__main__":
    main()
