"""Tiled vs plain depth, measured: seams along the tile borders, edge sharpness, and ground-truth accuracy.

For every photo with measured depth in ``../shared/depth_gt`` (NYU x3, Middlebury aloe and motorcycle)
and every photo in ``../shared/images``, one global keep_aspect pass and the tiles of
``dav2_core.tiling`` (the same functions ``resolution='tiled'`` runs) give four maps:

* ``plain``: the keep_aspect pass alone (what Estimate Depth gives by default);
* ``tiled``: the tiled result (aligned tiles, raised-cosine blending, global structure);
* ``naive``: the raw tiles pasted side by side, cut half-way through each overlap, no alignment;
* ``hard``: the aligned tiles with the same hard cut (alignment without feathering).

Metrics (all on the full-resolution map):

* ``seam`` = :func:`dav2_core.evaluate.seam_ratio`: mean squared step across the tile borders (tile edges
  and overlap middles, ±1 px) over the same 1-3 network patches (14-42 px) away (1 = no seam). ``naive``
  and ``hard`` show what a seam scores; ``plain`` at the same lines shows how far the photo's own content
  moves the ratio from 1.
* ``edge`` (photos with ground truth): at ground-truth depth edges (inverse-depth step over 4 px larger
  than 5 % of the median inverse depth), the prediction's step (after the zero-shot scale and shift) over
  the ground truth's step: 1 = edges as sharp and as high as measured, smaller = blurred.
* ``img_edge`` (every photo): mean depth gradient (normalised 1-99 %) on the photo's edges (its 5 % strongest
  Sobel gradients) over the mean everywhere - how much depth changes concentrate on image edges.
* ``abs_rel`` / ``delta1``: :func:`dav2_core.evaluate.evaluate_depth` (relative protocol).

Any checkpoint runs (``--checkpoint``); without one the seeded random-init vits of the other benchmarks is
used - its numbers test the blending (seams), not depth quality. Photos not larger than the global pass
get no tiles (reported as such). Example::

    .venv/bin/python benchmarks/eval_tiling.py --out bench-results/tiling.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dav2_core.cli.args import positive_int  # noqa: E402
from benchmarks.photos import SHARED  # noqa: E402
from benchmarks.report import add_out_argument, machine_info, print_table, write_json  # noqa: E402
from dav2_core import io  # noqa: E402
from dav2_core.depth import DepthMap, safe_reciprocal  # noqa: E402
from dav2_core.engines import describe  # noqa: E402
from dav2_core.evaluate import evaluate_depth, seam_ratio  # noqa: E402
from dav2_core.ground_truth import GroundTruth, read_ground_truth  # noqa: E402
from dav2_core.inference import predict_depth  # noqa: E402
from dav2_core.pipeline import EstimateOptions, estimate  # noqa: E402
from dav2_core.tiling import MIN_METRES, TileGrid, align_tiles, crop_tiles, merge_depth, plan_tiles, predict_tiles  # noqa: E402
from dav2_core.preprocess import network_size  # noqa: E402

#: The table's metric columns: (row key prefix, header, format spec, the maps it is measured on); the row keys
#: are ``{prefix}_{map}`` (see :func:`run_sample`).
METRIC_COLUMNS = (
    ("seam", "seam", ".3f", ("plain", "tiled", "hard", "naive")),
    ("edge", "edge", ".3f", ("plain", "tiled")),
    ("img_edge", "img_edge", ".3f", ("plain", "tiled")),
    ("abs_rel", "AbsRel", ".4f", ("plain", "tiled")),
    ("delta1", "d1", ".4f", ("plain", "tiled")),
)
MOTORCYCLE = dict(focal_baseline=994.978 * 0.193001, doffs=31.086)  # shared/README.md
EDGE_RADIUS, EDGE_THRESHOLD = 2, 0.05


def samples(shared: Path, sets: list[str]) -> list[tuple[str, Path, GroundTruth | None]]:
    """(name, photo, ground truth or None) for the chosen sets."""
    out: list[tuple[str, Path, GroundTruth | None]] = []
    gt = shared / "depth_gt"
    if "nyu" in sets:
        for rgb in sorted((gt / "nyu" / "rgb").glob("rgb_*.jpg")):
            depth = gt / "nyu" / "depth" / rgb.name.replace("rgb_", "sync_depth_").replace(".jpg", ".png")
            out.append((f"nyu/{rgb.stem}", rgb, read_ground_truth(depth)))
    if "middlebury" in sets:
        aloe = gt / "middlebury_aloe"
        out.append(("middlebury/aloe", aloe / "aloeL.jpg", read_ground_truth(aloe / "aloeGT.png")))
        moto = gt / "middlebury_motorcycle"
        out.append(
            (
                "middlebury/motorcycle",
                moto / "motorcycle_left.png",
                read_ground_truth(moto / "motorcycle_disp.npz", "disparity", **MOTORCYCLE),
            )
        )
    if "photos" in sets:
        out += [(f"photos/{p.stem}", p, None) for p in sorted((shared / "images").glob("*.jpg"))]
    return out


def hard_cut(tiles: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Tiles [n,th,tw] pasted at working resolution, each pixel from the tile whose centre is nearest."""
    out = torch.zeros(grid.work_h, grid.work_w, dtype=torch.float64, device=tiles.device)
    best = torch.full_like(out, float("inf"))
    yy = torch.arange(grid.work_h, device=tiles.device, dtype=torch.float64)[:, None]
    xx = torch.arange(grid.work_w, device=tiles.device, dtype=torch.float64)[None]
    for (y, x), tile in zip(grid.boxes(), tiles):
        dist = torch.maximum((yy - y - grid.tile_h / 2).abs(), (xx - x - grid.tile_w / 2).abs())
        inside = torch.zeros_like(out, dtype=torch.bool)
        inside[y : y + grid.tile_h, x : x + grid.tile_w] = True
        take = inside & (dist < best)
        best = torch.where(take, dist, best)
        window = torch.zeros_like(out)
        window[y : y + grid.tile_h, x : x + grid.tile_w] = tile.double()
        out = torch.where(take, window, out)
    full = torch.nn.functional.interpolate(out[None, None].float(), size=(grid.height, grid.width), mode="bilinear")
    return full[0, 0]


