"""Triangle meshes of depth maps (:func:`depth_to_mesh`) and their GLB files (:func:`write_glb`).

Meshes. One vertex per valid pixel of the (decimated) grid, two triangles per quad whose four corners
are valid, UVs at the pixel centres (glTF: (0, 0) = top-left of the texture). Depth discontinuities are
cut as core's mesh nodes cut them (``comfy.ldm.moge.geometry.triangulate_grid_mesh``): a pixel is dropped
where its 3x3 neighbourhood spans more than ``discontinuity`` x its depth, so no skin is stretched between
a foreground edge and the background.

Vertices come from :mod:`.camera` (OpenCV axes) and are turned into glTF / OpenGL axes (x right, y up, z
toward the viewer; the camera at the origin looking down -z)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..depth import DepthMap
from .camera import DEFAULT_FOV, backproject, camera_intrinsics, camera_z

#: Core's default relative depth span that cuts a mesh (``discontinuity_threshold`` of its mesh nodes).
DEFAULT_DISCONTINUITY = 0.04
#: OpenCV camera axes -> glTF / OpenGL axes (y and z flipped).
_CV_TO_GL = (1.0, -1.0, -1.0)


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh of one depth map (glTF axes: x right, y up, z toward the viewer; metres for metric).

    vertices [N,3] float32, faces [M,3] int64 (counter-clockwise seen from the camera), uvs [N,2] float32
    (glTF: (0, 0) = top-left of the texture), texture [H,W,3] float32 0..1 or None.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor
    texture: torch.Tensor | None = None


def discontinuity_edges(z: torch.Tensor, threshold: float) -> torch.Tensor:
    """[H,W] bool: pixels whose 3x3 neighbourhood of z-depth [H,W] spans more than ``threshold`` x their depth
    (core's ``depth_map_edge`` with ``rtol``; invalid pixels must be given as 0)."""
    d = z[None, None]
    span = F.max_pool2d(d, 3, stride=1, padding=1) + F.max_pool2d(-d, 3, stride=1, padding=1)
    return ((span / d.clamp_min(1e-6)).nan_to_num_() > threshold)[0, 0]


def grid_mesh(
    points: torch.Tensor, valid: torch.Tensor, z: torch.Tensor, decimation: int = 1, discontinuity: float = 0.04
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vertices [N,3], faces [M,3] int64, uvs [N,2]) of a camera-space point grid [H,W,3], OpenCV axes.

    valid [H,W] bool: pixels with a point; z [H,W]: the depth the discontinuity test reads. Vertices keep the
    input axes; faces are wound for them (core's order: a-b-c, a-c-d per quad). uvs: pixel centres in 0..1.
    """
    h, w = valid.shape
    keep = valid.clone()
    if discontinuity > 0:
        keep &= ~discontinuity_edges(torch.where(valid, z, torch.zeros_like(z)), discontinuity)
    s = decimation
    keep = keep[::s, ::s]
    pts = points[::s, ::s]
    gh, gw = keep.shape
    flat = keep.reshape(-1)
    index = torch.full((gh * gw,), -1, dtype=torch.long)
    index[flat] = torch.arange(int(flat.sum()), dtype=torch.long)
    index = index.reshape(gh, gw)
    vertices = pts.reshape(-1, 3)[flat]
    rows = (torch.arange(gh, dtype=torch.float32) * s + 0.5) / h
    cols = (torch.arange(gw, dtype=torch.float32) * s + 0.5) / w
    uvs = torch.stack(torch.broadcast_tensors(cols[None, :], rows[:, None]), dim=-1).reshape(-1, 2)[flat]
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]
    ok = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    a, b, c, d = a[ok], b[ok], c[ok], d[ok]
    faces = torch.cat([torch.stack([a, b, c], dim=-1), torch.stack([a, c, d], dim=-1)], dim=0)
    return vertices.contiguous(), faces.contiguous(), uvs.contiguous()


def check_decimation(decimation: Any, height: int, width: int) -> int:
    """``decimation`` as an int, or a ValueError unless it is a whole number >= 1 leaving a grid of >= 2x2."""
    if (
        isinstance(decimation, bool)
        or not isinstance(decimation, (int, float))
        or not math.isfinite(decimation)
        or int(decimation) != decimation
    ):
        raise ValueError(f"decimation must be a whole number >= 1 (1 = every pixel), got {decimation!r}")
    s = int(decimation)
    if s < 1:
        raise ValueError(f"decimation must be >= 1 (1 = every pixel, 2 = every other pixel), got {s}")
    gh, gw = -(-height // s), -(-width // s)
    if min(gh, gw) < 2:
        largest = max(1, (min(height, width) - 1))
        raise ValueError(
            f"decimation {s} leaves a {gw}x{gh} vertex grid of the {width}x{height} depth, too small for one "
            f"triangle; use at most {largest}"
        )
    return s


def depth_to_mesh(
    depth: DepthMap,
    image: torch.Tensor | None = None,
    fov_deg: float = DEFAULT_FOV,
    decimation: int = 1,
    discontinuity: float = DEFAULT_DISCONTINUITY,
    use_depth_camera: bool = True,
) -> Mesh:
    """Textured triangle mesh of ONE depth map (batch 1), on the CPU.

    image: IMAGE [1,H,W,C] (any size: UVs are resolution-free) as the texture, or None. fov_deg: horizontal
    field of view when the depth has no camera of its own (or ``use_depth_camera`` is False). decimation:
    keep every n-th pixel in x and y. discontinuity: relative depth span that cuts the mesh (0 = off).
    ValueError with what to change for: a batch, a map under 2x2, a decimation leaving no triangle, no valid
    depth, or an empty mesh after cutting.
    """
    if not isinstance(depth, DepthMap):
        raise ValueError(f"depth must be a DepthMap, got {type(depth).__name__}")
    if depth.batch != 1:
        raise ValueError(f"a mesh is made from one depth map, got {depth.batch}: pick one (batch_index) first")
    h, w = depth.height, depth.width
    if min(h, w) < 2:
        raise ValueError(f"a mesh needs a depth map of at least 2x2 pixels, got {w}x{h}")
    if not (isinstance(discontinuity, (int, float)) and math.isfinite(discontinuity) and discontinuity >= 0):
        raise ValueError(f"discontinuity must be >= 0 (a relative depth span; 0 = off), got {discontinuity!r}")
    s = check_decimation(decimation, h, w)
    texture = None
    if image is not None:
        from ..effects._common import image_chunk
        from ..preprocess import check_image_batch

        img = check_image_batch(image)
        if img.shape[0] != 1:
            raise ValueError(f"a mesh takes one texture image, got {img.shape[0]}: pick one (batch_index) first")
        texture = image_chunk(img, 0, 1, torch.device("cpu"))[0]  # [H,W,3] float32 0..1, values checked
    k = camera_intrinsics(depth, fov_deg, use_depth_camera)
    cpu = depth.with_values(depth.values.detach().float().cpu())
    z, valid = camera_z(cpu)
    if not bool(valid.any()):
        raise ValueError("the depth map has no valid pixel (all NaN, inf or <= 0); a mesh needs depth")
    points = backproject(z, k)[0]
    vertices, faces, uvs = grid_mesh(points, valid[0], z[0], s, float(discontinuity))
    if vertices.shape[0] == 0 or faces.shape[0] == 0:
        raise ValueError(
            "the mesh is empty: no 2x2 block of neighbouring pixels has valid depth after the discontinuity cut; "
            "raise discontinuity (0 = off) or lower decimation"
        )
    vertices = vertices * torch.tensor(_CV_TO_GL)
    faces = faces[:, [0, 2, 1]].contiguous()  # the y/z flip mirrors the winding; keep it counter-clockwise
    return Mesh(vertices.float().contiguous(), faces, uvs.float(), texture)


def write_glb(path: str | os.PathLike[str], mesh: Mesh) -> Path:
    """Write ``mesh`` as a binary glTF (.glb, texture embedded as PNG) atomically -> its path. Needs trimesh
    (the ``mesh`` extra: ``pip install trimesh``)."""
    try:
        import trimesh
    except ImportError as err:
        raise RuntimeError(
            "writing GLB meshes needs the trimesh package: pip install trimesh (or the pack's [mesh] extra)"
        ) from err
    from PIL import Image

    from ..io import atomic_path

    tm = trimesh.Trimesh(vertices=mesh.vertices.numpy(), faces=mesh.faces.numpy(), process=False)
    if mesh.texture is not None:
        pixels = (mesh.texture.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
        uv = mesh.uvs.numpy().copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # trimesh keeps OpenGL's bottom-left UV origin and flips it for glTF
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(np.ascontiguousarray(pixels)), metallicFactor=0.0, roughnessFactor=1.0
        )
        tm.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    data = tm.export(file_type="glb")
    target = Path(path)
    with atomic_path(target, suffix=".glb") as temp:
        temp.write_bytes(data)
    return target
