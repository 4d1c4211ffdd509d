"""Depth + camera -> 3-D points and meshes; core's DA3_GEOMETRY / MOGE_GEOMETRY packets -> :class:`DepthMap`.

One concern per module (each one's docstring holds its conventions):

* :mod:`.camera`: the pinhole camera (field of view <-> normalised intrinsics), back-projection to camera-space
  points (OpenCV axes), the z-depth a metric or relative map stands for.
* :mod:`.exif`: a photo's EXIF focal length -> horizontal field of view.
* :mod:`.packets`: core's DA3 / MoGe geometry packets -> DepthMap with its kind, units and camera.
* :mod:`.mesh`: textured triangle meshes of a depth map (glTF axes) and their GLB files.

The names below are re-exported, so ``from dav2_core.geometry import depth_to_mesh`` and
``geometry.DEFAULT_FOV`` work as before the split. Patch a name in the module that defines it.
"""

from .camera import (
    DEFAULT_FOV,
    PSEUDO_NEAR_DISPARITY,
    backproject,
    camera_intrinsics,
    camera_z,
    check_fov,
    fov_from_intrinsics,
    intrinsics_from_fov,
)
from .exif import FULL_FRAME_DIAGONAL_MM, exif_fov
from .mesh import (
    DEFAULT_DISCONTINUITY,
    Mesh,
    check_decimation,
    depth_to_mesh,
    discontinuity_edges,
    grid_mesh,
    write_glb,
)
from .packets import (
    GEOMETRY_KINDS,
    PANORAMA_MODEL,
    SKY_THRESHOLD,
    GeometryKind,
    auto_kind,
    depth_from_geometry,
    geometry_source,
    is_geometry_packet,
)

__all__ = [
    "DEFAULT_DISCONTINUITY",
    "DEFAULT_FOV",
    "FULL_FRAME_DIAGONAL_MM",
    "GEOMETRY_KINDS",
    "PANORAMA_MODEL",
    "PSEUDO_NEAR_DISPARITY",
    "SKY_THRESHOLD",
    "GeometryKind",
    "Mesh",
    "auto_kind",
    "backproject",
    "camera_intrinsics",
    "camera_z",
    "check_decimation",
    "check_fov",
    "depth_from_geometry",
    "depth_to_mesh",
    "discontinuity_edges",
    "exif_fov",
    "fov_from_intrinsics",
    "geometry_source",
    "grid_mesh",
    "intrinsics_from_fov",
    "is_geometry_packet",
    "write_glb",
]