def edge_step_ratio(aligned_inv: torch.Tensor, gt_inv: torch.Tensor) -> float | None:
    """Prediction step / ground-truth step over 2r px at ground-truth inverse-depth edges (both axes)."""
    r = EDGE_RADIUS
    level = float(gt_inv[torch.isfinite(gt_inv)].median())
    num = den = 0.0
    for axis in (0, 1):
        g = gt_inv.narrow(axis, 2 * r, gt_inv.shape[axis] - 2 * r) - gt_inv.narrow(axis, 0, gt_inv.shape[axis] - 2 * r)
        p = aligned_inv.narrow(axis, 2 * r, gt_inv.shape[axis] - 2 * r) - aligned_inv.narrow(
            axis, 0, gt_inv.shape[axis] - 2 * r
        )
        edge = torch.isfinite(g) & (g.abs() > EDGE_THRESHOLD * level)
        num += float(p[edge].abs().sum())
        den += float(g[edge].abs().sum())
    return num / den if den > 0 else None


def image_edge_ratio(depth: torch.Tensor, grey: np.ndarray) -> float:
    """Mean normalised depth gradient on the photo's edges (the 5 % of pixels with the strongest Sobel
    gradient, whatever the photo's contrast) / mean everywhere."""
    import cv2

    d = depth.double()
    lo, hi = torch.quantile(d.flatten()[:: max(1, d.numel() // 1_000_000)], torch.tensor([0.01, 0.99], dtype=d.dtype))
    n = (d - lo) / (hi - lo).clamp_min(1e-12)
    grad = torch.zeros_like(n)
    grad[:, :-1] += n.diff(dim=1).abs()
    grad[:-1, :] += n.diff(dim=0).abs()
    g = grey.astype(np.float32)
    strength = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    edges = torch.from_numpy(strength > max(float(np.percentile(strength, 95)), 1e-6))
    return float(grad[edges].mean() / grad.mean().clamp_min(1e-12)) if bool(edges.any()) else float("nan")


def accuracy(values: torch.Tensor, kind: str, gt: GroundTruth) -> dict[str, Any]:
    """Relative-protocol metrics and the edge step ratio of a [H,W] map in the model's units."""
    ev = evaluate_depth(DepthMap(values[None].float(), kind), gt, align="scale_shift")
    row = ev.per_image[0]
    disp = safe_reciprocal(values.double(), MIN_METRES) if kind == "metric" else values.double()
    aligned = row["scale"] * disp + row["shift"]
    gt_inv = gt.inverse_depth()[0]
    if gt_inv.shape != aligned.shape:
        return {"abs_rel": row["abs_rel"], "delta1": row["delta1"], "edge": None}
    return {"abs_rel": row["abs_rel"], "delta1": row["delta1"], "edge": edge_step_ratio(aligned, gt_inv)}


def run_sample(
    model: Any, name: str, photo: Path, gt: GroundTruth | None, args: argparse.Namespace, verify: bool
) -> dict[str, Any]:
    kind, max_depth, _ = describe(model)
    rgb = io.read_image(photo)
    image = torch.from_numpy(rgb)[None]
    h, w = rgb.shape[:2]
    global_net = network_size(h, w, args.input_size, "keep_aspect")
    grid = plan_tiles(h, w, args.tile_size, args.tile_overlap, args.max_tiles, global_net)
    start = time.perf_counter()
    plain = predict_depth(model, image, args.input_size, output_device=None)[0]
    row: dict[str, Any] = {
        "sample": name,
        "size_hw": [h, w],
        "global_net_hw": list(global_net),
        "tiles": grid.count if grid else 0,
        "scale": round(grid.scale, 4) if grid else None,
    }
    grey = (rgb.mean(-1) * 255).astype(np.uint8)
    maps = {"plain": plain}
    if grid is not None:
        tiles = predict_tiles(model, image, grid, args.tile_size)
        maps["tiled"] = merge_depth(plain, tiles, grid, global_net, kind, max_depth)
        inv = (lambda v: safe_reciprocal(v, MIN_METRES)) if kind == "metric" else (lambda v: v)
        work_global = torch.nn.functional.interpolate(
            inv(plain)[None, None].float(), size=(grid.work_h, grid.work_w), mode="bilinear", antialias=True
        )[0, 0]
        pitch = max(grid.work_h / global_net[0], grid.work_w / global_net[1])
        for label, t in (
            ("naive", inv(tiles)),
            ("hard", align_tiles(inv(tiles), crop_tiles(work_global, grid), pitch)),
        ):
            cut = hard_cut(t, grid)
            maps[label] = 1.0 / cut if kind == "metric" else cut
        for label, values in maps.items():
            row[f"seam_{label}"] = seam_ratio(inv(values), grid)
        if verify:  # the benchmark's map is what the product path computes
            product = estimate(
                model,
                image,
                EstimateOptions(
                    input_size=args.input_size,
                    resolution="tiled",
                    tile_size=args.tile_size,
                    tile_overlap=args.tile_overlap,
                    max_tiles=args.max_tiles,
                ),
                output_device=None,
            ).depth.values[0]
            row["path_max_abs_diff"] = float((product - maps["tiled"]).abs().max())
    for label in ("plain", "tiled"):
        if label in maps:
            row[f"img_edge_{label}"] = image_edge_ratio(maps[label].cpu(), grey)
            if gt is not None:
                for key, value in accuracy(maps[label].cpu(), kind, gt).items():
                    row[f"{key}_{label}"] = value
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def load(args: argparse.Namespace) -> tuple[Any, str]:
    if args.checkpoint:
        from dav2_core.loading import load_model

        return load_model(str(args.checkpoint), device=args.device, dtype=args.dtype), str(args.checkpoint)
    from benchmarks.models import SEED, seeded_ours

    model = seeded_ours(args.encoder).to(args.device or "cpu")
    return model, f"seeded random-init {args.encoder} (seed {SEED}; numbers test the blending, not depth quality)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="any checkpoint file (default: seeded random-init weights)")
    parser.add_argument("--encoder", default="vits", help="seeded random encoder when no --checkpoint (default vits)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the loader's choice / cpu)")
    parser.add_argument("--dtype", default="fp32", help="with --checkpoint: auto, fp32, fp16, bf16 (default fp32)")
    parser.add_argument("--input-size", type=positive_int, default=518, help="global pass short side (default 518)")
    parser.add_argument("--tile-size", type=positive_int, default=518)
    parser.add_argument("--tile-overlap", type=int, default=128)
    parser.add_argument("--max-tiles", type=positive_int, default=16)
    parser.add_argument("--sets", default="nyu,middlebury,photos", help="comma list of nyu, middlebury, photos")
    parser.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    add_out_argument(parser, "write the results as JSON")
    args = parser.parse_args(argv)
    EstimateOptions(
        input_size=args.input_size, tile_size=args.tile_size, tile_overlap=args.tile_overlap, max_tiles=args.max_tiles
    )  # validates the tile options with the product's messages
    todo = samples(args.shared, [s.strip() for s in args.sets.split(",") if s.strip()])
    if not todo:
        raise SystemExit(f"eval_tiling: nothing to evaluate in {args.shared} for sets {args.sets!r}")
    model, weights = load(args)
    rows, verified = [], False
    for name, photo, gt in todo:
        with torch.inference_mode():
            row = run_sample(model, name, photo, gt, args, verify=not verified)
        verified = verified or "path_max_abs_diff" in row
        rows.append(row)
        print(f"{name}: {row['tiles']} tiles, {row['seconds']} s", file=sys.stderr)
    metrics = [(f"{key}_{m}", f"{header} {m}", spec) for key, header, spec, maps in METRIC_COLUMNS for m in maps]
    print(
        f"weights: {weights}\nsettings: input {args.input_size}, tiles {args.tile_size} px, overlap "
        f"{args.tile_overlap}, max {args.max_tiles}"
    )
    print_table(rows, [("sample", "sample", ""), ("tiles", "tiles", "d"), *metrics])
    write_json(
        args.out,
        {
            "benchmark": "tiling",
            "machine": machine_info(),
            "weights": weights,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
