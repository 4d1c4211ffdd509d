"""`DepthMap`: the float depth of a batch plus what its numbers mean (the DEPTH type in ComfyUI)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .variants import DepthKind, units_for

#: ITU-R BT.601 luma weights: a depth IMAGE is read as relative depth from its brightness.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_FROM_IMAGE_CHUNK = 16  # images converted at a time by DepthMap.from_image


def safe_reciprocal(values: torch.Tensor, floor: float | None = None) -> torch.Tensor:
    """1/values for metres <-> inverse metres (disparity), the one rule for both directions and both readings
    of a bad value.

    floor None: values that are non-finite or <= 0 give 0 (no depth = infinitely far; 1/metres of
    unmeasured pixels). floor > 0: values below ``floor`` and NaN are read as ``floor``, so the result is at
    most ``1/floor`` (e.g. a disparity floor of 1/max_depth caps the metres at max_depth).
    """
    if floor is None:
        good = torch.isfinite(values) & (values > 0)
        return torch.where(good, 1.0 / torch.where(good, values, torch.ones_like(values)), torch.zeros_like(values))
    return 1.0 / torch.nan_to_num(values, nan=floor).clamp_min(floor)


def nearness_range(lo: torch.Tensor, hi: torch.Tensor, metric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds ``lo..hi`` in depth units as bounds in nearness units (metric: ``-hi..-lo``, see
    :meth:`DepthMap.nearness`); the map is its own inverse, so it also turns nearness bounds back."""
    return (-hi, -lo) if metric else (lo, hi)


@dataclass(frozen=True)
class DepthMap:
    """Depth for a batch of images.

    values: [B,H,W] float32. For ``kind="relative"`` it is the model's affine-invariant inverse depth
    (disparity-like: larger = nearer, arbitrary scale and shift). For ``kind="metric"`` it is distance
    in metres (larger = farther).

    intrinsics: the camera, where the depth came with one (core DA3/MoGe geometry, see ``geometry``):
    [B,3,3] or [1,3,3] float32 pinhole matrices in normalised image coordinates (x, y in 0..1 from the
    top-left image corner, pixel centres at ``(i + 0.5) / W``; ``fx = f_px / W``, ``fy = f_px / H``), so
    they hold at any resolution. None = unknown (nodes then take a field of view).
    """

    values: torch.Tensor
    kind: DepthKind = "relative"
    model: str = ""  # variant id or checkpoint file name it came from
    intrinsics: torch.Tensor | None = None

    def __post_init__(self) -> None:
        v = self.values
        if not isinstance(v, torch.Tensor) or v.ndim != 3:
            raise ValueError(f"DepthMap.values must be a [B,H,W] tensor, got {getattr(v, 'shape', type(v))}")
        if self.kind not in ("relative", "metric"):
            raise ValueError(f"DepthMap.kind must be 'relative' or 'metric', got {self.kind!r}")
        k = self.intrinsics
        if k is not None and (
            not isinstance(k, torch.Tensor) or k.ndim != 3 or k.shape[1:] != (3, 3) or k.shape[0] not in (1, v.shape[0])
        ):
            raise ValueError(
                f"DepthMap.intrinsics must be None or [B,3,3] / [1,3,3] for {v.shape[0]} maps, "
                f"got {getattr(k, 'shape', type(k))}"
            )

    @classmethod
    def from_image(cls, image: torch.Tensor) -> DepthMap:
        """A grey depth IMAGE [B,H,W,C] (near = bright, e.g. a depth_image output) as relative depth [B,H,W].

        The brightness (BT.601 luma) is the nearness. The image follows the one IMAGE rule of
        ``preprocess`` (uint8 or float 0..1; grey, RGB or RGBA with alpha dropped), checked and converted
        chunk by chunk, so no whole-batch float copy is made.
        """
        from .preprocess import check_image_batch, to_rgb_float

        images = check_image_batch(image)
        weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32, device=images.device)
        values = torch.empty(images.shape[:3], dtype=torch.float32, device=images.device)
        for start in range(0, images.shape[0], _FROM_IMAGE_CHUNK):
            stop = start + _FROM_IMAGE_CHUNK
            values[start:stop] = to_rgb_float(images[start:stop], start) @ weights
        return cls(values, kind="relative", model="image")

    @property
    def units(self) -> str:
        """'m' for metric depth, 'relative' otherwise (derived from ``kind``: the two cannot disagree)."""
        return units_for(self.kind)

    @property
    def batch(self) -> int:
        return self.values.shape[0]

    @property
    def height(self) -> int:
        return self.values.shape[1]

    @property
    def width(self) -> int:
        return self.values.shape[2]

    @property
    def is_metric(self) -> bool:
        return self.kind == "metric"

    def nearness(self) -> torch.Tensor:
        """[B,H,W] float32 oriented so larger = nearer: relative depth as is, metric metres negated.

        The one definition of nearness (normalisation and colouring go through it). It orders pixels and
        keeps metres linear; it is not proportional to 1/distance (effects that need that use
        ``effects._common.inverse_depth``).
        """
        values = self.values.float()
        return -values if self.is_metric else values

    def with_values(self, values: torch.Tensor) -> DepthMap:
        """Same meaning and units, new numbers (e.g. a slice of the batch, or resized). The camera is kept
        when it still applies to every map (same batch size, or one camera for all); else it is dropped."""
        k = self.intrinsics
        if k is not None and k.shape[0] != 1 and values.shape[0] != k.shape[0]:
            k = None
        return replace(self, values=values, intrinsics=k)

    def __getitem__(self, index: int | slice) -> DepthMap:
        v = self.values[index]
        k = self.intrinsics
        if k is not None and k.shape[0] != 1:
            k = k[index]
            k = k.unsqueeze(0) if k.ndim == 2 else k
        return replace(self, values=v.unsqueeze(0) if v.ndim == 2 else v, intrinsics=k)
