"""Depth effects on IMAGE/DEPTH tensors (no ComfyUI imports): bokeh, parallax, temporal consistency,
refinement, metric calibration, export, normals. Every function is batched; bokeh, parallax, normals and
calibration take ``run=Execution(...)`` (compute and output devices, chunk size, progress/cancel, memory
reserve) and work in chunks sized from free memory, like ``inference.predict_depth``; without it they run
on the tensor's device.

Pairing rule for functions taking an IMAGE [B,H,W,3] and a DEPTH: batch lengths must match or one be 1
(reused); a depth of another height/width is resized (bilinear) to the image with a ``UserWarning``.
"""

from ..chunks import Execution
from .bokeh import lens_blur
from .calibrate import calibrate_to_metric
from .export import FORMATS, exr_backend, load_depth, save_depth
from .normals import depth_to_normals, depth_to_pointcloud, ply_bytes, write_ply
from .parallax import MOTION_HELP, MOTIONS, parallax_frames
from .refine import guided_filter, refine_with_image
from .temporal import TemporalAligner, align_scale_shift, flicker_metric, robust_scale_shift

__all__ = [
    "TemporalAligner",
    "Execution",
    "refine_with_image",
    "FORMATS",
    "MOTIONS",
    "MOTION_HELP",
    "align_scale_shift",
    "calibrate_to_metric",
    "depth_to_normals",
    "depth_to_pointcloud",
    "exr_backend",
    "flicker_metric",
    "guided_filter",
    "lens_blur",
    "load_depth",
    "parallax_frames",
    "robust_scale_shift",
    "save_depth",
    "ply_bytes",
    "write_ply",
]
