"""Estimate Depth: IMAGE batch -> depth IMAGE (near = white), DEPTH (float map + meaning), MASK."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch
from .api import image_output, io

from dav2_core.depth import DepthMap
from dav2_core.effects import refine_with_image
from dav2_core.inference import MAX_CHUNK, predict_depth
from dav2_core.normalize import NORMALIZE_MODE_HELP, NORMALIZE_MODES, normalize_depth, to_image
from dav2_core.preprocess import RESOLUTION_MODES, network_size
from dav2_core.variants import PATCH_SIZE

from . import model_patcher
from .estimate_quality import normalization_for, quality_inputs, temporal_align
from .preview import depth_preview_ui
from .types import SEARCH_ALIASES, DepthIO, DepthModel, DepthModelIO, schema

MAX_INPUT_SIZE = 8190 // PATCH_SIZE * PATCH_SIZE


def _help(options: dict[str, str]) -> str:
    return "\n".join(f"{name}: {text}" for name, text in options.items())


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
                io.Image.Input("image", tooltip="Images [B,H,W,C]; RGBA alpha is ignored. Every frame of a batch is processed."),
                io.Int.Input("input_size", default=518, min=PATCH_SIZE, max=MAX_INPUT_SIZE, step=PATCH_SIZE,
                             tooltip="Network resolution for keep_aspect (the short side, multiple of 14). "
                                     "518 is what the models were trained at; larger shows finer detail, costs more."),
                io.Combo.Input("resolution", options=list(RESOLUTION_MODES), default="keep_aspect",
                               tooltip=_help(RESOLUTION_MODES)),
                io.Int.Input("max_side", default=1932, min=PATCH_SIZE, max=MAX_INPUT_SIZE, step=PATCH_SIZE,
                             tooltip="native mode only: the longest side the network runs at (multiple of 14); "
                                     "larger images are scaled down to it"),
                io.Combo.Input("normalization", options=list(NORMALIZE_MODES), default="per_image",
                               tooltip="How depth becomes the 0..1 image and mask:\n" + _help(NORMALIZE_MODE_HELP)),
                io.Boolean.Input("invert", default=False,
                                 tooltip="Flip the image and mask (near = black). The DEPTH output is never inverted."),
                io.Int.Input("chunk_size", default=0, min=0, max=MAX_CHUNK,
                             tooltip="Images per forward pass; 0 = automatic from free memory. Cancel takes effect "
                                     "between chunks, and the progress bar advances per chunk."),
                *quality_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="depth_image",
                                tooltip="Grey depth [B,H,W,3], near = white, same size as the input: "
                                        "ready for a depth ControlNet or for saving"),
                DepthIO.Output(display_name="depth",
                               tooltip="Float depth [B,H,W] with its kind and units (relative inverse depth, "
                                       "or metres for metric models), for Colorize Depth, Depth Stats and depth math"),
                io.Mask.Output(display_name="mask",
                               tooltip="The normalised depth [B,H,W] in 0..1 (near = 1) as a MASK"),
            ],
        )

    @classmethod
    def validate_inputs(cls, normalization: str | None, invert: bool | None) -> bool | str:
        """Refuse raw + invert when the graph is queued, before the model runs."""
        if normalization is not None and normalization not in NORMALIZE_MODES:
            return f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZE_MODES)}"
        if normalization == "raw" and invert:
            return ("invert cannot be combined with normalization 'raw' (raw keeps the model's values); "
                    "turn invert off or pick per_image, percentile or batch")
        return True

    @classmethod
    def execute(cls, model: DepthModel, image: torch.Tensor, input_size: int, resolution: str, max_side: int,
                normalization: str, invert: bool, chunk_size: int, flip_tta: bool = False, refine: float = 0.0,
                temporal_consistency: bool = False, temporal_smoothing: float = 1.0) -> io.NodeOutput:
        if not isinstance(model, DepthModel):
            raise ValueError(f"'model' must come from Load Depth Anything V2, got {type(model).__name__}")
        message = cls.validate_inputs(normalization, invert)
        if message is not True:  # direct calls skip ComfyUI's validation: check before the model runs
            raise ValueError(message)
        network = model_patcher.load(model.patcher)
        batch = int(image.shape[0]) if image.ndim == 4 else 1
        bar = comfy.utils.ProgressBar(batch)

        def progress(done: int, total: int) -> None:
            bar.update_absolute(done, total)
            mm.throw_exception_if_processing_interrupted()

        values = predict_depth(network, image, input_size=input_size, resolution=resolution, max_side=max_side,
                               chunk_size=chunk_size or None, flip_tta=flip_tta, progress=progress,
                               output_device=mm.intermediate_device())
        net_size = network_size(*values.shape[1:], input_size, resolution, max_side)
        values = refine_with_image(image, values, refine, net_size, model.patcher.load_device,
                                   mm.throw_exception_if_processing_interrupted)
        values = temporal_align(values, model.kind, temporal_consistency, temporal_smoothing)
        depth = DepthMap(values, kind=model.kind, model=model.name)
        normalization = normalization_for(normalization, temporal_consistency)
        norm = normalize_depth(depth, normalization, invert=invert)
        depth_image = to_image(norm) if normalization != "raw" else norm.unsqueeze(-1).expand(*norm.shape, 3).contiguous()
        return io.NodeOutput(image_output(depth_image), depth, image_output(norm), ui=depth_preview_ui(depth))
