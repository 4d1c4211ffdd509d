#!/usr/bin/env python3
"""Render the small pictures of the node help pages (``web/docs/images/*.jpg``) with the engine the nodes call.

No model weights can be had on the build machines, and a random-init model's depth is noise, so the depth here is
measured: the Middlebury 2014 "motorcycle" stereo pair's disparity (as shipped in scikit-image's sample data,
BSD-3; ``../shared/depth_gt/middlebury_motorcycle``). Disparity is what a relative Depth Anything model predicts
(inverse depth up to scale and shift), and the calibration in ``../shared/README.md`` turns it into metres for
the metric pictures. Invalid pixels (+inf) are filled by inpainting for display. Each picture is a JPEG under
60 KB. Run: ``.venv/bin/python tools/make_doc_images.py`` (``--shared DIR`` for another shared folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_core.colormaps import colorize_in_range, colorize_range  # noqa: E402
from dav2_core.depth import DepthMap  # noqa: E402
from dav2_core.effects.bokeh import lens_blur  # noqa: E402
from dav2_core.effects.normals import depth_to_normals  # noqa: E402
from dav2_core.effects.parallax import parallax_frames  # noqa: E402
from dav2_core.normalize import normalize_depth  # noqa: E402
from dav2_core.plots import plot_depth_analysis  # noqa: E402

OUT_DIR = ROOT / "web" / "docs" / "images"
WIDTH = 360  # each panel; two panels side by side stay under 60 KB as JPEG
MAX_BYTES = 60_000


def load_disparity(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The motorcycle pair's left photo [H,W,3] float32 0..1 and its disparity [H,W] float32, +inf inpainted."""
    folder = shared / "depth_gt" / "middlebury_motorcycle"
    photo = np.asarray(Image.open(folder / "motorcycle_left.png").convert("RGB"), dtype=np.float32) / 255.0
    disparity = np.load(folder / "motorcycle_disp.npz")["arr_0"].astype(np.float32)
    invalid = ~np.isfinite(disparity)
    filled = cv2.inpaint(
        np.where(invalid, 0, disparity).astype(np.float32), invalid.astype(np.uint8), 5, cv2.INPAINT_NS
    )
    return photo, filled


def load_scene(shared: Path) -> tuple[torch.Tensor, DepthMap, DepthMap]:
    """(photo IMAGE [1,H,W,3] 0..1, relative DepthMap = disparity, metric DepthMap in metres), inf filled."""
    photo, filled = load_disparity(shared)
    metres = 994.978 * 193.001 / (filled + 31.086) / 1000.0  # shared/README.md: depth_mm from disparity
    image = torch.from_numpy(photo)[None]
    return image, DepthMap(torch.from_numpy(filled)[None]), DepthMap(torch.from_numpy(metres)[None], kind="metric")


def panel(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    """An IMAGE [H,W,3] 0..1 (or uint8 array) scaled to :data:`WIDTH` wide, uint8."""
    arr = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else rgb
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    height = round(arr.shape[0] * WIDTH / arr.shape[1])
    return cv2.resize(arr, (WIDTH, height), interpolation=cv2.INTER_AREA)


def save(name: str, *panels: np.ndarray) -> Path:
    """Panels side by side (same height) as ``OUT_DIR/name`` JPEG, quality lowered until under 60 KB."""
    height = min(p.shape[0] for p in panels)
    strip = np.concatenate([p[:height] for p in panels], axis=1)
    path = OUT_DIR / name
    for quality in (82, 75, 68, 60, 50):
        Image.fromarray(strip).save(path, format="JPEG", quality=quality, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            return path
    raise SystemExit(f"{path} stays over {MAX_BYTES} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args(argv)
    if not (args.shared / "depth_gt" / "middlebury_motorcycle").is_dir():
        raise SystemExit(f"no depth_gt/middlebury_motorcycle under {args.shared}: pass --shared DIR")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    image, relative, metric = load_scene(args.shared)
    grey = normalize_depth(relative, "min_max")[0, :, :, None].expand(-1, -1, 3)
    lo, hi = colorize_range(relative, "min_max")
    coloured = colorize_in_range(relative, lo, hi, "Spectral_r")[0]
    mlo, mhi = colorize_range(metric, "min_max")
    metric_coloured = colorize_in_range(metric, mlo, mhi, "turbo")[0]
    written = [
        save("estimate_depth.jpg", panel(image[0]), panel(grey)),
        save("colorize_depth.jpg", panel(grey), panel(coloured)),
        save("calibrate_depth.jpg", panel(grey), panel(metric_coloured)),
        save("depth_stats.jpg", panel(plot_depth_analysis(metric.values[0], "m", "motorcycle", size=(720, 540)))),
    ]
    blurred, coc = lens_blur(image, relative, focus_point=(0.5, 0.55), max_blur_radius=10.0, focus_range=0.08)
    written.append(save("depth_bokeh.jpg", panel(blurred[0]), panel(coc[0, :, :, None].expand(-1, -1, 3))))
    frames = parallax_frames(image, relative, frames=8, motion="circle", strength=0.03)
    written.append(save("depth_parallax.jpg", panel(frames[0]), panel(frames[4])))
    normals = depth_to_normals(metric, fov_deg=60.0)
    written.append(save("depth_to_normals.jpg", panel(image[0]), panel(normals[0])))
    for path in written:
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
