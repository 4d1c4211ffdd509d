"""Colorize Depth: DEPTH (or a grey depth IMAGE) -> colour IMAGE through a matplotlib colormap LUT."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from dav2_core.colormaps import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    RANGE_MODE_HELP,
    RANGE_MODES,
    colorize_in_range,
    colorize_range,
)
from dav2_core.depth import DepthMap

from .preview import depth_preview_ui
from .types import SEARCH_ALIASES, DepthIO, schema

def as_depth(value: object) -> DepthMap:
    """The DepthMap to colour from a DEPTH or IMAGE input, or a ValueError naming what was wired."""
    if isinstance(value, DepthMap):
        return value
    if isinstance(value, torch.Tensor):
        if value.ndim == 3 and value.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"'depth' got a tensor of shape {tuple(value.shape)}, which looks like a MASK; connect "
                "Estimate Depth's DEPTH output (or a depth IMAGE [B,H,W,3]) instead"
            )
        return DepthMap.from_image(value)
    raise ValueError(f"'depth' must be a DEPTH or an IMAGE, got {type(value).__name__}; connect Estimate Depth's DEPTH output")


class ColorizeDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2ColorizeDepth",
            display_name="Colorize Depth",
            description=(
                "Colours a depth map with a colormap (Spectral_r by default: near = red, far = blue). "
                "Takes the DEPTH output of Estimate Depth, or a grey depth IMAGE (brightness = nearness)."
            ),
            search_aliases=SEARCH_ALIASES + ["colormap", "colorize", "depth visualisation", "heatmap"],
            inputs=[
                io.MultiType.Input(
                    "depth", types=[DepthIO, io.Image],
                    tooltip="DEPTH from Estimate Depth (keeps metres for metric models), or a grey depth IMAGE "
                            "where brighter = nearer",
                ),
                io.Combo.Input("colormap", options=list(COLORMAPS), default=DEFAULT_COLORMAP,
                               tooltip="Colour table (matplotlib); near maps to its high end, far to its low end"),
                io.Boolean.Input("invert", default=False, tooltip="Reverse the colormap (near at the low end)"),
                io.Combo.Input("range_mode", options=list(RANGE_MODES), default="auto",
                               tooltip="Which depth values span the colormap:\n"
                                       + "\n".join(f"{k}: {v}" for k, v in RANGE_MODE_HELP.items())),
                io.Float.Input("manual_min", default=0.0, min=-1e9, max=1e9, step=0.01,
                               tooltip="manual range only: lower bound in the depth's units (metres for metric)"),
                io.Float.Input("manual_max", default=1.0, min=-1e9, max=1e9, step=0.01,
                               tooltip="manual range only: upper bound in the depth's units; must be greater than manual_min"),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="Coloured depth [B,H,W,3], same size as the depth"),
            ],
        )

    @classmethod
    def validate_inputs(cls, range_mode: str | None, manual_min: float | None, manual_max: float | None) -> bool | str:
        """Refuse a bad manual range when the graph is queued, before anything runs."""
        if range_mode is not None and range_mode not in RANGE_MODES:
            return f"unknown range_mode {range_mode!r}; choose one of {', '.join(RANGE_MODES)}"
        if range_mode == "manual" and manual_min is not None and manual_max is not None and manual_min >= manual_max:
            return (f"manual range: manual_min ({manual_min:g}) must be smaller than manual_max ({manual_max:g}); "
                    "raise manual_max or lower manual_min, or use range_mode auto")
        return True

    @classmethod
    def execute(cls, depth: object, colormap: str, invert: bool, range_mode: str, manual_min: float,
                manual_max: float) -> io.NodeOutput:
        manual = range_mode == "manual"
        depth_map = as_depth(depth)
        lo, hi = colorize_range(depth_map, range_mode, vmin=manual_min if manual else None,
                                vmax=manual_max if manual else None)
        image = colorize_in_range(depth_map, lo, hi, colormap, invert=invert)
        # the preview colours with the same range, so it shows what the IMAGE output is
        return io.NodeOutput(image, ui=depth_preview_ui(depth_map, display_range=(lo, hi)))
