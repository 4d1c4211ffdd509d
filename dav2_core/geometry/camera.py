"""The pinhole camera of a depth map: field of view -> normalised intrinsics, back-projection to camera-space
points, and the z-depth a map stands for.

Camera. A pinhole with square pixels, kept as a [3,3] matrix in normalised image coordinates (MoGe's
convention, the one of ``DepthMap.intrinsics``): x, y run 0..1 from the top-left image corner, the centre of
pixel column ``i`` is at ``(i + 0.5) / W``, ``fx = f_px / W``, ``fy = f_px / H``. It comes from, in this
order: the depth's own intrinsics (core geometry), else a horizontal field of view (a node input, or a
photo's EXIF focal length: :func:`.exif.exif_fov`). ``fov`` -> ``f_px = (W / 2) / tan(fov / 2)``, centred.

Points. Camera space in OpenCV axes (x right, y down, z forward); outputs (meshes, point clouds) are turned
into glTF / OpenGL axes (x right, y up, z toward the viewer; the camera at the origin looking down -z).
Metric maps give z-depth in metres. Relative maps (affine inverse depth: no absolute scale or shift) get a
pseudo z-depth with a 10:1 far/near ratio: ``Z = 1 / (0.1 + 0.9 n)``, ``n`` the min-max normalised map,
so the nearest point is 1 unit and the farthest 10 units from the camera (plausible shapes, not to scale)."""

from __future__ import annotations

import math

import torch

from ..depth import DepthMap
from .packets import PANORAMA_MODEL

DEFAULT_FOV = 60.0
PSEUDO_NEAR_DISPARITY = 0.1  # relative maps: farthest point at Z = 10, nearest at Z = 1


def check_fov(fov_deg: float) -> float:
    """``fov_deg`` as a float, or a ValueError unless it is a horizontal field of view in (0, 180) degrees."""
    if not (isinstance(fov_deg, (int, float)) and math.isfinite(fov_deg) and 0.0 < fov_deg < 180.0):
        raise ValueError(f"fov_deg is the horizontal field of view in degrees and must be in (0, 180), got {fov_deg}")
    return float(fov_deg)


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> torch.Tensor:
    """[3,3] float32 normalised intrinsics of a centred pinhole with horizontal field of view ``fov_deg``."""
    fx = 0.5 / math.tan(math.radians(check_fov(fov_deg)) / 2.0)
    return torch.tensor([[fx, 0.0, 0.5], [0.0, fx * width / height, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float32)


def fov_from_intrinsics(intrinsics: torch.Tensor) -> float:
    """Horizontal field of view in degrees of one normalised [3,3] matrix (``2 atan(0.5 / fx)``)."""
    return math.degrees(2.0 * math.atan(0.5 / float(intrinsics[0, 0])))


def camera_intrinsics(depth: DepthMap, fov_deg: float = DEFAULT_FOV, use_depth_camera: bool = True) -> torch.Tensor:
    """[B,3,3] float32 normalised intrinsics for ``depth``: its own (core geometry) when it has them and
    ``use_depth_camera``, else a centred pinhole with horizontal field of view ``fov_deg``."""
    fov = check_fov(fov_deg)
    if depth.model == PANORAMA_MODEL:
        raise ValueError(
            "this depth is a MoGe panorama (equirectangular distance), which a pinhole camera cannot back-project; "
            "use core's Convert MoGe Point Map to Mesh for its 3-D shape"
        )
    if use_depth_camera and depth.intrinsics is not None:
        k = depth.intrinsics.float().cpu()
        return k.expand(depth.batch, 3, 3).clone() if k.shape[0] == 1 else k.clone()
    return intrinsics_from_fov(fov, depth.width, depth.height).expand(depth.batch, 3, 3).clone()


def backproject(z: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """[B,H,W,3] camera-space points (OpenCV axes: x right, y down, z forward) of z-depth [B,H,W] through
    normalised intrinsics [B,3,3] (or [3,3] for all); computed on ``z``'s device."""
    b, h, w = z.shape
    k = intrinsics.to(device=z.device, dtype=torch.float32)
    k = k.expand(b, 3, 3) if k.ndim == 2 else k
    xs = (torch.arange(w, device=z.device, dtype=torch.float32) + 0.5) / w
    ys = (torch.arange(h, device=z.device, dtype=torch.float32) + 0.5) / h
    fx, fy, cx, cy = (k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2])
    us = (xs[None, :] - cx[:, None]) / fx[:, None]  # [B,W]
    vs = (ys[None, :] - cy[:, None]) / fy[:, None]  # [B,H]
    return torch.stack([us[:, None, :] * z, vs[:, :, None] * z, z], dim=-1)


def camera_z(depth: DepthMap) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z [B,H,W] float32 z-depth, valid [B,H,W] bool) on the depth's device: metres for metric maps (valid =
    finite and > 0), the 1..10 pseudo-depth of the module docstring for relative maps (valid = finite)."""
    from ..effects._common import normalise_per_image  # not at import time: effects imports this package

    v = depth.values.float()
    if depth.is_metric:
        valid = torch.isfinite(v) & (v > 0)
        return torch.where(valid, v, torch.ones_like(v)), valid
    valid = torch.isfinite(v)
    lowest = torch.where(valid, v, torch.inf).flatten(1).amin(1)  # each map's own finite minimum
    fill = torch.where(torch.isfinite(lowest), lowest, torch.zeros_like(lowest))[:, None, None]
    n, _ = normalise_per_image(torch.where(valid, v, fill))  # invalid pixels do not stretch the range
    return 1.0 / (PSEUDO_NEAR_DISPARITY + (1.0 - PSEUDO_NEAR_DISPARITY) * n), valid
