"""The input-size and TTA trade-off, measured: speed, agreement with the 518 result, accuracy on ground truth.

For each configuration - keep_aspect input sizes ``--sizes`` (default 252, 308, 392, 518, 700) without TTA,
and the TTA modes ``--tta`` (default flip, multi_scale, multi_scale_flip) at ``--tta-size`` (518) - through the
product path (:func:`dav2_core.pipeline.estimate`):

* ``ms_per_image``: median wall time of one call on the timing photo (``--photo``, default the 640x480 NYU
  frame) over ``--runs`` calls after one warm-up, and ``speedup`` over the 518 row (CPU; the backend given by
  ``--backend``, default torch fp32);
* ``agree_*``: agreement with the 518 (``--reference``) no-TTA map of the same photo, averaged over the photos - ``agree_err``
  mean absolute difference after a least-squares scale/shift fit, over the 518 map's 1-99 % range (0 = the
  same map), and ``agree_r`` Pearson correlation;
* ``gflop``: forward-pass GFLOP per image of the configuration on the timing photo (every view, mirrored ones
  counted; :func:`benchmarks.backends.forward_flops`) - the machine-independent cost, and ``cost`` over the
  reference row. ``--flops-only`` computes just this column (seconds, whatever the machine's load);
* ``abs_rel`` / ``delta1``: on the photos with measured depth in ``../shared/depth_gt`` (NYU, Middlebury) via
  :func:`dav2_core.evaluate.evaluate_depth` (the zero-shot scale/shift protocol), mean over photos.

Weights: a checkpoint (``--checkpoint``) or, by default, the seeded random-init vits of the other benchmarks
(the Hub is unreachable here): then speed and the TTA cost are real, but agreement and accuracy describe a
random network, not Depth Anything's quality - the JSON and the table say so.

    .venv/bin/python benchmarks/bench_input_size.py --runs 3 --out bench-results/input_size.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.photos import DEFAULT_PHOTO, SHARED  # noqa: E402
from benchmarks.report import format_table, machine_info, write_json  # noqa: E402
from dav2_core.cli.args import positive_int  # noqa: E402
from benchmarks.eval_tiling import load, samples  # noqa: E402
from dav2_core import io  # noqa: E402
from dav2_core.depth import DepthMap  # noqa: E402
from dav2_core.effects.temporal import align_scale_shift  # noqa: E402
from dav2_core.engines import describe  # noqa: E402
from dav2_core.evaluate import evaluate_depth  # noqa: E402
from dav2_core.pipeline import EstimateOptions, estimate  # noqa: E402
from dav2_core.tta import TTA_MODES  # noqa: E402

#: The input size every map is compared with (no TTA): the size the models were trained at.
REFERENCE_SIZE = 518


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 252,518; got {text!r}") from None
    if not values or any(v < 14 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 14; got {text!r}")
    return values


def tta_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in TTA_MODES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown TTA mode(s) {bad}; choose from {', '.join(TTA_MODES)}")
    return values


def configurations(sizes: list[int], ttas: list[str], tta_size: int, reference: int) -> list[tuple[int, str]]:
    """(input_size, tta) rows: every size without TTA, then each TTA mode at ``tta_size``; the reference always."""
    rows = [(s, "none") for s in sizes] + [(tta_size, t) for t in ttas if t != "none"]
    if (reference, "none") not in rows:
        rows.insert(0, (reference, "none"))
    return list(dict.fromkeys(rows))


def depth_of(model: Any, image: torch.Tensor, size: int, tta: str) -> torch.Tensor:
    """[H,W] float32 in the model's units through the product path."""
    options = EstimateOptions(input_size=size, tta=tta, normalization="raw")
    return estimate(model, image, options).depth.values[0]


