"""Depth to Mesh: DEPTH (or core DA3/MoGe geometry) + IMAGE -> core MESH for Save 3D Model / Preview 3D.

Offered where the running ComfyUI has the MESH type (nodes/api.py: HAS_MESH); textured where its MESH holds
UVs and a texture (ComfyUI 0.33+), vertices and faces only on older ones (0.3.75).
"""

from __future__ import annotations

import torch

from dav2_core.geometry import DEFAULT_DISCONTINUITY, depth_to_mesh

from .api import MESH_HAS_TEXTURE, io
from .types import (
    SEARCH_ALIASES,
    batch_index_input,
    check_batch_index,
    depth_input,
    fov_input,
    pixel_stride_input,
    require_depth,
    schema,
)


class DepthToMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        texture_note = (
            "textured with the image"
            if MESH_HAS_TEXTURE
            else "untextured: this ComfyUI's MESH holds no texture (ComfyUI 0.33+ does)"
        )
        return schema(
            node_id="DAV2DepthToMesh",
            display_name="Depth to Mesh",
            description=(
                "Turns one depth map into a triangle mesh for core's Save 3D Model (GLB) and Preview 3D: one "
                f"vertex per pixel, {texture_note}, cut at depth discontinuities so foreground edges do not "
                "stretch onto the background. Camera: the one that came with core DA3/MoGe geometry, else a "
                "pinhole with the given field of view (wire Camera from Photo EXIF into fov_degrees for a "
                "photo's own lens). Metric depth gives metres; relative depth a plausible, unscaled shape (the "
                "nearest point 1 unit and the farthest 10 units from the camera). glTF axes: y up, the camera "
                "at the origin looking down -z."
            ),
            search_aliases=SEARCH_ALIASES + ["mesh", "3d", "glb", "gltf", "triangulate", "depth to 3d", "relief"],
            inputs=[
                depth_input(
                    "depth",
                    tooltip="DEPTH to mesh (metric gives metres; relative a shape with a 10:1 far/near ratio)",
                ),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="Texture: the image the depth came from (any size; one image, or the batch the "
                    "depth came from)",
                ),
                batch_index_input(
                    "batch_index", tooltip="Which depth map (and image) of a batch to mesh; a MESH holds one"
                ),
                fov_input(
                    "fov_degrees",
                    tooltip="Horizontal field of view of the camera in degrees, used when the depth has no "
                    "camera of its own (a phone's main camera is about 65-75; 60 if unknown)",
                ),
                io.Boolean.Input(
                    "use_depth_camera",
                    default=True,
                    tooltip="Use the camera that came with core DA3/MoGe geometry when there is one; off: "
                    "always fov_degrees",
                ),
                pixel_stride_input(
                    "decimation",
                    tooltip="Keep every n-th pixel in x and y as a vertex (1 = full resolution, 2 = a quarter "
                    "of the vertices)",
                ),
                io.Float.Input(
                    "discontinuity_threshold",
                    default=DEFAULT_DISCONTINUITY,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Cut the mesh where depth jumps by more than this fraction within 3x3 pixels "
                    "(core's rule and default); 0 = off",
                ),
            ],
            outputs=[io.Mesh.Output(display_name="mesh", tooltip="Triangle mesh of one depth map (MESH)")],
        )

    @classmethod
    def execute(
        cls,
        depth: object,
        batch_index: int,
        fov_degrees: float,
        use_depth_camera: bool,
        decimation: int,
        discontinuity_threshold: float,
        image: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        depth_map = require_depth(depth)
        check_batch_index("batch_index", batch_index, depth_map.batch, "depth map(s)")
        texture = None
        if image is not None:
            n = int(image.shape[0]) if isinstance(image, torch.Tensor) and image.ndim == 4 else 0
            if n not in (1, depth_map.batch):
                raise ValueError(
                    f"image batch has {n} images but depth batch has {depth_map.batch} maps; give the images "
                    "the depth came from (IMAGE [B,H,W,C]), or a single image"
                )
            if MESH_HAS_TEXTURE:  # older MESH types hold no texture: the image is then not used
                texture = image[min(batch_index, n - 1)][None]
        mesh = depth_to_mesh(
            depth_map[batch_index],
            texture,
            fov_deg=fov_degrees,
            decimation=decimation,
            discontinuity=discontinuity_threshold,
            use_depth_camera=use_depth_camera,
        )
        fields = {"vertices": mesh.vertices[None], "faces": mesh.faces[None]}
        if MESH_HAS_TEXTURE:
            fields |= {"uvs": mesh.uvs[None], "texture": None if mesh.texture is None else mesh.texture[None]}
        return io.NodeOutput(io.Mesh.Type(**fields))
