"""Depth Bokeh: IMAGE + DEPTH -> lens-blurred IMAGE (occlusion-aware layers) and the circle of confusion as a MASK."""

from __future__ import annotations

import torch

from dav2_core.effects import lens_blur

from .api import advanced, image_output, io
from .effect_io import execution
from .types import SEARCH_ALIASES, choice_input, depth_value_input, image_and_depth_inputs, require_depth, schema

#: How the focus is chosen, in UI order.
FOCUS_MODES: dict[str, str] = {
    "point": "focus on what is at (focus_x, focus_y); 0,0 = top-left, 1,1 = bottom-right",
    "depth": "focus at the depth value focus_depth, in the DEPTH's own units",
}


class DepthBokeh(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2DepthBokeh",
            display_name="Depth Bokeh",
            description=(
                "Lens blur (depth of field) from a depth map: the blur disc grows with the distance from the focus "
                "plane, and the image is blurred in depth layers composited back to front, so a sharp subject "
                "never bleeds into a blurred background (no halos) and a blurred foreground spreads over what is "
                "behind it like a real lens. Batch-capable; runs on the GPU."
            ),
            search_aliases=SEARCH_ALIASES
            + ["bokeh", "lens blur", "depth of field", "dof", "refocus", "blur background"],
            inputs=[
                *image_and_depth_inputs("Images [B,H,W,3] to blur"),
                choice_input("focus_mode", FOCUS_MODES, default="point"),
                *(
                    io.Float.Input(
                        f"focus_{axis}",
                        default=0.5,
                        min=0.0,
                        max=1.0,
                        step=0.01,
                        tooltip=f"point mode: {direction} position of the in-focus point, fraction of the {extent}",
                    )
                    for axis, direction, extent in (("x", "horizontal", "width"), ("y", "vertical", "height"))
                ),
                depth_value_input(
                    "focus_depth",
                    default=1.0,
                    tooltip="depth mode: the depth in focus, in the DEPTH's units: metres for metric "
                    "models, the model's raw value for relative ones (see Depth Stats for the "
                    "range). Must lie inside each image's depth range.",
                ),
                io.Float.Input(
                    "max_blur_radius",
                    default=12.0,
                    min=0.0,
                    max=256.0,
                    step=0.5,
                    tooltip="Aperture: blur disc radius in pixels for the points farthest from the focus "
                    "plane (0 = no blur)",
                ),
                io.Float.Input(
                    "focus_range",
                    default=0.1,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Depth of the sharp zone around the focus, as a fraction of the scene's depth "
                    "range (in inverse depth, as a lens sees it)",
                ),
                advanced(
                    io.Int.Input(
                        "layers",
                        default=16,
                        min=3,
                        max=64,
                        tooltip="Depth layers used for compositing: more = smoother blur transitions, slower",
                    )
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="The blurred images [B,H,W,3], same size as the input image"
                ),
                io.Mask.Output(
                    display_name="coc", tooltip="Circle of confusion [B,H,W] in 0..1: 0 = sharp, 1 = max_blur_radius"
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        depth: object,
        focus_mode: str,
        focus_x: float,
        focus_y: float,
        focus_depth: float,
        max_blur_radius: float,
        focus_range: float,
        layers: int,
    ) -> io.NodeOutput:
        depth_map = require_depth(depth)
        if focus_mode not in FOCUS_MODES:
            raise ValueError(f"unknown focus_mode {focus_mode!r}; choose one of {', '.join(FOCUS_MODES)}")
        focus = {"focus_point": (focus_x, focus_y)} if focus_mode == "point" else {"focus_depth": focus_depth}
        blurred, coc = lens_blur(
            image,
            depth_map,
            max_blur_radius=max_blur_radius,
            focus_range=focus_range,
            layers=layers,
            run=execution(),
            **focus,
        )
        return io.NodeOutput(image_output(blurred), image_output(coc))
