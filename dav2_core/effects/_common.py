"""What the effects share: input checks, IMAGE/DEPTH pairing chunk by chunk (:func:`pair_inputs`), and depth ->
inverse depth.

Images follow the one IMAGE rule of :mod:`dav2_core.preprocess` (uint8 or float 0..1, grey/RGB/RGBA),
checked for layout up front and for values chunk by chunk.

Pairing rule (every effect that takes an IMAGE and a DEPTH):
- batch lengths must be equal, or one of them 1 (it is repeated); anything else is a ``ValueError``;
- a depth of a different height/width is resized (bilinear) to the image's size with a ``UserWarning``
  (depth is often predicted at a lower resolution; resizing it is what the user wants).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..depth import DepthMap, safe_reciprocal
from ..normalize import scale_to_unit
from ..preprocess import to_rgb_float


def check_depth(depth: DepthMap, name: str = "depth") -> DepthMap:
    """A non-empty DepthMap; ValueError for anything else (plain tensors carry no kind)."""
    if not isinstance(depth, DepthMap):
        raise ValueError(f"{name} must be a DepthMap (values [B,H,W] + kind), got {type(depth).__name__}")
    if min(depth.values.shape) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(depth.values.shape)})")
    return depth


def paired_batch(images: int, depths: int) -> int:
    """The batch length of an image batch paired with a depth batch (equal, or either one of length 1)."""
    if images != depths and 1 not in (images, depths):
        raise ValueError(
            f"image batch has {images} images but depth batch has {depths} maps; give one depth per image"
            " (or a single image / single depth to reuse for all)"
        )
    return max(images, depths)


def warn_if_resized(
    depth_hw: tuple[int, ...], image_hw: tuple[int, ...], what: str = "depth", stacklevel: int = 3
) -> None:
    """The one ``UserWarning`` for a depth of another size than its image (it is resized, bilinear);
    ``stacklevel`` as for ``warnings.warn`` (3: the caller of the function that calls this)."""
    if tuple(depth_hw) != tuple(image_hw):
        warnings.warn(
            f"{what} is {depth_hw[1]}x{depth_hw[0]} but the image is {image_hw[1]}x{image_hw[0]};"
            " resizing the depth (bilinear) to the image size",
            UserWarning,
            stacklevel=stacklevel,
        )


def _resize(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    return F.interpolate(values.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def _rows(x: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, bool]:
    """(rows start..stop of x, False), or (x's only row, True) when a batch of 1 is reused for every item."""
    if x.shape[0] == 1:
        return x[:1], stop - start > 1
    return x[start:stop], False


def image_chunk(image: torch.Tensor, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Items start..stop of a checked IMAGE as [b,H,W,3] float32 0..1 on ``device`` (values checked here)."""
    rows, repeat = _rows(image, start, stop)
    rgb = to_rgb_float(rows.to(device), 0 if image.shape[0] == 1 else start)
    return rgb.expand(stop - start, -1, -1, -1) if repeat else rgb


def depth_chunk(
    values: torch.Tensor,
    start: int,
    stop: int,
    size: tuple[int, int],
    device: torch.device,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Items start..stop of depth values [B,H,W] as float32 on ``device``, mapped by ``transform`` (e.g. to
    inverse depth) and then resized (bilinear) to ``size``."""
    rows, repeat = _rows(values, start, stop)
    v = rows.to(device).float()
    v = _resize(transform(v) if transform is not None else v, size)
    return v.expand(stop - start, -1, -1) if repeat else v


def pair_batches(image: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image [B,H,W,3] float and depth [B,H,W] with equal batch lengths (a batch of 1 is repeated), the
    depth resized to the image's size with a warning; for small inputs handled whole (no chunking)."""
    total = paired_batch(image.shape[0], values.shape[0])
    size = tuple(image.shape[1:3])
    warn_if_resized(tuple(values.shape[-2:]), size)
    rows, repeat = _rows(image, 0, total)
    image = rows.expand(total, -1, -1, -1) if repeat else rows
    return image, depth_chunk(values, 0, total, size, image.device)


@dataclass(frozen=True)
class PairedInputs:
    """A checked IMAGE [B,H,W,C] and its DepthMap paired by the pairing rule (:func:`pair_inputs`), read
    chunk by chunk on the compute ``device``: ``batch`` items of ``size`` (H, W), the image's size."""

    image: torch.Tensor
    depth: DepthMap
    device: torch.device
    batch: int
    size: tuple[int, int]

    def rgb(self, start: int, stop: int) -> torch.Tensor:
        """Items start..stop as [b,H,W,3] float32 0..1 (:func:`image_chunk`)."""
        return image_chunk(self.image, start, stop, self.device)

    def inverse_depth(self, start: int, stop: int) -> torch.Tensor:
        """Items start..stop as [b,H,W] float32 inverse depth (:func:`inverse_depth`) at the image's size."""
        return depth_chunk(self.depth.values, start, stop, self.size, self.device, self._to_inverse)

    def _to_inverse(self, values: torch.Tensor) -> torch.Tensor:
        return inverse_depth(self.depth.with_values(values))


def pair_inputs(image: torch.Tensor, depth: DepthMap, device: torch.device) -> PairedInputs:
    """Pair a checked IMAGE with a checked DepthMap for an effect run in chunks on ``device``: ValueError
    for batch lengths that do not pair, the resize ``UserWarning`` (for the effect's caller) for a depth of
    another size."""
    batch = paired_batch(image.shape[0], depth.batch)
    size = (image.shape[1], image.shape[2])
    warn_if_resized((depth.height, depth.width), size, stacklevel=4)
    return PairedInputs(image, depth, device, batch, size)


def inverse_depth(depth: DepthMap) -> torch.Tensor:
    """[B,H,W] float32 inverse depth: proportional to 1/distance (up to an affine map for relative maps).

    Not the same as :meth:`DepthMap.nearness` (the ordering "larger = nearer", -metres for metric maps):
    lens blur and parallax need a quantity linear in 1/distance. Relative maps already are affine
    inverse depth (NaN/Inf become 0); metric metres become 1/metres (non-positive or non-finite metres
    become 0 = infinitely far).
    """
    v = depth.values.float()
    if not depth.is_metric:
        return torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    return safe_reciprocal(v)


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
