"""Error metrics between a reference depth and another: max/mean absolute error relative to the range.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def compare(reference: np.ndarray | torch.Tensor, other: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Errors of ``other`` against ``reference`` (same shape): max and mean abs error over the reference's range, Pearson."""
    ref = np.asarray(reference.float().cpu() if isinstance(reference, torch.Tensor) else reference, np.float64)
    got = np.asarray(other.float().cpu() if isinstance(other, torch.Tensor) else other, np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare depth maps of shapes {ref.shape} and {got.shape}")
    span = float(ref.max() - ref.min())
    if span <= 0:
        raise ValueError("reference depth map is constant; the seeded weights are degenerate")
    diff = np.abs(got - ref)
    return {
        "max_abs_over_range": float(diff.max() / span),
        "mean_abs_over_range": float(diff.mean() / span),
        "pearson": float(np.corrcoef(ref.ravel(), got.ravel())[0, 1]),
    }


def worst(comparisons: Sequence[dict[str, float]]) -> dict[str, float]:
    """The worst case over photos: largest errors, smallest Pearson."""
    return {
        "max_abs_over_range": max(c["max_abs_over_range"] for c in comparisons),
        "mean_abs_over_range": max(c["mean_abs_over_range"] for c in comparisons),
        "pearson": min(c["pearson"] for c in comparisons),
    }
