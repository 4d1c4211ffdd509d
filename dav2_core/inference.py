"""Batched inference on image tensors, chunked to fit memory, plus the official numpy ``infer_image``.

Layouts: IMAGE [B,H,W,C] float 0..1 (ComfyUI) in, depth [B,H,W] float32 at the input resolution out.
Works over any engine (:mod:`dav2_core.engines`): the PyTorch model or an optional runtime backend.
"""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .effects.refine import flip_tta_merge
from .engines import as_engine, describe
from .memory import OutOfMemoryError, free_memory_bytes, is_out_of_memory, release_cached
from .preprocess import ResolutionMode, check_image_batch, network_size, prepare_batch, prepare_bgr_image, to_rgb_float
from .tta import merge_views, view_sizes
from .variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(images_done, images_total)`` after every chunk; may raise to cancel."""

MAX_CHUNK = 64


def model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """Device and network-input dtype of a model or engine."""
    engine = as_engine(model)
    return engine.device, engine.input_dtype


def bytes_per_image(model: Any, net_size: tuple[int, int], image_size: tuple[int, int]) -> int:
    """Rough peak working memory of one image in a chunk (activations, not weights), in bytes."""
    return as_engine(model).bytes_per_image(net_size, image_size)


def auto_chunk_size(model: Any, net_size: tuple[int, int], image_size: tuple[int, int], flip_tta: bool = False) -> int:
    """Images per forward pass so that a chunk uses at most half of the free device memory.

    With ``flip_tta`` every image runs twice (itself and its mirror image in one batch): twice the memory.
    """
    engine = as_engine(model)
    budget = free_memory_bytes(engine.device) // 2
    per_image = max(1, engine.bytes_per_image(net_size, image_size)) * (2 if flip_tta else 1)
    return int(max(1, min(MAX_CHUNK, budget // per_image)))


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
    device = engine.device
    out_device = torch.device(output_device) if output_device is not None else device
    # Plain (unpinned) memory: pinning a whole long video's output would lock gigabytes of host RAM.
    result = torch.empty((batch, height, width), dtype=torch.float32, device=out_device)
    start = 0
    while start < batch:
        stop = min(batch, start + chunk)
        try:
            extra = {"views": views, "kind": kind} if views else {}
            depth = _forward_chunk(engine, images[start:stop], net_size, flip_tta, start, **extra)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; the rest re-raises
            if not is_out_of_memory(exc):
                raise
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # outside the handler: the traceback no longer pins the failed chunk's tensors
            release_cached(device)
            if chunk == 1:
                raise OutOfMemoryError(
                    f"out of memory on {device} for a single {height}x{width} image at network size {largest}; "
                    "lower input_size, use a smaller model or precision fp16/bf16, a lighter tta, or free memory"
                )
            chunk = max(1, chunk // 2)
            log.warning("out of memory; retrying with chunks of %d images", chunk)
            continue
        result[start:stop].copy_(depth)  # device -> host copies are synchronous: the chunk's memory is free after
        del depth
        start = stop
        if progress is not None:
            progress(start, batch)
    return result


@torch.inference_mode()
def infer_bgr_image(model: Any, bgr: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """The official ``infer_image`` contract: BGR uint8 [H,W,3] -> depth [H,W] float32 numpy."""
    engine = as_engine(model)
    x = torch.from_numpy(prepare_bgr_image(bgr, input_size))[None]
    engine.check_net_size(tuple(x.shape[-2:]))
    x = x.to(device=engine.device, dtype=engine.input_dtype)
    depth = engine(x.contiguous(memory_format=torch.channels_last))
    depth = F.interpolate(depth[:, None], bgr.shape[:2], mode="bilinear", align_corners=True)[0, 0]
    return depth.cpu().numpy()
