"""Input preparation: the official resize rule, ImageNet normalisation, and input validation.

The official pipeline (``Resize(keep_aspect_ratio=True, ensure_multiple_of=14,
resize_method='lower_bound')``, bicubic, ImageNet mean/std) is reproduced here once, for both the
tensor API (``prepare_batch``, on the tensor's device) and the numpy ``infer_image`` path.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .variants import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE

ResolutionMode = Literal["keep_aspect", "native"]
RESOLUTION_MODES: dict[str, str] = {
    "keep_aspect": "official: short side scaled to input_size, both sides rounded to multiples of 14",
    "native": "the image's own resolution rounded to multiples of 14, longest side capped at max_side",
}
#: Largest patch grid we run (tokens per image); beyond it attention memory explodes.
MAX_TOKENS = 128 * 128


def _multiple_of_14(x: float, min_val: int = 0) -> int:
    """Official ``constrain_to_multiple_of``: round (half to even, as numpy) to x14, never below ``min_val``."""
    y = int(np.round(x / PATCH_SIZE) * PATCH_SIZE)
    if y < min_val:
        y = int(math.ceil(x / PATCH_SIZE) * PATCH_SIZE)
    return y


def check_input_size(input_size: int) -> int:
    """input_size must be an integer >= 14 (multiples of 14 are used as is; others round like official)."""
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)):
        raise ValueError(f"input_size must be an integer number of pixels (e.g. 518), got {input_size!r}")
    if input_size < PATCH_SIZE:
        raise ValueError(f"input_size must be at least {PATCH_SIZE} (one 14-px patch); got {input_size}. The default is 518.")
    return int(input_size)


def network_size(
    height: int, width: int, input_size: int = 518, mode: ResolutionMode = "keep_aspect", max_side: int = 1932
) -> tuple[int, int]:
    """(height, width) the network runs at for an image of ``height`` x ``width`` pixels.

    keep_aspect: the official lower-bound rule (short side >= input_size, x14, aspect kept).
    native: the image's own size rounded to x14 (at least 14), scaled down so the longest side <= max_side.
    Raises ValueError when the result would exceed ``MAX_TOKENS`` patches (extreme aspect ratios).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels ({height}x{width})")
    if mode == "keep_aspect":
        input_size = check_input_size(input_size)
        scale_h, scale_w = input_size / height, input_size / width
        scale_h = scale_w = max(scale_h, scale_w)
        net_h = _multiple_of_14(scale_h * height, min_val=input_size)
        net_w = _multiple_of_14(scale_w * width, min_val=input_size)
    elif mode == "native":
        if max_side < PATCH_SIZE:
            raise ValueError(f"max_side must be at least {PATCH_SIZE} px, got {max_side}")
        scale = min(1.0, max_side / max(height, width))
        net_h = max(PATCH_SIZE, int(height * scale) // PATCH_SIZE * PATCH_SIZE)
        net_w = max(PATCH_SIZE, int(width * scale) // PATCH_SIZE * PATCH_SIZE)
    else:
        raise ValueError(f"unknown resolution mode {mode!r}; expected one of {', '.join(RESOLUTION_MODES)}")
    tokens = (net_h // PATCH_SIZE) * (net_w // PATCH_SIZE)
    if tokens > MAX_TOKENS:
        raise ValueError(
            f"a {height}x{width} image would run at {net_h}x{net_w} ({tokens} patches, limit {MAX_TOKENS}); "
            "the aspect ratio is too extreme for keep-aspect mode - crop the image, or use the 'native' "
            "resolution mode with a smaller max side"
        )
    return net_h, net_w


def check_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Validate the layout of a ComfyUI-style IMAGE without touching its pixels; returns [B,H,W,C].

    Accepts [B,H,W,C] or [H,W,C]; C = 3 (RGB), 4 (RGBA) or 1 (grey); uint8 or any float dtype;
    non-contiguous views. Rejects empty batches, other channel counts and other dtypes.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected an image tensor [B,H,W,C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"expected an image batch [B,H,W,C], got shape {tuple(images.shape)}")
    batch, height, width, channels = images.shape
    if batch == 0:
        raise ValueError("the image batch is empty (0 images): connect a node that outputs at least one image")
    if height == 0 or width == 0:
        raise ValueError(f"images have no pixels ({height}x{width})")
    if channels not in (1, 3, 4):
        raise ValueError(f"images must have 1, 3 or 4 channels (grey, RGB, RGBA); got {channels} - is a MASK or latent wired here?")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"unsupported image dtype {images.dtype}; use float (0..1) or uint8 (0..255)")
    return images


def to_rgb_float(images: torch.Tensor, first_index: int = 0) -> torch.Tensor:
    """A checked IMAGE (or a chunk of one) -> [b,H,W,3] float32 0..1 on the same device.

    uint8 is scaled by 1/255, RGBA alpha is dropped, grey is repeated. NaN/Inf pixels are a ValueError
    naming the first bad image (``first_index`` is the chunk's offset in the whole batch).
    """
    rgb = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    channels = rgb.shape[-1]
    if channels == 4:
        rgb = rgb[..., :3]
    elif channels == 1:
        rgb = rgb.expand(-1, -1, -1, 3)
    if images.dtype == torch.uint8:  # always finite: no pass over the pixels (video frames are uint8)
        return rgb
    finite = torch.isfinite(rgb).flatten(1).all(1)
    if not bool(finite.all()):
        bad = first_index + int((~finite).nonzero()[0])
        raise ValueError(f"image {bad} of the batch contains NaN/Inf pixel values; fix the node that produced them")
    return rgb


def as_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Validate an IMAGE and return all of it as [B,H,W,3] float32 0..1 (same device); see
    :func:`check_image_batch` and :func:`to_rgb_float`. Large batches: convert chunk by chunk instead."""
    return to_rgb_float(check_image_batch(images))


def prepare_batch(images: torch.Tensor, net_size: tuple[int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B,H,W,3] float 0..1 -> network input [B,3,h,w] (bicubic resize + ImageNet normalisation), same device.

    Resizes in float32 (bicubic, no antialias, like OpenCV's INTER_CUBIC used officially) and only then
    casts to ``dtype``.
    """
    x = images.permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != tuple(net_size):
        x = F.interpolate(x, size=net_size, mode="bicubic", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype).contiguous(memory_format=torch.channels_last)


def prepare_bgr_image(bgr: np.ndarray, input_size: int = 518) -> np.ndarray:
    """Official ``image2tensor`` in float32: BGR uint8 [H,W,3] -> normalised CHW float32 at the network size."""
    import cv2

    if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"infer_image expects a BGR image array [H,W,3] (cv2.imread), got {getattr(bgr, 'shape', type(bgr))}")
    height, width = bgr.shape[:2]
    net_h, net_w = network_size(height, width, input_size)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(255.0)
    rgb = cv2.resize(rgb, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    rgb = (rgb - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))
