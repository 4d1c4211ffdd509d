"""Batched inference on image tensors, chunked to fit memory (:mod:`dav2_core.chunks`), with flip TTA merging.

The official numpy ``infer_image`` is :func:`dav2_core.engines.base.infer_image` (below this module).

Layouts: IMAGE [B,H,W,C] float 0..1 (ComfyUI) in, depth [B,H,W] float32 at the input resolution out.
Works over any engine (:mod:`dav2_core.engines`): the PyTorch model or an optional runtime backend.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .chunks import CHUNK_MEMORY_SHARE, MAX_CHUNK, Execution, ProgressFn, run_chunked
from .engines import as_engine, describe
from .memory import free_memory_bytes
from .preprocess import ResolutionMode, check_image_batch, network_size, prepare_batch, to_rgb_float
from .tta import merge_views, view_sizes
from .variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE

__all__ = ["MAX_CHUNK", "ProgressFn", "auto_chunk_size", "flip_tta_merge", "predict_depth"]


def auto_chunk_size(model: Any, net_size: tuple[int, int], image_size: tuple[int, int], flip_tta: bool = False) -> int:
    """Images per forward pass so that a chunk uses at most ``CHUNK_MEMORY_SHARE`` of the free device memory,
    at most ``MAX_CHUNK``. With ``flip_tta`` every image runs twice (itself and its mirror image in one
    batch): twice the memory.
    """
    engine = as_engine(model)
    budget = int(CHUNK_MEMORY_SHARE * free_memory_bytes(engine.device))
    per_image = max(1, engine.bytes_per_image(net_size, image_size)) * (2 if flip_tta else 1)
    return int(max(1, min(MAX_CHUNK, budget // per_image)))


def flip_tta_merge(depth: torch.Tensor, depth_flipped: torch.Tensor) -> torch.Tensor:
    """Average of a depth [B,H,W] and the depth predicted for the horizontally flipped image (un-flipped
    here) → [B,H,W]. Both must come from the same model, so they share scale and shift."""
    if not isinstance(depth, torch.Tensor) or depth.ndim != 3:
        raise ValueError(f"depth must be [B,H,W], got {getattr(depth, 'shape', type(depth))}")
    if not isinstance(depth_flipped, torch.Tensor) or depth_flipped.shape != depth.shape:
        raise ValueError(
            f"depth_flipped must have the same shape as depth {tuple(depth.shape)},"
            f" got {tuple(getattr(depth_flipped, 'shape', ()))}"
        )
    return 0.5 * (depth + depth_flipped.to(depth.device).flip(-1))


def _forward_view(engine: Any, rgb: torch.Tensor, net_size: tuple[int, int], flip_tta: bool) -> torch.Tensor:
    """RGB [b,H,W,3] float 0..1 on the engine's device -> depth [b,h,w] at the network size ``net_size``."""
    x = prepare_batch(rgb, net_size, engine.input_dtype)
    if not flip_tta:
        return engine(x)
    both = engine(torch.cat((x, x.flip(-1))))
    return flip_tta_merge(both[: x.shape[0]], both[x.shape[0] :])


def _forward_chunk(
    engine: Any,
    images: torch.Tensor,
    net_size: tuple[int, int],
    flip_tta: bool,
    first_index: int = 0,
    views: tuple[tuple[int, int], ...] = (),
    kind: str = "relative",
) -> torch.Tensor:
    """A chunk [b,H,W,C] of a checked IMAGE (any device, uint8 or float) -> depth [b,H,W] float32 on the
    engine's device. Conversion and validation happen here, per chunk, so memory does not scale with B.
    ``views``: the extra multi-scale TTA network sizes, run one after another and merged on the base grid
    (:func:`dav2_core.tta.merge_views`, ``kind`` the model's)."""
    height, width = images.shape[1:3]
    rgb = to_rgb_float(images.to(engine.device, non_blocking=True), first_index)
    depth = _forward_view(engine, rgb, net_size, flip_tta)
    if views:
        depth = merge_views(depth, (_forward_view(engine, rgb, view, flip_tta) for view in views), kind)
    return F.interpolate(depth[:, None], (height, width), mode="bilinear", align_corners=True)[:, 0]


@torch.inference_mode()
def predict_depth(
    model: Any,
    images: torch.Tensor,
    input_size: int = DEFAULT_INPUT_SIZE,
    resolution: ResolutionMode = "keep_aspect",
    max_side: int = DEFAULT_MAX_SIDE,
    chunk_size: int | None = None,
    flip_tta: bool = False,
    progress: ProgressFn | None = None,
    output_device: torch.device | str | None = "cpu",
    *,
    multi_scale: bool = False,
) -> torch.Tensor:
    """Depth for an image batch.

    model: a ``DepthAnythingV2`` (``load_model``) or any engine (:mod:`dav2_core.engines`).
    images: [B,H,W,C] float 0..1 (or uint8), C in {1,3,4}, on any device; moved chunk by chunk to the
    model's device. Returns [B,H,W] float32 on ``output_device`` (None: the model's device): relative
    inverse depth, or metres for a metric model. Each finished chunk is copied out at once, so device
    memory does not grow with B. ``chunk_size=None`` sizes chunks from free memory; an out-of-memory
    error (including cuDNN/cuBLAS allocation failures) halves the chunk and retries it (no frame is lost
    or repeated). ``flip_tta`` also runs each view mirrored; ``multi_scale`` adds the smaller and larger TTA
    views of :mod:`dav2_core.tta` (merged per chunk on the base network grid).
    """
    kind = describe(model)[0]
    engine = as_engine(model)
    images = check_image_batch(images)
    batch, height, width, _ = images.shape
    net_size = network_size(height, width, input_size, resolution, max_side)
    keep_aspect = input_size if resolution == "keep_aspect" else None
    views = tuple(view_sizes(net_size, (height, width), keep_aspect)) if multi_scale else ()
    for size in (net_size, *views):
        engine.check_net_size(size)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (or None for automatic), got {chunk_size}")
    largest = max((net_size, *views), key=lambda size: size[0] * size[1])
    chunk = chunk_size or auto_chunk_size(engine, largest, (height, width), flip_tta)
    out_device = torch.device(output_device) if output_device is not None else engine.device
    # Plain (unpinned) memory: pinning a whole long video's output would lock gigabytes of host RAM.
    result = torch.empty((batch, height, width), dtype=torch.float32, device=out_device)
    extra = {"views": views, "kind": kind} if views else {}

    def work(start: int, stop: int) -> None:
        depth = _forward_chunk(engine, images[start:stop], net_size, flip_tta, start, **extra)
        result[start:stop].copy_(depth)  # device -> host copies are synchronous: the chunk's memory is free after

    run_chunked(
        batch,
        work,
        0,
        height * width,
        engine.device,
        Execution(chunk_size=chunk, progress=progress),
        "image",
        single_oom=f"out of memory on {engine.device} for a single {height}x{width} image at network size "
        f"{largest}; lower input_size, use a smaller model or precision fp16/bf16, a lighter tta, or free memory",
    )
    return result
