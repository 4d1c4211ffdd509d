"""Estimate Depth's optional quality levers: flip TTA, guided-filter refinement, temporal consistency for video.

Kept apart from ``estimate.py`` so the node's core stays short; the maths is in ``dav2_core.effects``.
"""
from __future__ import annotations

import math

import torch
from .api import io

from dav2_core.effects import temporally_consistent


def quality_inputs() -> list[io.Input]:
    """The optional Estimate Depth inputs (defaults = off, so workflows saved before them run unchanged)."""
    return [
        io.Boolean.Input("flip_tta", default=False, optional=True,
                         tooltip="Test-time augmentation: also predict the horizontally flipped image and average "
                                 "both (cleaner, more symmetric depth; twice the compute)"),
        io.Float.Input("refine", default=0.0, min=0.0, max=1.0, step=0.05, optional=True,
                       tooltip="Edge-aware refinement strength: a colour-guided filter with the input image as guide "
                               "snaps depth edges to image edges and smooths flat areas (window about twice the "
                               "network-to-image upscaling). 0 = off, 1 = fully filtered, in between blends."),
        io.Boolean.Input("temporal_consistency", default=False, optional=True,
                         tooltip="For video frames / image sequences: align each frame's depth scale and shift to the "
                                 "previous frame's (robust least squares), then normalise the depth image and mask "
                                 "once over the whole batch (per_image/percentile become batch), so they do not "
                                 "flicker. Relative models only: metric depth is already in metres, so for metric "
                                 "models the alignment is skipped and only the batch-wide normalisation applies."),
        io.Float.Input("temporal_smoothing", default=1.0, min=0.0, max=1.0, step=0.05, optional=True,
                       tooltip="temporal_consistency only: how strongly each frame's scale/shift is pulled to the "
                               "previous frame's: 1 = fully aligned (least flicker); lower lets the scale follow the "
                               "scene more freely; 0 = no alignment, only the batch-wide normalisation"),
    ]


def temporal_align(values: torch.Tensor, kind: str, enabled: bool, smoothing: float) -> torch.Tensor:
    """Frames [T,H,W] of relative depth aligned in scale/shift to their predecessors (no-op when disabled,
    for metric depth or a single frame)."""
    if not (math.isfinite(smoothing) and 0.0 <= smoothing <= 1.0):
        raise ValueError(f"temporal_smoothing must be in 0..1, got {smoothing}")
    if not enabled or kind == "metric" or values.shape[0] < 2:
        return values
    return temporally_consistent(values, smoothing=smoothing)


def normalization_for(normalization: str, temporal_consistency: bool) -> str:
    """The normalisation actually used: with temporal consistency, one min-max over the batch (raw stays raw)."""
    if temporal_consistency and normalization in ("per_image", "percentile"):
        return "batch"
    return normalization
