"""Input preparation: the official resize rule, ImageNet normalisation, and the one IMAGE validation rule.

The official pipeline (``Resize(keep_aspect_ratio=True, ensure_multiple_of=14,
resize_method='lower_bound')``, bicubic, ImageNet mean/std) is reproduced here once, for both the
tensor API (``prepare_batch``, on the tensor's device) and the numpy ``infer_image`` path.

The IMAGE rule, for every entry point (inference, the effects, ``DepthMap.from_image``):

- layout [B,H,W,C] (a single [H,W,C] is a batch of one), B, H, W > 0; C = 3 (RGB), 4 (RGBA: alpha is
  ignored) or 1 (grey: repeated to RGB);
- dtype uint8 (0..255, scaled by 1/255) or any float dtype holding 0..1. Float values up to
  ``IMAGE_VALUE_TOLERANCE`` outside 0..1 are clamped to 0..1: resizing with a bicubic filter overshoots
  at hard edges (ComfyUI's Upscale Image does not clamp: about +-0.1 on photos, up to +-0.27 on a pixel
  checkerboard) and so does float rounding. Anything further out (a 0..255 float tensor, a -1..1 image)
  and NaN/Inf are refused, naming the image and the expected range. Other dtypes are refused.

It is checked in two steps so that memory never scales with the batch: :func:`check_image_batch` looks
at the layout only (no pixel access), :func:`to_rgb_float` checks and converts the values of one chunk.
The numpy ``infer_image`` path takes BGR uint8 only, like the official one (:func:`prepare_bgr_image`).
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
    "native": "the image's own resolution rounded to multiples of 14, longest side capped at max_side "
    "(and scaled down further if it would exceed the 128x128-patch limit)",
}
#: Largest patch grid we run (tokens per image); beyond it attention memory explodes.
MAX_TOKENS = 128 * 128
#: Largest keep_aspect input_size (px) that fits MAX_TOKENS for a square image.
MAX_INPUT_SIZE = math.isqrt(MAX_TOKENS) * PATCH_SIZE
#: How far outside 0..1 a float IMAGE value may lie and still be accepted (then clamped); see the module doc.
IMAGE_VALUE_TOLERANCE = 0.3


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
        raise ValueError(
            f"input_size must be at least {PATCH_SIZE} (one 14-px patch); got {input_size}. The default is 518."
        )
    return int(input_size)


def _keep_aspect_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """The official lower-bound rule: short side >= input_size, both sides x14, aspect kept."""
    scale = max(input_size / height, input_size / width)
    return _multiple_of_14(scale * height, min_val=input_size), _multiple_of_14(scale * width, min_val=input_size)


def _tokens(size: tuple[int, int]) -> int:
    return (size[0] // PATCH_SIZE) * (size[1] // PATCH_SIZE)


def _too_many_tokens(height: int, width: int, net: tuple[int, int], mode: str, input_size: int, max_side: int) -> str:
    """Why a network size exceeds MAX_TOKENS, naming the setting to change and the largest value that works."""
    what = (
        f"a {height}x{width} image would run at {net[0]}x{net[1]} ({_tokens(net)} patches of {PATCH_SIZE} px; "
        f"the limit is {MAX_TOKENS}, as attention memory grows with the square of it)"
    )
    if mode == "keep_aspect":
        square = math.isqrt(MAX_TOKENS) * PATCH_SIZE  # the largest input_size for any image
        fits = [
            s
            for s in range(PATCH_SIZE, min(input_size, square + 1), PATCH_SIZE)
            if _tokens(_keep_aspect_size(height, width, s)) <= MAX_TOKENS
        ]
        if input_size > square:
            this = f" ({fits[-1]} for this image)" if fits and fits[-1] != square else ""
            return f"input_size {input_size} is too large: {what}. Use input_size {square} or less{this}."
        if fits:
            return (
                f"the image is too elongated for input_size {input_size} in keep_aspect mode: {what}. "
                f"Use input_size {fits[-1]} or less for this image, or the 'native' resolution mode."
            )
        return (
            f"the image is too elongated for keep_aspect mode: {what} even at the smallest input_size. "
            "Crop the image, or use the 'native' resolution mode."
        )
    return f"max_side {max_side} is too large: {what}. Use a smaller max_side."


def network_size(
    height: int, width: int, input_size: int = 518, mode: ResolutionMode = "keep_aspect", max_side: int = 1932
) -> tuple[int, int]:
    """(height, width) the network runs at for an image of ``height`` x ``width`` pixels.

    keep_aspect: the official lower-bound rule (short side >= input_size, x14, aspect kept).
    native: the image's own size rounded down to x14 (at least 14), scaled down so the longest side
    <= max_side and the patch count <= ``MAX_TOKENS``.
    Raises ValueError when keep_aspect would exceed ``MAX_TOKENS`` patches, naming the cause (input_size
    too large for this image, with the largest one that works, or an image too elongated for the mode).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels ({height}x{width})")
    if mode == "keep_aspect":
        input_size = check_input_size(input_size)
        net_h, net_w = _keep_aspect_size(height, width, input_size)
    elif mode == "native":
        if max_side < PATCH_SIZE:
            raise ValueError(f"max_side must be at least {PATCH_SIZE} px, got {max_side}")
        area_cap = math.sqrt(MAX_TOKENS * PATCH_SIZE**2 / (height * width))
        scale = min(1.0, max_side / max(height, width), area_cap)
        net_h = max(PATCH_SIZE, int(height * scale) // PATCH_SIZE * PATCH_SIZE)
        net_w = max(PATCH_SIZE, int(width * scale) // PATCH_SIZE * PATCH_SIZE)
    else:
        raise ValueError(f"unknown resolution mode {mode!r}; expected one of {', '.join(RESOLUTION_MODES)}")
    if _tokens((net_h, net_w)) > MAX_TOKENS:
        raise ValueError(_too_many_tokens(height, width, (net_h, net_w), mode, input_size, max_side))
    return net_h, net_w


def check_image_batch(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Check the layout and dtype of an IMAGE without touching its pixels (the rule in the module doc);
    returns it as [B,H,W,C]. ``name`` is the input's name in error messages."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be an image tensor [B,H,W,C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"{name} must be an image batch [B,H,W,C], got shape {tuple(images.shape)}")
    batch, height, width, channels = images.shape
    if batch == 0:
        raise ValueError(f"the {name} batch is empty (0 images): connect a node that outputs at least one image")
    if height == 0 or width == 0:
        raise ValueError(f"{name} has no pixels ({height}x{width})")
    if channels not in (1, 3, 4):
        raise ValueError(
            f"{name} must have 1, 3 or 4 channels (grey, RGB, RGBA); got {channels} - is a MASK or latent wired here?"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"{name} has unsupported dtype {images.dtype}; use float (0..1) or uint8 (0..255)")
    return images


def _range_error(index: int, lo: float, hi: float) -> str:
    hint = ""
    if lo >= -IMAGE_VALUE_TOLERANCE and hi <= 255.0 * (1.0 + IMAGE_VALUE_TOLERANCE):
        hint = " It looks like 0..255: divide it by 255."
    elif lo >= -1.0 - IMAGE_VALUE_TOLERANCE and hi <= 1.0 + IMAGE_VALUE_TOLERANCE:
        hint = " It looks like -1..1: map it with (x + 1) / 2."
    return (
        f"image {index} of the batch has values {lo:.4g}..{hi:.4g}; a float IMAGE must hold 0..1 (values up to "
        f"{IMAGE_VALUE_TOLERANCE:g} outside, e.g. from bicubic resizing, are clamped).{hint}"
    )


def to_rgb_float(images: torch.Tensor, first_index: int = 0) -> torch.Tensor:
    """A checked IMAGE (or a chunk of one) -> [b,H,W,3] float32 0..1 on the same device.

    uint8 is scaled by 1/255, RGBA alpha is dropped, grey is repeated. Float values are checked per image:
    NaN/Inf or values more than ``IMAGE_VALUE_TOLERANCE`` outside 0..1 are a ValueError naming the first
    bad image (``first_index`` is the chunk's offset in the whole batch); values within it are clamped.
    Memory: one float copy of the chunk at most (none for float32 RGB input already in 0..1).
    """
    if images.dtype == torch.uint8:
        rgb = images.float() / 255.0
    else:
        rgb = images.float()
        lo, hi = torch.aminmax(rgb.flatten(1), dim=1)  # NaN propagates into both
        finite = torch.isfinite(lo) & torch.isfinite(hi)
        if not bool(finite.all()):
            bad = first_index + int((~finite).nonzero()[0])
            raise ValueError(f"image {bad} of the batch contains NaN/Inf pixel values; fix the node that produced them")
        outside = (lo < -IMAGE_VALUE_TOLERANCE) | (hi > 1.0 + IMAGE_VALUE_TOLERANCE)
        if bool(outside.any()):
            i = int(outside.nonzero()[0])
            raise ValueError(_range_error(first_index + i, float(lo[i]), float(hi[i])))
        if bool((lo < 0.0).any() or (hi > 1.0).any()):
            rgb = rgb.clamp(0.0, 1.0)  # out of place: never write into the caller's tensor
    channels = rgb.shape[-1]
    if channels == 4:
        rgb = rgb[..., :3]
    elif channels == 1:
        rgb = rgb.expand(-1, -1, -1, 3)
    return rgb


def as_image_batch(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate an IMAGE and return all of it as [B,H,W,3] float32 0..1 (same device); see
    :func:`check_image_batch` and :func:`to_rgb_float`. Large batches: convert chunk by chunk instead."""
    return to_rgb_float(check_image_batch(images, name))


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
    """Official ``image2tensor`` in float32: BGR uint8 [H,W,3] -> normalised CHW float32 at the network size.

    Only uint8 is accepted, as officially (it divides by 255): a float or 16-bit array is a ValueError
    saying how to convert it, not a silently wrong depth map.
    """
    import cv2

    if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(
            f"infer_image expects a BGR image array [H,W,3] (cv2.imread), got {getattr(bgr, 'shape', type(bgr))}"
        )
    if bgr.dtype != np.uint8:
        how = (
            "for 0..1 floats use (bgr * 255).round().clip(0, 255).astype(np.uint8)"
            if bgr.dtype.kind == "f"
            else "convert it to 8 bits first (e.g. (bgr // 257).astype(np.uint8) for 16-bit)"
        )
        raise ValueError(
            f"infer_image expects a BGR uint8 array (0..255, what cv2.imread returns), got dtype {bgr.dtype}; {how}"
        )
    height, width = bgr.shape[:2]
    net_h, net_w = network_size(height, width, input_size)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(255.0)
    rgb = cv2.resize(rgb, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    rgb = (rgb - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))
