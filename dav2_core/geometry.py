"""Depth + camera -> 3-D points and meshes; core's DA3_GEOMETRY / MOGE_GEOMETRY packets -> :class:`DepthMap`.

Camera. A pinhole with square pixels, kept as a [3,3] matrix in normalised image coordinates (MoGe's
convention, the one of ``DepthMap.intrinsics``): x, y run 0..1 from the top-left image corner, the centre of
pixel column ``i`` is at ``(i + 0.5) / W``, ``fx = f_px / W``, ``fy = f_px / H``. It comes from, in this
order: the depth's own intrinsics (core geometry), else a horizontal field of view (a node input, or a
photo's EXIF focal length: :func:`exif_fov`). ``fov`` -> ``f_px = (W / 2) / tan(fov / 2)``, centred.

Points. Camera space in OpenCV axes (x right, y down, z forward); outputs (meshes, point clouds) are turned
into glTF / OpenGL axes (x right, y up, z toward the viewer; the camera at the origin looking down -z).
Metric maps give z-depth in metres. Relative maps (affine inverse depth: no absolute scale or shift) get a
pseudo z-depth with a 10:1 far/near ratio: ``Z = 1 / (0.1 + 0.9 n)``, ``n`` the min-max normalised map,
so the nearest point is 1 unit and the farthest 10 units from the camera (plausible shapes, not to scale).

Meshes. One vertex per valid pixel of the (decimated) grid, two triangles per quad whose four corners
are valid, UVs at the pixel centres (glTF: (0, 0) = top-left of the texture). Depth discontinuities are
cut as core's mesh nodes cut them (``comfy.ldm.moge.geometry.triangulate_grid_mesh``): a pixel is dropped
where its 3x3 neighbourhood spans more than ``discontinuity`` x its depth, so no skin is stretched between
a foreground edge and the background.

Core geometry packets (dicts of tensors made by ComfyUI's ``comfy_extras/nodes_depth_anything_3.py`` and
``nodes_moge.py``; read there, ComfyUI 0.33):

* DA3_GEOMETRY (``DA3Inference``): ``depth`` [B,H,W] raw model depth (larger = farther; DA3-Metric-Large:
  metres, every other variant: relative depth, up to scale), ``image`` [B,H,W,3] 0..1, ``mode`` "mono" |
  "multiview" (always present); optional ``sky`` [B,H,W] probability (Mono/Metric), ``confidence``
  [B,H,W] (Small/Base); multiview: ``intrinsics`` [1,S,3,3] in pixels (pixel centres at integer
  coordinates; identity when the model has no camera head) and ``extrinsics`` [1,S,3,4] world-to-camera.
  The packet does not say which variant made it, so ``kind="auto"`` reads DA3 as relative depth (true for
  every variant); say ``kind="metric"`` for DA3-Metric-Large.
* MOGE_GEOMETRY (``MoGeInference`` / ``MoGePanoramaInference``): ``image`` [B,H,W,3] (always), ``depth``
  [B,H,W] z-depth (panorama: radial distance), ``points`` [B,H,W,3], ``mask`` [B,H,W] bool, ``intrinsics``
  [B,3,3] normalised as above (perspective only), ``normal`` [B,H,W,3] (MoGe-2 normal checkpoints).
  Masked pixels are +inf when the node's ``apply_mask`` is on. MoGe-2 depth is metric (its scale head);
  MoGe-1 and panoramas are relative (panoramas convert for colour, stats and files, but are refused where a
  pinhole camera is needed: meshes, normals, point clouds). ``kind="auto"`` reads metres only where that is
  certain (``normal`` present = MoGe-2), else relative depth; say ``kind="metric"`` for MoGe-2 checkpoints
  without normals.

Conversion (:func:`depth_from_geometry`): metric depth is kept in metres; relative depth becomes our
relative kind (inverse depth, larger = nearer) as ``1 / depth``; +inf depth (MoGe's masked sky) and DA3 sky
(``sky`` >= 0.5, the pixels core's DA3 mesh node drops) are "infinitely far" (+inf metres, or 0 inverse
depth); NaN, -inf and depth <= 0 are "no depth" (NaN)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .depth import DepthMap

GeometryKind = Literal["auto", "metric", "relative"]
GEOMETRY_KINDS: tuple[str, ...] = ("auto", "metric", "relative")
#: Core's default relative depth span that cuts a mesh (``discontinuity_threshold`` of its mesh nodes).
DEFAULT_DISCONTINUITY = 0.04
DEFAULT_FOV = 60.0
PSEUDO_NEAR_DISPARITY = 0.1  # relative maps: farthest point at Z = 10, nearest at Z = 1
#: Diagonal of a 36x24 mm frame: EXIF's 35 mm-equivalent focal length is scaled by it.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
#: DA3 sky probability from which a pixel is sky (core's DA3 mesh node drops those pixels).
SKY_THRESHOLD = 0.5
#: ``DepthMap.model`` of a MoGe panorama: equirectangular radial distance, which no pinhole camera projects.
PANORAMA_MODEL = "MoGe (panorama)"
#: OpenCV camera axes -> glTF / OpenGL axes (y and z flipped).
_CV_TO_GL = (1.0, -1.0, -1.0)


# --------------------------------------------------------------------------------------------- camera


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


def _valid_intrinsics(k: torch.Tensor) -> bool:
    """A usable pinhole: finite, positive focal lengths."""
    return bool(torch.isfinite(k).all()) and float(k[0, 0]) > 0.0 and float(k[1, 1]) > 0.0


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
    from .effects._common import normalise_per_image  # not at import time: effects imports this module

    v = depth.values.float()
    if depth.is_metric:
        valid = torch.isfinite(v) & (v > 0)
        return torch.where(valid, v, torch.ones_like(v)), valid
    valid = torch.isfinite(v)
    lowest = torch.where(valid, v, torch.inf).flatten(1).amin(1)  # each map's own finite minimum
    fill = torch.where(torch.isfinite(lowest), lowest, torch.zeros_like(lowest))[:, None, None]
    n, _ = normalise_per_image(torch.where(valid, v, fill))  # invalid pixels do not stretch the range
    return 1.0 / (PSEUDO_NEAR_DISPARITY + (1.0 - PSEUDO_NEAR_DISPARITY) * n), valid


# ----------------------------------------------------------------------------------------------- EXIF

_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_X_RES = 0xA20E
_FOCAL_PLANE_UNIT = 0xA210
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF FocalPlaneResolutionUnit: inch, cm, mm, µm


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def exif_fov(source: str | os.PathLike[str] | Any) -> tuple[float | None, str]:
    """(horizontal field of view in degrees of the image as displayed, how it was found) from a photo's EXIF,
    or (None, why not) when it has no usable focal length.

    source: a file path or an open PIL image. Uses ``FocalLengthIn35mmFilm`` (scaled by the frame diagonal),
    else ``FocalLength`` with ``FocalPlaneXResolution``/``Unit`` (the sensor's pixel pitch). EXIF rotations
    of 90 degrees (orientations 5-8) swap the axes. Never raises for a missing or broken EXIF block.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(source, (str, os.PathLike)):
            with Image.open(source) as image:
                width, height, exif = *image.size, image.getexif()
        else:
            width, height, exif = *source.size, source.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        return None, f"could not read the photo's EXIF ({err})"
    rotated = exif.get(_ORIENTATION) in (5, 6, 7, 8)
    sensor_w = _positive(sub.get(_PIXEL_X)) or width
    sensor_h = _positive(sub.get(_PIXEL_Y)) or height
    across = sensor_h if rotated else sensor_w  # the displayed image's width, in sensor pixels
    f35 = _positive(sub.get(_FOCAL_35MM))
    if f35 is not None:
        f_px = f35 / FULL_FRAME_DIAGONAL_MM * math.hypot(sensor_w, sensor_h)
        fov = math.degrees(2.0 * math.atan(across / 2.0 / f_px))
        return fov, f"EXIF 35 mm-equivalent focal length {f35:g} mm: horizontal field of view {fov:.1f} degrees"
    f_mm = _positive(sub.get(_FOCAL_LENGTH))
    res = _positive(sub.get(_FOCAL_PLANE_X_RES))
    unit = _UNIT_MM.get(sub.get(_FOCAL_PLANE_UNIT, 2))
    if f_mm is not None and res is not None and unit is not None:
        f_px = f_mm * res / unit
        fov = math.degrees(2.0 * math.atan(across / 2.0 / f_px))
        return (
            fov,
            f"EXIF focal length {f_mm:g} mm on the sensor's pixel pitch: horizontal field of view {fov:.1f} degrees",
        )
    if f_mm is not None:
        return (
            None,
            f"EXIF has a focal length ({f_mm:g} mm) but no 35 mm equivalent or sensor size to turn it into a "
            "field of view",
        )
    return None, "no focal length in the photo's EXIF"


# --------------------------------------------------------------------------------------- core packets


def geometry_source(packet: Any) -> str:
    """'DA3' or 'MoGe' for a core geometry packet (DA3 packets always carry ``mode``), or a ValueError."""
    if not isinstance(packet, Mapping):
        raise ValueError(f"a core geometry packet is a dict of tensors, got {type(packet).__name__}")
    return "DA3" if "mode" in packet else "MoGe"


def _depth_tensor(packet: Mapping, name: str) -> torch.Tensor:
    depth = packet.get("depth")
    if depth is None:
        raise ValueError(
            f"the {name} geometry has no 'depth' (it holds {', '.join(map(str, packet)) or 'nothing'}); connect the "
            f"output of core's {'Run Depth Anything 3' if name == 'DA3' else 'Run MoGe Inference'} node"
        )
    if not isinstance(depth, torch.Tensor) or depth.ndim != 3 or depth.numel() == 0 or depth.is_complex():
        raise ValueError(
            f"the {name} geometry's 'depth' must be a non-empty [B,H,W] float tensor, got "
            f"{tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__}"
        )
    return depth.detach().float().cpu()


def _geometry_intrinsics(packet: Mapping, source: str, b: int, h: int, w: int) -> torch.Tensor | None:
    """[B,3,3] normalised intrinsics from the packet, or None (absent, unusable, or panorama)."""
    k = packet.get("intrinsics")
    if not isinstance(k, torch.Tensor):
        return None
    k = k.detach().float().cpu()
    if source == "DA3":  # [1,S,3,3] in pixels, pixel centres at integer coordinates
        if k.ndim != 4 or k.shape[1] != b or k.shape[2:] != (3, 3):
            return None
        k = k[0].clone()
        if bool((k == torch.eye(3)).all()):  # the placeholder of a model without a camera head
            return None
        k[:, 0, :] /= w
        k[:, 1, :] /= h
        k[:, 0, 2] += 0.5 / w
        k[:, 1, 2] += 0.5 / h
        k[:, 2] = torch.tensor([0.0, 0.0, 1.0])
    elif k.ndim != 3 or k.shape[0] != b or k.shape[1:] != (3, 3):
        return None
    return k if all(_valid_intrinsics(k[i]) for i in range(b)) else None


def auto_kind(packet: Mapping) -> str:
    """The depth kind ``kind="auto"`` reads from a packet (see the module docstring): 'metric' only for a
    MoGe-2 perspective packet (normals and intrinsics present), else 'relative'."""
    if geometry_source(packet) == "MoGe" and "normal" in packet and "intrinsics" in packet:
        return "metric"
    return "relative"


def depth_from_geometry(packet: Any, kind: GeometryKind = "auto") -> DepthMap:
    """Core DA3_GEOMETRY / MOGE_GEOMETRY packet -> DepthMap with its kind, units and camera (module docstring).

    kind: "auto" (from the packet), "metric" (its depth is metres) or "relative" (depth up to scale).
    ValueError for a packet without usable depth, or a map without one valid pixel.
    """
    source = geometry_source(packet)
    if kind not in GEOMETRY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(GEOMETRY_KINDS)}, got {kind!r}")
    depth = _depth_tensor(packet, source)
    b, h, w = depth.shape
    far = depth == torch.inf
    good = torch.isfinite(depth) & (depth > 0)
    sky = packet.get("sky")
    if source == "DA3" and isinstance(sky, torch.Tensor) and tuple(sky.shape) == (b, h, w):
        is_sky = sky.detach().float().cpu() >= SKY_THRESHOLD  # core's mesh rule; like MoGe's masked sky
        far, good = far | is_sky, good & ~is_sky
    empty = [i for i in range(b) if not bool(good[i].any())]
    if empty:
        raise ValueError(
            f"the {source} geometry's depth map {empty[0]} has no valid pixel (all NaN, inf, <= 0 or sky); "
            "nothing to work with - check the model and its input image"
        )
    resolved = auto_kind(packet) if kind == "auto" else kind
    if resolved == "metric":
        values = torch.where(good, depth, torch.where(far, torch.inf, torch.nan))
    else:
        values = torch.where(good, 1.0 / torch.where(good, depth, torch.ones_like(depth)), torch.nan)
        values = torch.where(far, torch.zeros_like(values), values)
    label = source if source == "MoGe" else f"DA3 ({packet.get('mode', 'mono')})"
    if source == "MoGe" and "intrinsics" not in packet:
        label = PANORAMA_MODEL
    return DepthMap(
        values.contiguous(), kind=resolved, model=label, intrinsics=_geometry_intrinsics(packet, source, b, h, w)
    )


def is_geometry_packet(value: Any) -> bool:
    """True for what a DA3_GEOMETRY / MOGE_GEOMETRY link carries (a dict with ``depth`` or ``image``)."""
    return isinstance(value, Mapping) and ("depth" in value or "image" in value or "points" in value)


# ------------------------------------------------------------------------------------------------ mesh


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
        from .effects._common import image_chunk
        from .preprocess import check_image_batch

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

    from .io import atomic_path

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
