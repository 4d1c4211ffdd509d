"""Estimate Depth: IMAGE batch -> depth IMAGE (near = white), DEPTH (float map + meaning), MASK."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch

from dav2_core.pipeline import EstimateOptions, estimate
from dav2_core.preprocess import check_image_batch
from dav2_core.ranges import ESTIMATE_MODES

from . import model_patcher
from .api import image_output, io
from .estimate_quality import (
    chunk_size_input,
    quality_inputs,
    size_inputs,
    tile_inputs,
    tile_options,
    tta_input,
    tta_options,
)
from .preview import depth_preview_ui
from .types import SEARCH_ALIASES, DepthIO, DepthModel, DepthModelIO, range_combo, schema


class EstimateDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2EstimateDepth",
            display_name="Estimate Depth",
            description=(
                "Monocular depth with Depth Anything V2 for an image batch (or video frames), run in chunks "
                "with a progress step per chunk. Outputs a ControlNet-ready grey depth image (near = white, "
                "same size as the input), the float DEPTH map with its units, and the normalised depth as a MASK. "
                "Optional: flip test-time augmentation, edge-aware refinement guided by the image, and temporal "
                "consistency for video (no flicker)."
            ),
            search_aliases=SEARCH_ALIASES + ["estimate depth", "depth estimation", "depth preprocessor"],
            has_intermediate_output=True,  # the depth preview comes back when the result is cached
            inputs=[
                DepthModelIO.Input("model", tooltip="Depth model from Load Depth Anything V2"),
                io.Image.Input(
                    "image", tooltip="Images [B,H,W,C]; RGBA alpha is ignored. Every frame of a batch is processed."
                ),
                *size_inputs(),
                range_combo("normalization", ESTIMATE_MODES, "How depth becomes the 0..1 image and mask:"),
                io.Boolean.Input(
                    "invert",
                    default=False,
                    tooltip="Flip the image and mask (near = black). The DEPTH output is never inverted.",
                ),
                chunk_size_input(
                    "Images per forward pass; 0 = automatic from free memory. Cancel takes effect "
                    "between chunks, and the progress bar advances per chunk."
                ),
                *quality_inputs(),
                *tile_inputs(),
                tta_input(),
            ],
            outputs=[
                io.Image.Output(
                    display_name="depth_image",
                    tooltip="Grey depth [B,H,W,3], near = white, same size as the input: "
                    "ready for a depth ControlNet or for saving",
                ),
                DepthIO.Output(
                    display_name="depth",
                    tooltip="Float depth [B,H,W] with its kind and units (relative inverse depth, "
                    "or metres for metric models), for Colorize Depth, Depth Stats and depth math",
                ),
                io.Mask.Output(
                    display_name="mask", tooltip="The normalised depth [B,H,W] in 0..1 (near = 1) as a MASK"
                ),
            ],
        )

    @classmethod
    def validate_inputs(
        cls,
        normalization: str | None,
        invert: bool | None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        max_tiles: int | None = None,
        tta: str | None = None,
        resolution: str | None = None,
        input_size: int | None = None,
    ) -> bool | str:
        """Refuse raw + invert, bad tile options and impossible tta choices when the graph is queued. Declaring
        ``normalization`` makes this ComfyUI's check of it (instead of the option list): the older names of
        ``ranges.LEGACY_NAMES`` pass, an unknown name is refused naming the choices."""
        try:
            EstimateOptions(
                normalization=normalization or "min_max",
                invert=bool(invert),
                **tile_options(tile_size, tile_overlap, max_tiles),
                **tta_options(tta, resolution, input_size),
            )
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(
        cls,
        model: DepthModel,
        image: torch.Tensor,
        input_size: int,
        resolution: str,
        max_side: int,
        normalization: str,
        invert: bool,
        chunk_size: int,
        flip_tta: bool = False,
        refine: float = 0.0,
        temporal_consistency: bool = False,
        temporal_smoothing: float = 1.0,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        max_tiles: int | None = None,
        tta: str = "none",
    ) -> io.NodeOutput:
        if not isinstance(model, DepthModel):
            raise ValueError(f"'model' must come from Load Depth Anything V2, got {type(model).__name__}")
        options = EstimateOptions(  # validates every option before the model runs
            input_size=input_size,
            resolution=resolution,
            max_side=max_side,
            chunk_size=chunk_size or None,
            flip_tta=flip_tta,
            refine=refine,
            temporal_consistency=temporal_consistency,
            temporal_smoothing=temporal_smoothing,
            normalization=normalization,
            invert=invert,
            **tile_options(tile_size, tile_overlap, max_tiles),
            tta=tta,
        )
        batch, height, width, _ = check_image_batch(image).shape
        need = options.memory_required(model.patcher.model, batch, height, width)
        network = model_patcher.load(model.patcher, memory_required=need)  # ComfyUI frees room for activations too
        bar = comfy.utils.ProgressBar(int(batch))
        result = estimate(
            network,
            image,
            options,
            progress=lambda done, total: bar.update_absolute(done, total),
            check_cancel=mm.throw_exception_if_processing_interrupted,
            output_device=mm.intermediate_device(),
            work_device=model.patcher.load_device,
            model_name=model.name,
        )
        return io.NodeOutput(
            image_output(result.depth_image()),
            result.depth,
            image_output(result.normalized),
            ui=depth_preview_ui(result.depth),
        )