def agreement(values: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(error, Pearson r) of a map against the reference map after a least-squares scale/shift fit; the error is
    the mean absolute difference over the reference's 1-99 % range."""
    scale, shift = align_scale_shift(reference[None], values[None])
    fitted = (scale[0] * values + shift[0]).double()
    ref = reference.double()
    lo, hi = torch.quantile(
        ref.flatten()[:: max(1, ref.numel() // 1_000_000)], torch.tensor([0.01, 0.99], dtype=ref.dtype)
    )
    err = float((fitted - ref).abs().mean() / (hi - lo).clamp_min(1e-12))
    r = float(torch.corrcoef(torch.stack([values.double().flatten(), ref.flatten()]))[0, 1])
    return err, r


def gflop(model: torch.nn.Module, height: int, width: int, size: int, tta: str, cache: dict) -> float:
    """Forward GFLOP per image of a configuration (all its views) for a ``height`` x ``width`` image."""
    from benchmarks.backends import forward_flops
    from dav2_core.tta import tta_parts, view_sizes

    options = EstimateOptions(input_size=size, tta=tta)
    net = options.net_size(height, width)
    multi, flip = tta_parts(tta)
    total = 0
    for view in [net, *(view_sizes(net, (height, width), size) if multi else [])]:
        if view not in cache:
            cache[view] = forward_flops(model, view)
        total += cache[view]
    return total * (2 if flip else 1) / 1e9


def flops_table(model: torch.nn.Module, image: torch.Tensor, configs: list[tuple[int, str]], ref) -> list[dict]:
    """The gflop and cost columns of every configuration."""
    height, width = image.shape[1:3]
    cache: dict = {}
    rows = [{"input_size": s, "tta": t, "gflop": gflop(model, height, width, s, t, cache)} for s, t in configs]
    base = next(r["gflop"] for r in rows if (r["input_size"], r["tta"]) == ref)
    for row in rows:
        row["cost"] = row["gflop"] / base
    return rows


def timed(model: Any, image: torch.Tensor, size: int, tta: str, runs: int) -> float:
    """Median milliseconds of one estimate call (after one warm-up call)."""
    depth_of(model, image, size, tta)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        depth_of(model, image, size, tta)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(args: argparse.Namespace) -> dict[str, Any]:
    model, weights = load(args)
    if not args.checkpoint:
        weights = (
            f"seeded random-init {args.encoder} (the Hub is unreachable here): speed and cost are real, agreement "
            "and accuracy describe a random network"
        )
    ref = (args.reference, "none")
    configs = configurations(args.sizes, args.tta, args.tta_size, args.reference)
    timing_image = torch.from_numpy(io.read_image(args.photo))[None]
    flops = {(r["input_size"], r["tta"]): r for r in flops_table(model, timing_image, configs, ref)}
    if args.flops_only:
        return {
            "benchmark": "input_size_flops",
            "weights": weights,
            "note": "forward FLOPs per image (machine-independent)",
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": list(flops.values()),
        }
    if args.backend != "torch":
        from benchmarks.backends import build_engine

        model = build_engine(model, args.backend, args.precision, args.cache_dir)
    kind = describe(model)[0]
    for size, tta in configs:
        EstimateOptions(input_size=size, tta=tta)  # the product's own errors for impossible rows
    todo = samples(args.shared, [s.strip() for s in args.sets.split(",") if s.strip()])
    rows: dict[tuple[int, str], dict[str, Any]] = {
        c: {"input_size": c[0], "tta": c[1], "agree_err": [], "agree_r": [], "abs_rel": [], "delta1": []}
        for c in configs
    }
    for size, tta in configs:
        rows[(size, tta)]["ms_per_image"] = timed(model, timing_image, size, tta, args.runs)
        print(f"speed {size}/{tta}: {rows[(size, tta)]['ms_per_image']:.0f} ms", file=sys.stderr)
    for name, photo, gt in todo:
        image = torch.from_numpy(io.read_image(photo))[None]
        reference = depth_of(model, image, *ref)
        for size, tta in configs:
            values = reference if (size, tta) == ref else depth_of(model, image, size, tta)
            row = rows[(size, tta)]
            err, r = agreement(values, reference)
            row["agree_err"].append(err)
            row["agree_r"].append(r)
            if gt is not None:
                ev = evaluate_depth(DepthMap(values[None], kind), gt, align="scale_shift").per_image[0]
                row["abs_rel"].append(ev["abs_rel"])
                row["delta1"].append(ev["delta1"])
        print(f"{name}: done", file=sys.stderr)
    base_ms = rows[ref]["ms_per_image"]
    results = []
    for row in rows.values():
        out = {k: v for k, v in row.items() if not isinstance(v, list)}
        out["speedup"] = base_ms / row["ms_per_image"]
        out.update({k: flops[(row["input_size"], row["tta"])][k] for k in ("gflop", "cost")})
        for key in ("agree_err", "agree_r", "abs_rel", "delta1"):
            out[key] = statistics.fmean(row[key]) if row[key] else None
        out["photos"] = len(row["agree_err"])
        out["gt_photos"] = len(row["abs_rel"])
        results.append(out)
    return {
        "benchmark": "input_size",
        "machine": machine_info(),
        "weights": weights,
        "note": "CPU timings on a shared machine (other jobs were running); with random weights the agreement "
        "and accuracy columns describe a random network, not Depth Anything's quality",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int_list, default=[252, 308, 392, 518, 700], help="input sizes (no TTA)")
    parser.add_argument("--tta", type=tta_list, default=["flip", "multi_scale", "multi_scale_flip"], help="TTA modes")
    parser.add_argument("--tta-size", type=positive_int, default=518, help="input size of the TTA rows (518)")
    parser.add_argument("--reference", type=positive_int, default=REFERENCE_SIZE, help="the size compared with (518)")
    parser.add_argument("--runs", type=positive_int, default=3, help="timed calls per row after a warm-up (3)")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the timing photo (640x480 NYU frame)")
    parser.add_argument(
        "--sets", default="nyu,middlebury", help="photos for agreement/accuracy: nyu, middlebury, photos"
    )
    parser.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    parser.add_argument("--checkpoint", type=Path, help="any checkpoint file (default: seeded random-init weights)")
    parser.add_argument("--encoder", default="vits", help="seeded random encoder when no --checkpoint (vits)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    parser.add_argument("--dtype", default="fp32", help="with --checkpoint: auto, fp32, fp16, bf16 (default fp32)")
    parser.add_argument("--backend", default="torch", help="torch (default), onnxruntime, openvino")
    parser.add_argument("--precision", default="fp32", help="the backend's precision (fp32; int8/bf16 approximate)")
    parser.add_argument("--cache-dir", type=Path, default=Path("bench-results/engine-cache"))
    parser.add_argument("--flops-only", action="store_true", help="only the GFLOP/cost columns (no timing)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if not args.photo.is_file():
        raise SystemExit(f"bench_input_size: timing photo {args.photo} not found (give --photo)")
    data = run(args)
    columns = [
        ("input_size", "input", "d"),
        ("tta", "tta", ""),
        ("ms_per_image", "ms/img", ".0f"),
        ("speedup", f"x vs {args.reference}", ".2f"),
        ("gflop", "GFLOP", ".1f"),
        ("cost", "cost", ".2f"),
        ("agree_err", f"err vs {args.reference}", ".4f"),
        ("agree_r", f"r vs {args.reference}", ".4f"),
        ("abs_rel", "AbsRel", ".4f"),
        ("delta1", "d1", ".4f"),
    ]
    if args.flops_only:
        columns = [c for c in columns if c[0] in ("input_size", "tta", "gflop", "cost")]
    print(f"weights: {data['weights']}\n{data['note']}")
    print(format_table(data["results"], columns))
    write_json(args.out, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
