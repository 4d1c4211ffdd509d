"""Core geometry and cameras: Core Geometry to Depth (DA3/MoGe packet -> DEPTH with chosen units, its image and
field of view) and Camera from Photo EXIF (a photo in the input folder -> horizontal field of view). The maths
is dav2_core.geometry's; these adapters only read inputs and files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths

from dav2_core.geometry import (
    DEFAULT_FOV,
    GEOMETRY_KINDS,
    depth_from_geometry,
    exif_fov,
    fov_from_intrinsics,
    is_geometry_packet,
)

from .api import image_output, io
from .preview import report_ui
from .types import GEOMETRY_IO, SEARCH_ALIASES, DepthIO, fov_input, help_text, schema

KIND_HELP = {
    "auto": "from the packet: MoGe-2 (with normals) in metres, everything else relative depth",
    "metric": "the packet's depth is metres (DA3-Metric-Large, MoGe-2 without normals)",
    "relative": "depth up to scale (DA3 Mono/Small/Base, MoGe-1, panoramas)",
}
log = logging.getLogger(__name__)


class GeometryToDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2GeometryToDepth",
            display_name="Core Geometry to Depth",
            description=(
                "Reads core's Depth Anything 3 / MoGe geometry as the pack's DEPTH, saying what its numbers are: "
                "the packet does not record which model made it, so DA3-Metric-Large (metres) needs units = "
                "metric here (every depth input of the pack also takes the geometry directly, as 'auto'). Also "
                "hands on the geometry's image and the horizontal field of view of its camera."
            ),
            search_aliases=SEARCH_ALIASES + ["da3", "depth anything 3", "moge", "geometry", "metric depth"],
            inputs=[
                io.MultiType.Input("geometry", types=GEOMETRY_IO, tooltip="DA3_GEOMETRY or MOGE_GEOMETRY"),
                io.Combo.Input("units", options=list(GEOMETRY_KINDS), default="auto", tooltip=help_text(KIND_HELP)),
            ],
            outputs=[
                DepthIO.Output(display_name="depth", tooltip="DEPTH [B,H,W] with the model's camera"),
                io.Image.Output(display_name="image", tooltip="The images the geometry was made from"),
                io.Float.Output(
                    display_name="fov_degrees",
                    tooltip=f"Horizontal field of view of the geometry's (first) camera; {DEFAULT_FOV:g} when it "
                    "has none (DA3 mono, MoGe panorama)",
                ),
            ],
        )

    @classmethod
    def execute(cls, geometry: object, units: str) -> io.NodeOutput:
        if not is_geometry_packet(geometry):
            raise ValueError(
                f"'geometry' must be core's DA3_GEOMETRY or MOGE_GEOMETRY, got {type(geometry).__name__}; connect "
                "Run Depth Anything 3 or Run MoGe Inference"
            )
        depth = depth_from_geometry(geometry, units)
        fov = fov_from_intrinsics(depth.intrinsics[0]) if depth.intrinsics is not None else DEFAULT_FOV
        image = geometry.get("image")
        if image is None:
            raise ValueError("the geometry has no 'image'; connect the output of core's inference node")
        return io.NodeOutput(depth, image_output(image[..., :3]), fov)


def _input_images() -> list[str]:
    folder = folder_paths.get_input_directory()
    try:
        files = [f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))]
    except OSError:
        return []
    return sorted(folder_paths.filter_files_content_types(files, ["image"]))


def _photo_path(name: str) -> Path:
    """The photo's path inside ComfyUI's input (or an annotated) folder, or a ValueError; nothing outside."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"photo {name!r} is not a file name of the input folder; pick one from the list")
    try:
        path = Path(folder_paths.get_annotated_filepath(name)).resolve()
    except ValueError:  # newer ComfyUI refuses traversal itself
        raise ValueError(f"photo {name!r} is outside ComfyUI's input folder; pick one from the list") from None
    roots = [Path(folder_paths.get_directory_by_type(t) or "").resolve() for t in ("input", "output", "temp")]
    if not any(path.is_relative_to(root) for root in roots if str(root)):
        raise ValueError(f"photo {name!r} is outside ComfyUI's input folder; pick one from the list")
    if not path.is_file():
        raise ValueError(f"photo {name!r} is not in the input folder (upload it, or pick one from the list)")
    return path


class CameraFromExif(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2CameraFromExif",
            display_name="Camera from Photo EXIF",
            description=(
                "The horizontal field of view of the camera that took a photo, from its EXIF focal length (35 mm "
                "equivalent, or focal length and sensor pixel pitch). Wire it into fov_degrees of Depth to Mesh "
                "or Depth to Normals for true proportions. Pick the same file as in Load Image (IMAGE tensors "
                "carry no EXIF). Without a focal length in the EXIF it gives fallback_fov and says so."
            ),
            search_aliases=SEARCH_ALIASES + ["exif", "focal length", "field of view", "fov", "camera"],
            inputs=[
                io.Combo.Input(
                    "photo", options=_input_images(), upload=io.UploadType.image, tooltip="A photo of the input folder"
                ),
                fov_input(
                    "fallback_fov",
                    tooltip="Horizontal field of view in degrees when the EXIF has no usable focal length",
                ),
            ],
            outputs=[
                io.Float.Output(display_name="fov_degrees", tooltip="Horizontal field of view in degrees"),
                io.String.Output(display_name="info", tooltip="Where the value came from"),
            ],
        )

    @classmethod
    def validate_inputs(cls, photo: str, fallback_fov: float | None = None) -> bool | str:
        try:
            _photo_path(photo)
        except ValueError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, photo: str, fallback_fov: float) -> io.NodeOutput:
        fov, how = exif_fov(_photo_path(photo))
        if fov is None:
            how = f"{how}: using fallback_fov {fallback_fov:g} degrees"
            log.info("Camera from Photo EXIF: %s: %s", photo, how)
            fov = float(fallback_fov)
        return io.NodeOutput(fov, how, ui=report_ui(how))

    @classmethod
    def fingerprint_inputs(cls, photo: str, fallback_fov: float) -> str:
        """Re-run when the file changes (as Load Image does)."""
        try:
            stat = _photo_path(photo).stat()
        except (ValueError, OSError):
            return ""
        return f"{stat.st_mtime_ns}:{stat.st_size}"
