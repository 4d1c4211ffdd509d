#!/usr/bin/env python3
"""Render the help-page pictures of the geometry nodes (Depth to Mesh, Core Geometry to Depth, Camera from Photo
EXIF) into ``web/docs/images/`` with the engine the nodes call (dav2_core.geometry).

Same scene and rules as tools/make_doc_images.py (the other nodes' pictures; its scene loading, panels and JPEG
writer are imported from it): the Middlebury 2014 "motorcycle" pair's measured disparity (scikit-image sample data, BSD-3;
``../shared/depth_gt/middlebury_motorcycle``) in metres through its calibration (f = 994.978 px), invalid pixels
inpainted; JPEGs under 60 KB. The mesh is shown by splatting its textured vertices from a turned viewpoint
(a z-buffer in numpy: no 3-D renderer needed). Run: ``.venv/bin/python tools/make_geometry_doc_images.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_core import geometry  # noqa: E402
from dav2_core.colormaps import colorize_in_range, colorize_range  # noqa: E402
from dav2_core.depth import DepthMap  # noqa: E402
from tools.make_doc_images import OUT_DIR, load_disparity, panel, save  # noqa: E402

FOCAL_PX = 994.978  # ../shared/README.md calibration of the motorcycle pair


def load_scene(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """(photo [H,W,3] float 0..1, depth [H,W] metres, invalid pixels inpainted)."""
    photo, filled = load_disparity(shared)
    return photo, FOCAL_PX * 0.193001 / (filled + 31.086)


def splat(mesh: geometry.Mesh, yaw_deg: float, size: tuple[int, int]) -> np.ndarray:
    """[H,W,3] uint8 view of a textured mesh's vertices turned by ``yaw_deg`` about the scene centre."""
    v = mesh.vertices.numpy().astype(np.float64)
    tex = mesh.texture.numpy()
    th, tw = tex.shape[:2]
    uv = mesh.uvs.numpy()
    colours = tex[np.clip((uv[:, 1] * th).astype(int), 0, th - 1), np.clip((uv[:, 0] * tw).astype(int), 0, tw - 1)]
    centre = np.array([0.0, 0.0, np.median(v[:, 2])])
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    p = (v - centre) @ rot.T + centre
    h, w = size
    f = w / 2 / math.tan(math.radians(50) / 2)
    z = -p[:, 2]  # glTF: the camera looks down -z
    x = np.round(w / 2 + f * p[:, 0] / z).astype(int)
    y = np.round(h / 2 - f * p[:, 1] / z).astype(int)
    image = np.full((h, w, 3), 0.12, np.float32)
    depth = np.full((h, w), np.inf)
    order = np.argsort(-z)  # far first, near last: the nearest point wins each pixel
    for dy in (0, 1):
        for dx in (0, 1):
            xs, ys = x[order] + dx, y[order] + dy
            ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h) & (z[order] > 0)
            idx = order[ok]
            closer = z[idx] <= depth[ys[ok], xs[ok]]
            image[ys[ok][closer], xs[ok][closer]] = colours[idx][closer]
            depth[ys[ok][closer], xs[ok][closer]] = z[idx][closer]
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args(argv)
    photo, metres = load_scene(args.shared)
    h, w = metres.shape
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    fov = math.degrees(2 * math.atan(w / 2 / FOCAL_PX))

    # Depth to Mesh: the photo and its mesh (metres, cut at discontinuities) seen from 30 degrees to the side
    k = geometry.intrinsics_from_fov(fov, w, h)[None]
    depth = DepthMap(torch.from_numpy(metres)[None], "metric", intrinsics=k)
    mesh = geometry.depth_to_mesh(depth, torch.from_numpy(photo)[None], decimation=2)
    save("depth_to_mesh.jpg", panel(photo), panel(splat(mesh, -30.0, (h, w))))

    # Core Geometry to Depth: a MoGe-shaped packet (metres, the camera) read as DEPTH and coloured
    packet = {"image": torch.from_numpy(photo)[None], "depth": torch.from_numpy(metres)[None], "intrinsics": k}
    packet["normal"] = torch.zeros(1, h, w, 3)
    converted = geometry.depth_from_geometry(packet)
    lo, hi = colorize_range(converted, "min_max")
    save("geometry_to_depth.jpg", panel(photo), panel(colorize_in_range(converted, lo, hi, "turbo")[0].numpy()))

    # Camera from Photo EXIF: the field of view the node reads, drawn on the photo
    annotated = (np.clip(photo, 0, 1) * 255).astype(np.uint8).copy()
    f35 = FOCAL_PX / math.hypot(w, h) * geometry.FULL_FRAME_DIAGONAL_MM  # what its EXIF would say
    text = f"EXIF {f35:.0f} mm (35 mm equiv.) -> {fov:.1f} deg"
    cv2.rectangle(annotated, (0, h - 46), (w, h), (0, 0, 0), -1)
    cv2.putText(annotated, text, (12, h - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    save("camera_from_exif.jpg", panel(annotated))
    print(f"wrote {OUT_DIR}/depth_to_mesh.jpg, geometry_to_depth.jpg, camera_from_exif.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
