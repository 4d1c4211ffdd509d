"""Depth to Normals: DEPTH + field of view -> normal-map IMAGE; optionally a coloured PLY point cloud per image,
whose path (``ply_file``) core's Preview 3D node shows in the browser's 3D viewer. Where the running ComfyUI
has core's point-cloud type (0.33+), the first image's point cloud is also a ``point_cloud`` output for
Preview / Save Point Cloud (the saved file with save_ply, else made in memory)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import torch

from dav2_core.effects import depth_to_normals, depth_to_pointcloud, ply_bytes, write_ply

from .api import HAS_POINT_CLOUD, advanced, image_output, io
from .effect_io import execution, file_entries, output_target, path_problem
from .types import SEARCH_ALIASES, depth_input, fov_input, pixel_stride_input, require_depth, schema

#: core's point-cloud output where the running ComfyUI has the type (nodes/api.py), else none.
POINT_CLOUD_OUTPUT = (
    [
        io.File3DPLY.Output(
            display_name="point_cloud",
            tooltip="The first image's coloured point cloud (PLY) for core's Preview Point Cloud / Save Point "
            "Cloud: the saved file with save_ply, else made in memory (ply_stride applies)",
        )
    ]
    if HAS_POINT_CLOUD
    else []
)


class DepthToNormals(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2DepthToNormals",
            display_name="Depth to Normals",
            description=(
                "Surface normals from depth through a pinhole camera with the given horizontal field of view, as a "
                "normal-map image (OpenGL/Blender convention: x right, y up, z toward the viewer; a wall facing "
                "the camera is (0.5, 0.5, 1) light blue). Optionally saves a coloured PLY point cloud per image "
                "into the output folder (metres for metric depth; relative depth gets a plausible, unscaled shape)."
            ),
            search_aliases=SEARCH_ALIASES + ["normals", "normal map", "point cloud", "ply", "3d", "surface normals"],
            is_output_node=True,
            inputs=[
                depth_input(
                    "depth",
                    tooltip="DEPTH (metric gives true shapes; relative a pseudo-depth with a 10:1 far/near ratio)",
                ),
                fov_input(
                    "fov_degrees",
                    tooltip="Horizontal field of view of the camera in degrees, used when the depth has no "
                    "camera of its own (core DA3/MoGe geometry brings one); a phone's main camera is about 65-75, "
                    "60 if unknown, or wire Camera from Photo EXIF here",
                ),
                io.Boolean.Input(
                    "save_ply",
                    default=False,
                    tooltip="Also write a binary PLY point cloud per image (x, y, z + colour) into the "
                    "output folder; opens in Blender, MeshLab, CloudCompare",
                ),
                io.String.Input(
                    "filename_prefix",
                    default="pointcloud/dav2_points",
                    tooltip="save_ply only: file name start inside the output folder (subfolders "
                    "allowed); a counter is appended",
                ),
                advanced(
                    pixel_stride_input(
                        "ply_stride",
                        tooltip="save_ply only: keep every n-th pixel in x and y (2 = a quarter of the points)",
                    )
                ),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="save_ply only: colours for the points, the images the depth came from (one "
                    "per depth, or one for all); without it the points take the normal-map colours",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="normals",
                    tooltip="Normal map [B,H,W,3] in 0..1, (n + 1) / 2 per axis, same size as the depth",
                ),
                io.String.Output(
                    display_name="ply_file",
                    tooltip="save_ply only: the (first) PLY file's path inside the output folder "
                    "('' without save_ply). Connect it to core 'Preview 3D & Animation' "
                    "(model_file) to turn the point cloud around in the browser; that needs "
                    "a frontend with the 3D viewer's PLY loader (tested: 1.58.1; the 1.32 "
                    "bundled with ComfyUI 0.3.75 has none).",
                ),
                *POINT_CLOUD_OUTPUT,
            ],
        )

    @classmethod
    def validate_inputs(cls, save_ply: bool | None = None, filename_prefix: str | None = None) -> bool | str:
        """Refuse a PLY prefix that would write outside the output folder when the graph is queued."""
        return (path_problem(filename_prefix, output_prefix=True) if save_ply else None) or True

    @classmethod
    def execute(
        cls,
        depth: object,
        fov_degrees: float,
        save_ply: bool,
        filename_prefix: str,
        ply_stride: int,
        image: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        depth_map = require_depth(depth)
        run = execution()
        normals = depth_to_normals(depth_map, fov_degrees, run=run)
        colours = normals if image is None else image
        n_depth, n_colour = depth_map.batch, int(colours.shape[0]) if colours.ndim == 4 else 1
        if n_depth != n_colour and 1 not in (n_depth, n_colour):
            raise ValueError(
                f"image batch has {n_colour} images but depth batch has {n_depth} maps; give one "
                "image per depth (or a single image / single depth to reuse for all)"
            )
        if not save_ply:
            cloud = ()
            if HAS_POINT_CLOUD:  # the first image's cloud, in memory
                xyz, rgb = depth_to_pointcloud(depth_map[0], colours[0][None], fov_degrees, ply_stride, run.device)
                cloud = (io.File3DPLY.Type(BytesIO(ply_bytes(xyz, rgb)), "ply"),)
            return io.NodeOutput(image_output(normals), "", *cloud)
        folder, name, counter, subfolder = output_target(filename_prefix, depth_map.width, depth_map.height)
        written = []
        for i in range(max(n_depth, n_colour)):
            xyz, rgb = depth_to_pointcloud(
                depth_map[min(i, n_depth - 1)],
                colours[min(i, n_colour - 1)][None],
                fov_degrees,
                ply_stride,
                device=run.device,
            )
            written.append(write_ply(folder / f"{name}_{counter + i:05}_.ply", xyz, rgb))
            run.progress(i + 1, max(n_depth, n_colour))  # progress bar and Cancel per point cloud
        first = (Path(subfolder) / written[0].name).as_posix()  # "sub/name.ply", as Preview 3D names files
        cloud = (io.File3DPLY.Type(str(written[0]), "ply"),) if HAS_POINT_CLOUD else ()
        return io.NodeOutput(image_output(normals), first, *cloud, ui={"ply_files": file_entries(written, subfolder)})
