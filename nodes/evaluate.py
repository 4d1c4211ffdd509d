"""Evaluate Depth: predicted DEPTH vs measured ground truth (file, metric DEPTH or IMAGE) -> metrics."""

from __future__ import annotations

import json

import torch

from dav2_core.evaluate import ALIGN_MODES, evaluate_depth, format_evaluation
from dav2_core.ground_truth import GT_KINDS, GT_SUFFIXES, from_depth_map, from_image, read_ground_truth

from .api import advanced, io
from .colorize import as_depth  # DEPTH, or a grey depth IMAGE read as relative depth
from .effect_io import input_file, path_problem
from .preview import report_ui
from .types import SEARCH_ALIASES, DepthIO, choice_input, depth_input, require_depth, schema

GT_FILE_HELP = (
    "Ground-truth file: a name relative to ComfyUI's input folder (subfolders with '/'), or 'name [output]' / "
    "'name [temp]' for those folders; other places on the server are refused. "
    f"Formats: {', '.join(GT_SUFFIXES)}: 16-bit PNG = depth in millimetres (NYU), 8-bit PNG = disparity in pixels "
    "(Middlebury), .pfm = disparity, Save Depth files = metric depth, .npy/.npz = set gt_kind; 0 or inf = not "
    "measured. Leave empty when ground truth is connected as DEPTH or IMAGE."
)


class EvaluateDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2EvaluateDepth",
            display_name="Evaluate Depth",
            description=(
                "Scores predicted depth against measured ground truth with the standard zero-shot protocol: "
                "relative depth gets a least-squares scale and shift in inverse depth on the valid pixels, metric "
                "depth is compared as is; then AbsRel, SqRel, RMSE, RMSE log and delta1/2/3 in depth space, per "
                "image and averaged, with the number of valid pixels."
            ),
            search_aliases=SEARCH_ALIASES
            + ["evaluate depth", "ground truth", "abs rel", "delta1", "benchmark", "metrics"],
            is_output_node=True,
            inputs=[
                depth_input(
                    "depth",
                    image=True,
                    tooltip="Predicted DEPTH (relative or metric) from Estimate Depth, or a grey depth "
                    "IMAGE (brighter = nearer, read as relative depth)",
                ),
                io.String.Input("gt_file", default="", tooltip=GT_FILE_HELP),
                io.Combo.Input(
                    "gt_kind",
                    options=list(GT_KINDS),
                    default="auto",
                    tooltip="What the ground truth holds: depth (metres after gt_scale) or disparity "
                    "(pixels); auto decides by file format (IMAGE: disparity)",
                ),
                io.Float.Input(
                    "gt_scale",
                    default=0.0,
                    min=0.0,
                    max=1e6,
                    step=1.0,
                    tooltip="Raw value per metre (depth) or per pixel (disparity); 0 = the format's "
                    "default (1000 for 16-bit depth PNGs, i.e. millimetres; else 1)",
                ),
                choice_input("align", ALIGN_MODES, default="auto"),
                advanced(
                    io.Float.Input(
                        "min_depth",
                        default=0.0,
                        min=0.0,
                        max=1e6,
                        step=0.01,
                        tooltip="Evaluate ground truth from this depth on and clip predictions to it; 0 = off",
                    )
                ),
                advanced(
                    io.Float.Input(
                        "max_depth",
                        default=0.0,
                        min=0.0,
                        max=1e6,
                        step=0.1,
                        tooltip="Evaluate ground truth up to this depth and clip predictions to it (e.g. NYU "
                        "10 m); 0 = off",
                    )
                ),
                io.MultiType.Input(
                    "ground_truth",
                    types=[DepthIO, io.Image],
                    optional=True,
                    tooltip="Ground truth instead of a file: a metric DEPTH (metres), or an IMAGE "
                    "holding an 8-bit depth/disparity map (first channel; 0 = not measured; "
                    "read with gt_kind and gt_scale). 16-bit files lose precision through "
                    "Load Image: use gt_file for them",
                ),
                io.Mask.Input("mask", optional=True, tooltip="Optional MASK: only pixels > 0.5 are evaluated"),
                advanced(
                    io.Float.Input(
                        "focal_baseline",
                        default=0.0,
                        min=0.0,
                        max=1e9,
                        step=0.01,
                        optional=True,
                        tooltip="Disparity ground truth: focal length x baseline in pixel-metres, so that "
                        "depth = focal_baseline / (disparity + doffs) is metric; 0 = uncalibrated "
                        "(depth-space metrics then relative)",
                    )
                ),
                advanced(
                    io.Float.Input(
                        "doffs",
                        default=0.0,
                        min=-1e6,
                        max=1e6,
                        step=0.01,
                        optional=True,
                        tooltip="Disparity ground truth: principal-point offset of the stereo pair (pixels)",
                    )
                ),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="Readable metrics per image and their mean"),
                io.String.Output(
                    display_name="metrics_json",
                    tooltip="The same as JSON: mean, per_image (with n_valid, scale, shift), alignment",
                ),
                io.Float.Output(display_name="abs_rel", tooltip="Mean AbsRel over the batch (lower is better)"),
                io.Float.Output(display_name="delta1", tooltip="Mean delta1 over the batch (higher is better)"),
            ],
        )

    @classmethod
    def validate_inputs(cls, gt_file: str | None = None) -> bool | str:
        """Refuse a gt_file outside ComfyUI's folders when the graph is queued (execute checks it again)."""
        return path_problem(gt_file, what="gt_file") or True

    @classmethod
    def execute(
        cls,
        depth: object,
        gt_file: str,
        gt_kind: str,
        gt_scale: float,
        align: str,
        min_depth: float,
        max_depth: float,
        ground_truth: object = None,
        mask: torch.Tensor | None = None,
        focal_baseline: float = 0.0,
        doffs: float = 0.0,
    ) -> io.NodeOutput:
        pred = as_depth(depth)
        path = (gt_file or "").strip()
        if bool(path) == (ground_truth is not None):
            raise ValueError(
                "give the ground truth exactly once: a gt_file path or a ground_truth DEPTH/IMAGE input "
                f"(got {'both' if path else 'neither'})"
            )
        calibration = dict(focal_baseline=focal_baseline or None, doffs=doffs)
        if path:
            truth = read_ground_truth(input_file(path, "gt_file"), gt_kind, gt_scale or None, name=path, **calibration)
        elif isinstance(ground_truth, torch.Tensor):
            truth = from_image(ground_truth, gt_kind, gt_scale or None, source="ground_truth IMAGE", **calibration)
        else:
            truth = from_depth_map(require_depth(ground_truth, "ground_truth"), "ground_truth DEPTH")
        result = evaluate_depth(pred, truth, mask, align, min_depth or None, max_depth or None)
        report = format_evaluation(result)
        return io.NodeOutput(
            report, json.dumps(result.as_dict()), result.mean["abs_rel"], result.mean["delta1"], ui=report_ui(report)
        )
