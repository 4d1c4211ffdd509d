"""Depth → surface normals and coloured point clouds.

Camera and back-projection are :mod:`dav2_core.geometry`'s: the depth's own intrinsics (core DA3/MoGe
geometry) where it has them, else a centred pinhole with focal length ``f = (W/2) / tan(fov/2)`` px.
Metric maps give z-depth in metres. Relative maps (affine inverse depth, no absolute scale) are turned into
a pseudo z-depth with a 10:1 far/near ratio, ``Z = 1 / (0.1 + 0.9·n)`` with ``n`` the min-max normalised
map, so shapes are plausible but not to scale. Outputs use the OpenGL / Blender convention: x right, y up,
z toward the viewer (normal maps encode ``(n + 1) / 2``, a wall facing the camera is (0.5, 0.5, 1)).
Normal maps are built in chunks of depth maps (:mod:`dav2_core.chunks`), so memory is bounded by one chunk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..depth import DepthMap
from ..geometry import backproject, camera_intrinsics, camera_z, check_fov
from ..io import atomic_path
from ..chunks import Execution, allocate_output, run_chunked
from ..preprocess import check_image_batch
from ._common import check_depth, image_chunk, pair_batches

#: Peak working memory per depth pixel of a normal map in a chunk (~96 measured on a CPU at 1024², + margin).
BYTES_PER_NORMAL_PIXEL = 128


def _normals(depth: DepthMap, fov: float) -> torch.Tensor:
    """Normal-map IMAGE [b,H,W,3] of a (chunk of a) DepthMap, on its device."""
    z, valid = camera_z(depth)
    p = backproject(z, camera_intrinsics(depth, fov))
    dv, du = torch.gradient(p, dim=(1, 2))
    n = torch.cross(dv, du, dim=-1)  # points toward the camera (negative z in camera axes)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gl = torch.stack([n[..., 0], -n[..., 1], -n[..., 2]], dim=-1)
    facing = torch.tensor([0.0, 0.0, 1.0], device=gl.device)
    gl = torch.where(valid[..., None] & torch.isfinite(gl).all(-1, keepdim=True), gl, facing)
    return ((gl + 1.0) / 2.0).clamp(0.0, 1.0)


def depth_to_normals(depth: DepthMap, fov_deg: float = 60.0, run: Execution | None = None) -> torch.Tensor:
    """Surface normals of a DEPTH as a normal-map IMAGE [B,H,W,3] float 0..1 ((n + 1) / 2, OpenGL axes).

    Normals come from central differences of the back-projected points; pixels without valid depth get
    the camera-facing normal (0.5, 0.5, 1). fov_deg: horizontal field of view in degrees (0..180), used
    when the depth has no camera of its own (core geometry intrinsics).
    run: devices, chunking, progress (per map) and cancel; default: everything on the depth's device.
    """
    check_depth(depth)
    fov = check_fov(fov_deg)
    b, h, w = depth.values.shape
    if min(h, w) < 2:
        raise ValueError(f"depth must be at least 2x2 pixels for normals, got {(h, w)}")
    run = run or Execution()
    device, out_device = run.devices(depth.values)
    out = allocate_output(
        (b, h, w, 3), out_device, f"{b} normal maps of {w}x{h}", "convert fewer or smaller depth maps at a time"
    )

    def work(start: int, stop: int) -> None:
        chunk = depth[start:stop]  # keeps each map's own camera
        out[start:stop].copy_(_normals(chunk.with_values(chunk.values.to(device)), fov))

    run_chunked(b, work, BYTES_PER_NORMAL_PIXEL * h * w, h * w, device, run, "depth map")
    return out


def depth_to_pointcloud(
    depth: DepthMap,
    image: torch.Tensor,
    fov_deg: float = 60.0,
    stride: int = 1,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coloured point cloud of ONE image → (xyz [N,3] float32, rgb [N,3] float 0..1), on ``device``.

    depth: DepthMap with batch 1; image: IMAGE [1,H,W,C] (a depth of another size is resized to it with a
    warning). xyz in OpenGL axes (x right, y up, z toward the viewer; the camera at the origin looking
    down −z), metres for metric maps. stride: keep every stride-th pixel in x and y (≥ 1). Pixels without
    valid depth are left out. device: where it is computed (default: the depth's device).
    """
    check_depth(depth)
    img = check_image_batch(image)
    fov = check_fov(fov_deg)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a whole number ≥ 1, got {stride}")
    if img.shape[0] != 1 or depth.batch != 1:
        raise ValueError(
            f"a point cloud is made from one image; got {img.shape[0]} image(s) and {depth.batch} depth map(s):"
            " pick one (e.g. batch index) first"
        )
    device = torch.device(device) if device is not None else depth.values.device
    z, valid = camera_z(depth.with_values(depth.values.to(device)))
    img, zv = pair_batches(image_chunk(img, 0, 1, device), torch.cat([z, valid.float()]))
    z, valid = zv[:1], zv[1:] > 0.5
    p = backproject(z, camera_intrinsics(depth, fov))
    s = int(stride)
    p, rgb, keep = p[0, ::s, ::s], img[0, ::s, ::s], valid[0, ::s, ::s]
    xyz = p[keep] * torch.tensor([1.0, -1.0, -1.0], device=p.device)
    return xyz.float(), rgb[keep].float()


def ply_bytes(xyz: torch.Tensor | np.ndarray, rgb: torch.Tensor | np.ndarray) -> bytes:
    """A binary little-endian PLY (float x, y, z; uchar red, green, blue) of a point cloud, in memory.

    xyz: [N,3]; rgb: [N,3] float 0..1 (or uint8). Readers: Blender, MeshLab, CloudCompare, Open3D, ComfyUI's
    3D viewer.
    """
    xyz_np = xyz.detach().cpu().numpy() if isinstance(xyz, torch.Tensor) else np.asarray(xyz)
    rgb_np = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if xyz_np.ndim != 2 or xyz_np.shape[1] != 3:
        raise ValueError(f"xyz must be [N,3], got shape {xyz_np.shape}")
    if rgb_np.shape != xyz_np.shape:
        raise ValueError(f"rgb must be [N,3] like xyz {xyz_np.shape}, got shape {rgb_np.shape}")
    if not np.isfinite(xyz_np).all():
        raise ValueError("xyz has NaN/inf coordinates; drop those points first")
    if rgb_np.dtype != np.uint8:
        rgb_np = np.rint(np.clip(rgb_np.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    rows = np.empty(
        len(xyz_np), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    for i, name in enumerate(("x", "y", "z")):
        rows[name] = xyz_np[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        rows[name] = rgb_np[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by dav2_core\n"
        f"element vertex {len(rows)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    return header.encode("ascii") + rows.tobytes()


def write_ply(path: str | os.PathLike[str], xyz: torch.Tensor | np.ndarray, rgb: torch.Tensor | np.ndarray) -> Path:
    """Write :func:`ply_bytes` of a point cloud atomically -> its path."""
    data = ply_bytes(xyz, rgb)
    target = Path(path)
    with atomic_path(target, suffix=".ply") as temp:
        temp.write_bytes(data)
    return target
