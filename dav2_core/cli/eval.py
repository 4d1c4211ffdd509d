"""``dav2 eval``: score depth predictions against measured ground truth (see :mod:`dav2_core.evaluate`).

``dav2 eval --gt GT... --pred DEPTH...`` evaluates depth files (Save Depth's .png/.exr/.npy, or a plain
.npy read as relative depth); ``dav2 eval --gt GT... --image PHOTO... [model options]`` predicts the
photos first, through the same estimate path as ``dav2`` (``--resolution tiled`` included). Files pair up
in order; ``--mask`` (optional, one per pair) limits the pixels. Prints one row per pair and the mean;
``--json`` also writes them (its path is checked before the run). Exit status: 0 done; 2 bad arguments or
inputs (nothing written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import torch

from .. import io
from ..checkpoints import CheckpointError
from ..depth import DepthMap
from ..effects.export import load_depth
from ..evaluate import ALIGN_MODES, evaluate_depth, format_table, summarise
from ..ground_truth import GT_KINDS, GroundTruth, read_ground_truth, read_mask
from ..hub import HubUnavailableError
from ..pipeline import EstimateOptions, estimate
from .args import (
    add_inference_arguments,
    add_model_arguments,
    estimate_options,
    model_options,
    positive_float,
)
from ..jobs import CliError, CliOptions, load_cli_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dav2 eval",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="alignment (--align):\n"
        + "\n".join(f"  {k:12s} {v}" for k, v in ALIGN_MODES.items())
        + "\n\nground truth (--gt-kind auto): 16-bit PNG = depth in mm (NYU), 8-bit PNG = disparity in px "
        "(Middlebury), .pfm = disparity, Save Depth files = metric depth; 0 / inf = not measured",
    )
    what = parser.add_argument_group("what to compare")
    what.add_argument("--gt", nargs="+", required=True, metavar="FILE", help="ground-truth depth or disparity files")
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("--pred", nargs="+", metavar="FILE", help="predicted depth files (one per --gt)")
    source.add_argument("--image", nargs="+", metavar="FILE", help="photos to predict with the model (one per --gt)")
    what.add_argument("--mask", nargs="+", metavar="FILE", help="valid-pixel masks, non-zero = evaluate (one per --gt)")
    gt = parser.add_argument_group("ground truth")
    gt.add_argument("--gt-kind", choices=GT_KINDS, default="auto", help="what the files hold (default: by format)")
    gt.add_argument(
        "--gt-scale",
        type=positive_float,
        default=None,
        metavar="S",
        help="raw value per metre (depth) or per pixel (disparity); default 1000 for 16-bit depth "
        "PNGs (mm), else 1 (KITTI depth: 256)",
    )
    gt.add_argument(
        "--focal-baseline",
        type=positive_float,
        default=None,
        metavar="FB",
        help="disparity ground truth: focal length x baseline in pixel-metres, makes it metric "
        "(depth = FB / (d + doffs))",
    )
    gt.add_argument(
        "--doffs", type=float, default=0.0, help="disparity ground truth: x-offset of the principal points (px)"
    )
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--align", choices=list(ALIGN_MODES), default="auto", help="see below (default auto)")
    protocol.add_argument(
        "--min-depth",
        type=positive_float,
        default=None,
        metavar="M",
        help="evaluate ground truth from this depth on, clip predictions to it",
    )
    protocol.add_argument(
        "--max-depth",
        type=positive_float,
        default=None,
        metavar="M",
        help="evaluate ground truth up to this depth, clip predictions to it (e.g. NYU 10)",
    )
    protocol.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    add_model_arguments(parser)
    add_inference_arguments(parser)
    return parser


def _predictions(ns: argparse.Namespace, options: EstimateOptions) -> list[tuple[str, Any]]:
    """(label, loader) per pair: loading is deferred so only one prediction is in memory at a time."""
    if ns.pred:
        return [(p, lambda p=p: load_depth(p)) for p in ns.pred]
    model = load_cli_model(CliOptions(inputs=(), output=Path("."), **model_options(ns), estimate=options))

    def predict(path: str) -> DepthMap:
        image = torch.from_numpy(io.read_image(Path(path)))[None]
        return estimate(model, image, options, output_device="cpu").depth

    return [(p, lambda p=p: predict(p)) for p in ns.image]


def run(ns: argparse.Namespace, options: EstimateOptions) -> dict[str, Any]:
    """Evaluate every pair; returns the results (rows, mean, alignment, units)."""
    sources = ns.pred or ns.image
    if len(sources) != len(ns.gt) or (ns.mask and len(ns.mask) != len(ns.gt)):
        raise CliError(
            f"{len(ns.gt)} ground-truth files but {len(sources)} {'predictions' if ns.pred else 'images'}"
            + (f" and {len(ns.mask)} masks" if ns.mask else "")
            + "; give one of each per pair, in order"
        )
    truths: list[GroundTruth] = [
        read_ground_truth(g, ns.gt_kind, ns.gt_scale, ns.focal_baseline, ns.doffs) for g in ns.gt
    ]  # read all first: a bad file stops the run before any model work
    rows, evaluations = [], []
    for i, ((label, load), truth) in enumerate(zip(_predictions(ns, options), truths)):
        mask = read_mask(ns.mask[i]) if ns.mask else None
        ev = evaluate_depth(load(), truth, mask, ns.align, ns.min_depth, ns.max_depth)
        evaluations.append(ev)
        for k, r in enumerate(ev.per_image):
            rows.append({"pred": label if len(ev.per_image) == 1 else f"{label}[{k}]", "gt": str(ns.gt[i]), **r})
    units = {ev.units for ev in evaluations}
    return {
        "align": sorted({ev.align for ev in evaluations}),
        "units": units.pop() if len(units) == 1 else "mixed",
        "model": evaluations[0].model,
        "rows": rows,
        "mean": summarise(rows),
        "ground_truth": [ev.ground_truth for ev in evaluations],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dav2 eval``; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    options = estimate_options(ns, parser)
    try:
        if ns.json is not None:
            io.check_writable(ns.json)  # before the run, not after its results are printed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run(ns, options)
        for w in caught:
            print(f"dav2 eval: warning: {w.message}", file=sys.stderr)
    except (ValueError, ImportError, CliError, CheckpointError, HubUnavailableError, io.ImageReadError, OSError) as exc:
        print(f"dav2 eval: error: {exc}", file=sys.stderr)
        return 2
    labels = [Path(r["pred"]).name for r in result["rows"]]
    print(f"alignment: {', '.join(result['align'])}; RMSE in {result['units']}")
    print("\n".join(f"ground truth: {g}" for g in result["ground_truth"]))
    print(format_table(result["rows"], labels, result["mean"] if len(labels) > 1 else None))
    if ns.json is not None:
        text = json.dumps(result, indent=1)
        io.atomic_write(ns.json, lambda f: f.write(text.encode("utf-8")))
        print(f"wrote {ns.json}")
    return 0
