"""Depth Parallax: IMAGE + DEPTH -> an IMAGE batch of N frames of a 3D camera move ("Ken Burns" / 3D photo)."""

from __future__ import annotations

import torch

from dav2_core.effects import MOTION_HELP, parallax_frames

from .api import image_output, io
from .effect_io import execution
from .types import SEARCH_ALIASES, choice_input, image_and_depth_inputs, require_depth, schema

MAX_FRAMES = 1024


class DepthParallax(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2DepthParallax",
            display_name="Depth Parallax",
            description=(
                "3D photo: N frames of a small camera move over each image. Every pixel moves in proportion to its "
                "inverse depth (near things move more), splatted with a z-buffer so nearer surfaces cover farther "
                "ones, and the background uncovered behind objects is filled from the farther side. The frames "
                "come out as one IMAGE batch, ready for Create Video / Video Combine."
            ),
            search_aliases=SEARCH_ALIASES
            + ["parallax", "3d photo", "ken burns", "camera move", "depth animation", "zoom", "dolly"],
            inputs=[
                *image_and_depth_inputs("Images [B,H,W,3] to animate"),
                io.Int.Input(
                    "frames",
                    default=24,
                    min=1,
                    max=MAX_FRAMES,
                    tooltip="Frames N per input image (at least 1); circle and swing loop seamlessly",
                ),
                choice_input("motion", MOTION_HELP, default="circle", lead="Camera move:"),
                io.Float.Input(
                    "strength",
                    default=0.03,
                    min=0.0,
                    max=0.5,
                    step=0.005,
                    tooltip="How far the nearest point moves, as a fraction of the image width "
                    "(0.02-0.05 looks natural; larger opens bigger gaps to fill)",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="frames",
                    tooltip="[B·N,H,W,3]: the N frames of image 1, then those of image 2, ... (same size as the input)",
                ),
            ],
        )

    @classmethod
    def execute(cls, image: torch.Tensor, depth: object, frames: int, motion: str, strength: float) -> io.NodeOutput:
        depth_map = require_depth(depth)
        if int(frames) != frames or not 1 <= frames <= MAX_FRAMES:
            raise ValueError(f"frames must be a whole number from 1 to {MAX_FRAMES}, got {frames}")
        return io.NodeOutput(
            image_output(parallax_frames(image, depth_map, int(frames), motion, strength, run=execution()))
        )
