"""Input checks shared by the effects: IMAGE/DEPTH pairing and depth → normalised disparity.

Pairing rule (every effect that takes an IMAGE and a DEPTH):
- batch lengths must be equal, or one of them 1 (it is repeated); anything else is a ``ValueError``;
- a depth of a different height/width is resized (bilinear) to the image's size with a ``UserWarning``
  (depth is often predicted at a lower resolution; resizing it is what the user wants).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..depth import DepthMap
from ..normalize import scale_to_unit


def check_image(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """An IMAGE [B,H,W,3] float 0..1 as float32 (extra alpha channel dropped); ValueError otherwise."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a [B,H,W,3] tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be [B,H,W,3] (batch, height, width, RGB), got shape {tuple(image.shape)}")
    if min(image.shape[:3]) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be float 0..1, got dtype {image.dtype}; divide uint8 images by 255")
    return image[..., :3].float()


def check_depth(depth: DepthMap, name: str = "depth") -> DepthMap:
    """A non-empty DepthMap; ValueError for anything else (plain tensors carry no kind)."""
    if not isinstance(depth, DepthMap):
        raise ValueError(f"{name} must be a DepthMap (values [B,H,W] + kind), got {type(depth).__name__}")
    if min(depth.values.shape) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(depth.values.shape)})")
    return depth


def resize_depth(values: torch.Tensor, size: tuple[int, int], what: str = "depth") -> torch.Tensor:
    """[B,H,W] resized (bilinear) to ``size`` = (H, W), warning that it happened; no-op when equal."""
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    warnings.warn(
        f"{what} is {values.shape[-1]}x{values.shape[-2]} but the image is {size[1]}x{size[0]};"
        " resizing the depth (bilinear) to the image size",
        UserWarning,
        stacklevel=3,
    )
    return F.interpolate(values.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def pair_batches(image: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image [B,H,W,3] and depth [B,H,W] with equal batch lengths (a batch of 1 is repeated).

    Depth of another size is resized to the image's size with a warning; other batch mismatches raise.
    """
    bi, bd = image.shape[0], values.shape[0]
    if bi != bd:
        if bd == 1:
            values = values.expand(bi, -1, -1)
        elif bi == 1:
            image = image.expand(bd, -1, -1, -1)
        else:
            raise ValueError(
                f"image batch has {bi} images but depth batch has {bd} maps; give one depth per image"
                " (or a single image / single depth to reuse for all)"
            )
    values = resize_depth(values.to(image.device), tuple(image.shape[1:3]))
    return image, values


def disparity(depth: DepthMap) -> torch.Tensor:
    """[B,H,W] float32 disparity-like values (larger = nearer, ∝ 1/distance for metric maps).

    Relative maps already are affine inverse depth; metric metres become 1/metres (non-positive or
    non-finite metres become 0 = infinitely far).
    """
    v = depth.values.float()
    if not depth.is_metric:
        return torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    good = torch.isfinite(v) & (v > 0)
    return torch.where(good, 1.0 / torch.where(good, v, torch.ones_like(v)), torch.zeros_like(v))


def normalise_per_image(values: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max of each [H,W] map to 0..1 → (normalised [B,H,W], flat [B] bool: the map has no range).

    A flat map (range ≤ eps × max(1, |max|)) becomes all zeros and is flagged. The scaling itself is
    ``normalize.scale_to_unit``, the one place depth is mapped to 0..1.
    """
    flat_v = values.flatten(1)
    lo = flat_v.amin(dim=1)
    hi = flat_v.amax(dim=1)
    flat = (hi - lo) <= eps * torch.clamp(hi.abs(), min=1.0)
    return scale_to_unit(values, lo, torch.where(flat, lo, hi)), flat
