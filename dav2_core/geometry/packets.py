"""Core's DA3_GEOMETRY / MOGE_GEOMETRY packets -> :class:`DepthMap` (:func:`depth_from_geometry`).

The packets (dicts of tensors made by ComfyUI's ``comfy_extras/nodes_depth_anything_3.py`` and
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
  [B,3,3] normalised as in :mod:`.camera` (perspective only), ``normal`` [B,H,W,3] (MoGe-2 normal checkpoints).
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

from collections.abc import Mapping
from typing import Any, Literal

import torch

from ..depth import DepthMap

GeometryKind = Literal["auto", "metric", "relative"]
GEOMETRY_KINDS: tuple[str, ...] = ("auto", "metric", "relative")
#: DA3 sky probability from which a pixel is sky (core's DA3 mesh node drops those pixels).
SKY_THRESHOLD = 0.5
#: ``DepthMap.model`` of a MoGe panorama: equirectangular radial distance, which no pinhole camera projects.
PANORAMA_MODEL = "MoGe (panorama)"


def _valid_intrinsics(k: torch.Tensor) -> bool:
    """A usable pinhole: finite, positive focal lengths."""
    return bool(torch.isfinite(k).all()) and float(k[0, 0]) > 0.0 and float(k[1, 1]) > 0.0


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
