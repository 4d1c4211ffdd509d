"""Depth refinement: colour-guided filter (edge-aware smoothing). Flip TTA merging is :func:`dav2_core.inference.flip_tta_merge`.

The guided filter (He, Sun & Tang, "Guided Image Filtering", TPAMI 2013; colour-guide version) fits, in
every (2r+1)² window, depth ≈ a·RGB + b to the guide image and averages the fits: depth edges snap to
image edges and flat regions are smoothed. Box means use cumulative sums (O(1) per pixel whatever the
radius), in float64 for accuracy; everything runs on the tensors' device.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..preprocess import as_image_batch, check_image_batch, to_rgb_float
from ._common import pair_batches


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of [..., H, W] over (2r+1)² windows clipped at the borders (each pixel divides by its count)."""

    def _sum_1d(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        c = torch.cumsum(t, dim=dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)  # c[i] = sum of t[:i]
        idx = torch.arange(n, device=t.device)
        hi = (idx + radius + 1).clamp(max=n)
        lo = (idx - radius).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    x64 = x.double()
    s = _sum_1d(_sum_1d(x64, -1), -2)
    ones = torch.ones(x.shape[-2:], device=x.device, dtype=torch.float64)
    count = _sum_1d(_sum_1d(ones, -1), -2)
    return s / count


def guided_filter(guide_image: torch.Tensor, depth: torch.Tensor, radius: int = 8, eps: float = 1e-3) -> torch.Tensor:
    """Edge-aware refinement of depth [B,H,W] guided by an IMAGE [B,H,W,C] (the ``preprocess`` rule) → [B,H,W] float32.

    radius: window radius in px (≥ 1). eps: regularisation in guide-intensity² units (0..1 images):
    edges whose colour variance is well above eps are kept, weaker ones smoothed (1e-4 sharp .. 1e-2
    smooth). The output keeps the depth's units (the filter is linear in depth). Batches pair as usual
    (equal or 1); a depth of another size is resized to the guide with a warning.
    """
    img = as_image_batch(guide_image, "guide_image")
    if not isinstance(depth, torch.Tensor) or depth.ndim != 3 or min(depth.shape) == 0:
        raise ValueError(f"depth must be a non-empty [B,H,W] tensor, got {getattr(depth, 'shape', type(depth))}")
    if int(radius) != radius or radius < 1:
        raise ValueError(f"radius must be a whole number of pixels ≥ 1, got {radius}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be > 0, got {eps}")
    img, p = pair_batches(img, depth.float().to(img.device))
    r = int(radius)
    guide = img.permute(0, 3, 1, 2).double()  # [B,3,H,W]
    p = p.double()
    mean_i = box_mean(guide, r)
    mean_p = box_mean(p, r)
    cov_ip = box_mean(guide * p[:, None], r) - mean_i * mean_p[:, None]  # [B,3,H,W]
    pairs = guide[:, :, None] * guide[:, None]  # [B,3,3,H,W]
    cov_ii = box_mean(pairs, r) - mean_i[:, :, None] * mean_i[:, None]
    eye = torch.eye(3, device=img.device, dtype=torch.float64)
    sigma = cov_ii.permute(0, 3, 4, 1, 2) + eps * eye  # [B,H,W,3,3], symmetric positive definite
    a = torch.linalg.solve(sigma, cov_ip.permute(0, 2, 3, 1)[..., None])[..., 0]  # [B,H,W,3]
    b = mean_p - (a * mean_i.permute(0, 2, 3, 1)).sum(-1)
    mean_a = box_mean(a.permute(0, 3, 1, 2), r)
    mean_b = box_mean(b, r)
    q = (mean_a * guide).sum(1) + mean_b
    return q.float()


#: Guided-filter regularisation for refinement (guide intensity², images 0..1): colour edges above ~0.03
#: contrast are kept.
REFINE_EPS = 1e-3


def refine_with_image(
    image: torch.Tensor,
    depth: torch.Tensor,
    strength: float,
    net_size: tuple[int, int],
    device: torch.device | str | None = None,
    between_frames: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Depth [B,H,W] blended toward its guided-filtered version (image [B,H,W,C] as guide) by ``strength`` 0..1.

    The window radius is twice the upscaling from the network size (h, w) to the image, at least 2 px: the
    band over which upsampled depth edges are smeared. Frames are converted and filtered one at a time on
    ``device`` (default: the depth's; the filter's 3x3 per-pixel solves need ~150 B/pixel), so memory does
    not grow with B; ``between_frames`` runs after each (e.g. to honour a cancel). Returns depth on its
    original device.
    """
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"refine strength must be in 0..1, got {strength}")
    if strength == 0.0:
        return depth
    image = check_image_batch(image)
    h, w = depth.shape[-2:]
    radius = max(2, math.ceil(2.0 * max(h / net_size[0], w / net_size[1])))
    device = device if device is not None else depth.device
    out = torch.empty_like(depth)
    for i in range(depth.shape[0]):
        frame = depth[i : i + 1].to(device)
        guide = to_rgb_float(image[i : i + 1].to(device), i)
        filtered = guided_filter(guide, frame, radius=radius, eps=REFINE_EPS)
        out[i] = torch.lerp(frame, filtered, strength)[0].to(out.device)
        if between_frames is not None:
            between_frames()
    return out
