"""Batched inference on image tensors, chunked to fit memory, plus the official numpy ``infer_image``.

Layouts: IMAGE [B,H,W,C] float 0..1 (ComfyUI) in, depth [B,H,W] float32 at the input resolution out.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .preprocess import ResolutionMode, check_image_batch, network_size, prepare_batch, prepare_bgr_image, to_rgb_float
from .variants import PATCH_SIZE

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(images_done, images_total)`` after every chunk; may raise to cancel."""

MAX_CHUNK = 64


def model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and compute dtype of a model (those of its patch-embedding weights)."""
    weight = model.pretrained.patch_embed.proj.weight
    return weight.device, weight.dtype


def _free_memory_bytes(device: torch.device) -> int:
    """Memory a chunk may use: free CUDA memory (plus the caching allocator's reserve), or available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def bytes_per_image(model: torch.nn.Module, net_size: tuple[int, int], image_size: tuple[int, int]) -> int:
    """Rough peak working memory of one image in a chunk (activations, not weights), in bytes."""
    _, dtype = model_device_dtype(model)
    elem = torch.finfo(dtype).bits // 8
    tokens = (net_size[0] // PATCH_SIZE) * (net_size[1] // PATCH_SIZE) + 1
    embed = model.pretrained.embed_dim
    features = model.depth_head.scratch.output_conv1.weight.shape[1]
    encoder = tokens * embed * (4 * 6 + elem * 8)  # fp32 residual + 4 kept token maps + qkv/mlp in compute dtype
    head = net_size[0] * net_size[1] * (features // 2 + 32) * elem * 2 + tokens * 64 * features * elem
    io = image_size[0] * image_size[1] * 4 * 6  # input chunk in float32 + upsampled depth
    return int(encoder + head + io)


def auto_chunk_size(model: torch.nn.Module, net_size: tuple[int, int], image_size: tuple[int, int]) -> int:
    """Images per forward pass so that a chunk uses at most half of the free device memory."""
    device, _ = model_device_dtype(model)
    budget = _free_memory_bytes(device) // 2
    return int(max(1, min(MAX_CHUNK, budget // max(1, bytes_per_image(model, net_size, image_size)))))


def _forward_chunk(
    model: torch.nn.Module, images: torch.Tensor, net_size: tuple[int, int], flip_tta: bool, first_index: int = 0
) -> torch.Tensor:
    """A chunk [b,H,W,C] of a checked IMAGE (any device, uint8 or float) -> depth [b,H,W] float32 on the
    model's device. Conversion and validation happen here, per chunk, so memory does not scale with B."""
    device, dtype = model_device_dtype(model)
    height, width = images.shape[1:3]
    rgb = to_rgb_float(images.to(device, non_blocking=True), first_index)
    x = prepare_batch(rgb, net_size, dtype)
    if flip_tta:
        both = model(torch.cat((x, x.flip(-1))))
        depth = (both[: x.shape[0]] + both[x.shape[0]:].flip(-1)) * 0.5
    else:
        depth = model(x)
    return F.interpolate(depth[:, None], (height, width), mode="bilinear", align_corners=True)[:, 0]


@torch.inference_mode()
def predict_depth(
    model: torch.nn.Module,
    images: torch.Tensor,
    input_size: int = 518,
    resolution: ResolutionMode = "keep_aspect",
    max_side: int = 1932,
    chunk_size: int | None = None,
    flip_tta: bool = False,
    progress: ProgressFn | None = None,
    output_device: torch.device | str | None = "cpu",
) -> torch.Tensor:
    """Depth for an image batch.

    images: [B,H,W,C] float 0..1 (or uint8), C in {1,3,4}, on any device; moved chunk by chunk to the
    model's device. Returns [B,H,W] float32 on ``output_device`` (None: the model's device): relative
    inverse depth, or metres for a metric model. Each finished chunk is copied out at once, so device
    memory does not grow with B. ``chunk_size=None`` sizes chunks from free memory; an out-of-memory
    error halves the chunk and retries it (no frame is lost or repeated).
    """
    images = check_image_batch(images)
    batch, height, width, _ = images.shape
    net_size = network_size(height, width, input_size, resolution, max_side)
    device, _ = model_device_dtype(model)
    chunk = chunk_size or auto_chunk_size(model, net_size, (height, width))
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out_device = torch.device(output_device) if output_device is not None else device
    # Plain (unpinned) memory: pinning a whole long video's output would lock gigabytes of host RAM.
    result = torch.empty((batch, height, width), dtype=torch.float32, device=out_device)
    start = 0
    while start < batch:
        stop = min(batch, start + chunk)
        try:
            depth = _forward_chunk(model, images[start:stop], net_size, flip_tta, start)
        except torch.OutOfMemoryError:
            if chunk == 1:
                raise torch.OutOfMemoryError(
                    f"out of memory on {device} for a single {height}x{width} image at network size {net_size}; "
                    "lower input_size, use a smaller model or precision fp16/bf16, or free memory"
                ) from None
            chunk = max(1, chunk // 2)
            log.warning("out of memory; retrying with chunks of %d images", chunk)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        result[start:stop].copy_(depth)  # device -> host copies are synchronous: the chunk's memory is free after
        del depth
        start = stop
        if progress is not None:
            progress(start, batch)
    return result


@torch.inference_mode()
def infer_bgr_image(model: torch.nn.Module, bgr: np.ndarray, input_size: int = 518) -> np.ndarray:
    """The official ``infer_image`` contract: BGR uint8 [H,W,3] -> depth [H,W] float32 numpy."""
    device, dtype = model_device_dtype(model)
    x = torch.from_numpy(prepare_bgr_image(bgr, input_size))[None].to(device=device, dtype=dtype)
    depth = model(x.contiguous(memory_format=torch.channels_last))
    depth = F.interpolate(depth[:, None], bgr.shape[:2], mode="bilinear", align_corners=True)[0, 0]
    return depth.cpu().numpy()

