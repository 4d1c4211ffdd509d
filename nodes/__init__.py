"""ComfyUI adapters (V3 ``io.ComfyNode``) over dav2_core; imported by the pack's root ``__init__``."""

from __future__ import annotations

from .api import CORE_GEOMETRY_TYPES, HAS_MESH, ComfyExtension, io
from .bokeh import DepthBokeh
from .calibrate import CalibrateDepthToMetric
from .colorize import ColorizeDepth
from .estimate import EstimateDepth
from .evaluate import EvaluateDepth
from .geometry import CameraFromExif, GeometryToDepth
from .loader import LoadDepthAnythingV2
from .mesh import DepthToMesh
from .normals import DepthToNormals
from .parallax import DepthParallax
from .routes import register_routes
from .save_depth import SaveDepth
from .stats import DepthStats
from .video_depth import VideoDepth

register_routes()  # GET /dav2/colormaps for the web extension; a no-op outside a running server


def available_nodes(
    has_mesh: bool = HAS_MESH, has_geometry: bool = bool(CORE_GEOMETRY_TYPES)
) -> list[type[io.ComfyNode]]:
    """Every node of the pack the running ComfyUI can offer, in menu order (Depth to Mesh needs core's MESH,
    Core Geometry to Depth core's DA3/MoGe geometry types)."""
    return [
        LoadDepthAnythingV2,
        EstimateDepth,
        ColorizeDepth,
        DepthStats,
        DepthBokeh,
        DepthParallax,
        CalibrateDepthToMetric,
        SaveDepth,
        DepthToNormals,
        *([DepthToMesh] if has_mesh else []),
        CameraFromExif,
        *([GeometryToDepth] if has_geometry else []),
        VideoDepth,
        EvaluateDepth,
    ]


#: Every node of the pack on this ComfyUI, in menu order.
NODES: list[type[io.ComfyNode]] = available_nodes()


class DepthAnythingV2Extension(ComfyExtension):
    """The pack as a V3 extension (for ComfyUI versions that load ``comfy_entrypoint``)."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


def node_mappings() -> tuple[dict[str, type[io.ComfyNode]], dict[str, str]]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) built from the V3 schemas."""
    classes, names = {}, {}
    for node in NODES:
        schema = node.GET_SCHEMA()
        classes[schema.node_id] = node
        names[schema.node_id] = schema.display_name
    return classes, names
