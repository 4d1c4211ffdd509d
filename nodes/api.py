"""The ComfyUI API the pack is written against, imported in this one place.

Every node file takes ``io``, ``ui``, ``InputImpl`` and ``ComfyExtension`` from here. They come from the pinned, versioned
``comfy_api.v0_0_2`` (ComfyUI keeps a versioned API stable while ``comfy_api.latest`` moves on), or from
``latest`` on a ComfyUI that does not have that version. What newer ComfyUI versions add is detected here,
once, so the nodes keep the old behaviour on ComfyUI 0.3.75:

* :data:`HAS_INTERMEDIATE_OUTPUT`: ``io.Schema(has_intermediate_output=True)`` makes ComfyUI resend a node's
  UI output (our depth preview) when the node's result comes from its cache.
* :data:`HAS_DYNAMIC_COMBO`: ``io.DynamicCombo`` shows an option's own inputs only while it is selected.
* :data:`HAS_ADVANCED_INPUTS` / :func:`advanced`: an input marked ``advanced`` is folded away by newer frontends
  (ComfyUI 0.3x of 2026 marks its rarely changed inputs so); older ComfyUI shows it as before.
* :func:`intermediate_dtype` / :func:`image_output`: where IMAGE and MASK tensors between nodes live
  (``comfy.model_management.intermediate_device()`` and, where it exists, ``intermediate_dtype()``).
* :data:`CORE_GEOMETRY_TYPES`: core's ``DA3_GEOMETRY`` / ``MOGE_GEOMETRY`` (ComfyUI 0.33+ ships the Depth
  Anything 3 and MoGe nodes that make them); every depth input of the pack also takes them there.
* :data:`HAS_MESH` / :data:`MESH_HAS_TEXTURE`: core's ``MESH`` type (SaveGLB, Preview 3D); on 0.3.75 it
  holds vertices and faces only, on 0.33 also UVs and a texture. Without it Depth to Mesh is not offered.
* :data:`HAS_POINT_CLOUD`: core's point-cloud file type (``FILE_3D_PLY`` holding a ``File3D``) for
  Preview / Save Point Cloud (0.33+); Depth to Normals has a ``point_cloud`` output only there.
"""

from __future__ import annotations

import importlib.util
import inspect

import comfy.model_management as mm
import torch

try:
    from comfy_api.v0_0_2 import ComfyExtension, InputImpl, io, ui

    API_VERSION = "v0_0_2"
except ImportError:  # a ComfyUI without the pinned version: the moving one
    from comfy_api.latest import ComfyExtension, InputImpl, io, ui

    API_VERSION = "latest"

#: Fields ``io.Schema`` accepts on the running ComfyUI.
SCHEMA_FIELDS: frozenset[str] = frozenset(getattr(io.Schema, "__dataclass_fields__", {}))
HAS_INTERMEDIATE_OUTPUT = "has_intermediate_output" in SCHEMA_FIELDS
HAS_DYNAMIC_COMBO = hasattr(io, "DynamicCombo")
HAS_ADVANCED_INPUTS = "advanced" in inspect.signature(io.Input.__init__).parameters


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _accepts(cls: object, *names: str) -> bool:
    try:
        params = inspect.signature(cls).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names)


#: Core's geometry packet types, where the running ComfyUI has the nodes that make them (io type names).
CORE_GEOMETRY_TYPES: tuple[str, ...] = tuple(
    name
    for name, module in (
        ("DA3_GEOMETRY", "comfy_extras.nodes_depth_anything_3"),
        ("MOGE_GEOMETRY", "comfy_extras.nodes_moge"),
    )
    if _has_module(module)
)
HAS_MESH = hasattr(io, "Mesh")
MESH_HAS_TEXTURE = HAS_MESH and _accepts(io.Mesh.Type, "uvs", "texture")
HAS_POINT_CLOUD = hasattr(io, "File3DPLY") and _accepts(getattr(io.File3DPLY, "Type", None), "source", "file_format")

__all__ = [
    "API_VERSION",
    "CORE_GEOMETRY_TYPES",
    "ComfyExtension",
    "HAS_MESH",
    "HAS_POINT_CLOUD",
    "MESH_HAS_TEXTURE",
    "InputImpl",
    "HAS_ADVANCED_INPUTS",
    "HAS_DYNAMIC_COMBO",
    "HAS_INTERMEDIATE_OUTPUT",
    "SCHEMA_FIELDS",
    "advanced",
    "image_output",
    "intermediate_dtype",
    "io",
    "ui",
]


def intermediate_dtype() -> torch.dtype:
    """The dtype ComfyUI keeps IMAGE/MASK tensors in between nodes (float32 where it does not say)."""
    get = getattr(mm, "intermediate_dtype", None)
    return get() if callable(get) else torch.float32


def image_output(x: torch.Tensor) -> torch.Tensor:
    """An IMAGE [B,H,W,C] or MASK [B,H,W] result on ComfyUI's intermediate device and dtype."""
    return x.to(device=mm.intermediate_device(), dtype=intermediate_dtype())


def advanced(spec: io.Input) -> io.Input:
    """``spec`` marked as a rarely changed input (folded under "advanced" by frontends that know the flag);
    unchanged on a ComfyUI without it. Position, name and default stay, so saved workflows load as before."""
    if HAS_ADVANCED_INPUTS:
        spec.advanced = True
    return spec
