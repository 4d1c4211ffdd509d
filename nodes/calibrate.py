"""Calibrate Depth to Metric: relative DEPTH + reference points (or a metric DEPTH) -> DEPTH in metres + fit report."""

from __future__ import annotations

import math
import re

from dav2_core.effects import calibrate_to_metric

from .api import advanced, io
from .effect_io import execution
from .preview import report_ui
from .types import SEARCH_ALIASES, DepthIO, depth_input, require_depth, schema

POINTS_HELP = (
    "Known distances as 'x,y,metres' separated by ';' or new lines, x and y in pixels of the depth map "
    "(0,0 = top-left pixel), e.g. '120,340,2.5; 800,310,7.0'. At least two points at different distances. "
    "Leave empty when a metric reference DEPTH is connected."
)


def parse_points(text: str) -> list[tuple[float, float, float]]:
    """'x,y,metres; x,y,metres' (';' or new lines between points, ',' or spaces inside) -> [(x, y, metres)]."""
    points = []
    for entry in (e.strip() for e in re.split(r"[;\n]", text or "")):
        if not entry:
            continue
        parts = [p for p in re.split(r"[,\s]+", entry) if p]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"reference point {len(points) + 1} {entry!r} must be three numbers x,y,metres "
                "(pixels, pixels, metres), e.g. '120,340,2.5'"
            )
        points.append(values)
    return points


def format_fit(fit: dict) -> str:
    """The fit of calibrate_to_metric as readable lines, one per image."""
    lines = [f"Calibrated to metres from {fit['source']}: 1/metres = scale * relative + shift"]
    for i, (s, t, r, n, c) in enumerate(
        zip(fit["scale"], fit["shift"], fit["residual_rmse_m"], fit["n_points"], fit["clamped_pixels"])
    ):
        line = f"image {i + 1}: scale {s:.6g}, shift {t:.6g}, residual RMSE {r:.4g} m over {n} samples"
        lines.append(line + (f", {c} pixels clamped at max_depth_m" if c else ""))
    return "\n".join(lines)


class CalibrateDepthToMetric(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2CalibrateDepth",
            display_name="Calibrate Depth to Metric",
            description=(
                "Turns relative depth into metres: fits 1/metres = scale * relative + shift (relative depth is "
                "inverse depth up to scale and shift) by least squares, per image, either to a few points whose "
                "distance you know or to a metric DEPTH from a metric model. Reports scale, shift and the fit "
                "residual in metres."
            ),
            search_aliases=SEARCH_ALIASES
            + ["metric depth", "calibrate", "scale shift", "metres", "meters", "absolute depth"],
            inputs=[
                depth_input("depth", tooltip="Relative DEPTH to calibrate (from a relative Depth Anything model)"),
                io.String.Input(
                    "points", default="", multiline=True, placeholder="x,y,metres; x,y,metres", tooltip=POINTS_HELP
                ),
                advanced(
                    io.Float.Input(
                        "max_depth_m",
                        default=1000.0,
                        min=0.01,
                        max=1e6,
                        step=1.0,
                        tooltip="Farthest distance in metres: sky and points fitted beyond it are set to it",
                    )
                ),
                depth_input(
                    "reference",
                    optional=True,
                    tooltip="Optional metric DEPTH (metres, e.g. from a metric Depth Anything model) of "
                    "the same images to fit to instead of points; invalid pixels are ignored",
                ),
            ],
            outputs=[
                DepthIO.Output(display_name="depth", tooltip="Metric DEPTH [B,H,W] in metres"),
                io.String.Output(
                    display_name="report",
                    tooltip="The fit per image: scale, shift, residual RMSE in metres, samples used",
                ),
            ],
        )

    @classmethod
    def execute(cls, depth: object, points: str, max_depth_m: float, reference: object = None) -> io.NodeOutput:
        relative = require_depth(depth)
        refs = require_depth(reference, "reference") if reference is not None else None
        parsed = parse_points(points)
        if refs is not None and parsed:
            raise ValueError(
                "both reference points and a reference DEPTH are given; clear the points text to fit "
                "to the reference DEPTH, or disconnect the reference to fit to the points"
            )
        if refs is None and not parsed:
            raise ValueError(
                "no reference: type at least two points as 'x,y,metres; x,y,metres' (pixels, metres) "
                "or connect a metric reference DEPTH"
            )
        metric, fit = calibrate_to_metric(
            relative, points=parsed or None, reference=refs, max_depth_m=max_depth_m, run=execution()
        )
        report = format_fit(fit)
        return io.NodeOutput(metric, report, ui=report_ui(report))
