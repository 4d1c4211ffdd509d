"""The depth analysis figure: histogram, middle row/column slices and a 3D surface, as an image.

Drawn with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``): no pyplot, no global state, so
it is safe to call from several threads (ComfyUI runs nodes off the main thread).
"""

from __future__ import annotations

import numpy as np
import torch


SURFACE_MAX_SIDE = 64
DEFAULT_SIZE = (1200, 900)  # width, height in pixels
_DPI = 100


def _as_2d(depth2d: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(depth2d, torch.Tensor):
        depth2d = depth2d.detach().float().cpu().numpy()
    arr = np.asarray(depth2d)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"plot_depth_analysis needs one [H,W] depth map, got shape {arr.shape}")
    if arr.dtype == bool or np.iscomplexobj(arr):
        raise ValueError(f"depth must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _downsample(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Block mean (NaN-aware) down to at most ``max_side`` per side; blocks with no finite pixel are NaN."""
    h, w = arr.shape
    sy, sx = -(-h // max_side), -(-w // max_side)
    ph, pw = -(-h // sy) * sy, -(-w // sx) * sx
    padded = np.full((ph, pw), np.nan, dtype=np.float32)
    padded[:h, :w] = arr
    blocks = padded.reshape(ph // sy, sy, pw // sx, sx)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    count = finite.sum(axis=(1, 3))
    out = np.full(total.shape, np.nan, dtype=np.float32)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _slice_panel(ax, profile: np.ndarray, title: str, xlabel: str, ylabel: str) -> None:
    marker = "o" if profile.size < 2 else None  # a 1-pixel profile is a point, not a line
    ax.plot(np.arange(profile.size), profile, color="tab:blue", linewidth=1.2, marker=marker, label="depth")
    finite = profile[np.isfinite(profile)]
    if finite.size:
        mean = float(finite.mean())
        ax.axhline(mean, color="tab:red", linestyle="--", linewidth=1.2, label=f"mean {mean:.4g}")
    else:
        ax.text(0.5, 0.5, "no valid pixels", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)


def plot_depth_analysis(
    depth2d: torch.Tensor | np.ndarray,
    units: str,
    title: str = "",
    size: tuple[int, int] = DEFAULT_SIZE,
) -> np.ndarray:
    """Analysis figure of one depth map [H,W] → RGB uint8 array [size[1], size[0], 3] (default 900x1200x3).

    Panels: histogram of the valid depth with mean and median lines; the middle row and the middle
    column as depth profiles, each with its mean line; a 3D surface of the depth block-averaged to at
    most 64x64. ``units`` is the depth's units ('m' or 'relative'); NaN/Inf pixels are left out (gaps in
    the profiles, filled with the mean in the surface). A constant or all-invalid map still plots.
    """
    arr = _as_2d(depth2d)
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise ValueError(f"plot size must be at least 200x150 pixels, got {width}x{height}")
    axis_label = "relative inverse depth" if units == "relative" else f"depth ({units})"
    finite = arr[np.isfinite(arr)]
    h, w = arr.shape

    # matplotlib is imported here, not with the module: ~22 MB resident and ~1 s that a ComfyUI server would
    # otherwise pay at start even when no plot is ever drawn (README, Security: memory)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title)

    ax = fig.add_subplot(2, 2, 1)
    if finite.size:
        ax.hist(finite, bins=100, color="tab:blue", alpha=0.75)
        mean, median = float(finite.mean()), float(np.median(finite))
        ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1.5, label=f"mean {mean:.4g}")
        ax.axvline(median, color="tab:green", linestyle="-", linewidth=1.5, label=f"median {median:.4g}")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no valid pixels", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(f"Depth histogram ({finite.size:,} of {arr.size:,} px valid)")
    ax.set_xlabel(axis_label)
    ax.set_ylabel("pixels")
    ax.grid(True, alpha=0.3)

    _slice_panel(fig.add_subplot(2, 2, 2), arr[h // 2, :], f"Middle row (y = {h // 2})", "x (px)", axis_label)
    _slice_panel(fig.add_subplot(2, 2, 3), arr[:, w // 2], f"Middle column (x = {w // 2})", "y (px)", axis_label)

    ax3 = fig.add_subplot(2, 2, 4, projection="3d")
    small = _downsample(arr, SURFACE_MAX_SIDE)
    fill = float(finite.mean()) if finite.size else 0.0
    small = np.where(np.isfinite(small), small, fill)
    sh, sw = small.shape
    xs, ys = np.meshgrid(np.linspace(0, w - 1, sw), np.linspace(0, h - 1, sh))
    # near = red for both kinds: relative values grow toward the camera, metres shrink
    cmap = "Spectral" if units == "m" else "Spectral_r"
    ax3.plot_surface(xs, ys, small, rstride=1, cstride=1, cmap=cmap, linewidth=0, antialiased=False)
    ax3.set_title(f"Depth surface ({sw}x{sh})")
    ax3.set_xlabel("x (px)")
    ax3.set_ylabel("y (px)")
    ax3.set_zlabel(axis_label)
    ax3.invert_yaxis()  # image rows grow downward

    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def as_image(rgb: np.ndarray) -> torch.Tensor:
    """An RGB uint8 array [H,W,3] (e.g. :func:`plot_depth_analysis`'s) as a ComfyUI IMAGE: [1,H,W,3] float32 0..1
    on the CPU."""
    return torch.from_numpy(rgb).float().div_(255.0).unsqueeze(0)
