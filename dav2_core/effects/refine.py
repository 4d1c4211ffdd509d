"""Depth refinement: colour-guided filter (edge-aware smoothing) and horizontal-flip TTA merging.

The guided filter (He, Sun & Tang, "Guided Image Filtering", TPAMI 2013; colour-guide version) fits, in
every (2r+1)² window, depth ≈ a·RGB + b to the guide image and averages the fits: depth edges snap to
image edges and flat regions are smoothed. Box means use cumulative sums (O(1) per pixel whatever the
radius), in float64 for accuracy; everything runs on the tensors' device.
"""
from __future__ import annotations

import math

import torch

from ._common import check_image, pair_batches


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
    """Edge-aware refinement of depth [B,H,W] guided by an IMAGE [B,H,W,3] 0..1 → [B,H,W] float32.

    radius: window radius in px (≥ 1). eps: regularisation in guide-intensity² units (0..1 images):
    edges whose colour variance is well above eps are kept, weaker ones smoothed (1e-4 sharp .. 1e-2
    smooth). The output keeps the depth's units (the filter is linear in depth). Batches pair as usual
    (equal or 1); a depth of another size is resized to the guide with a warning.
    """
    img = check_image(guide_image, "guide_image")
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
