"""Save Depth: DEPTH -> 16-bit PNG, float EXR or .npy in ComfyUI's output folder, with units in metadata; atomic."""

from __future__ import annotations

from dav2_core.effects import FORMATS, export, save_depth

from .api import io
from .effect_io import file_entries, output_target, path_problem
from .types import SEARCH_ALIASES, choice_input, depth_input, require_depth, schema

FORMAT_HELP: dict[str, str] = {
    "png16": "16-bit greyscale PNG per image, scaled to its min..max (both stored in the PNG's 'dav2_depth' text "
    "with kind and units); precision range/65535",
    "exr": "32-bit float EXR per image, exact values (metres for metric models); metadata in a .json sidecar. "
    "Needs the OpenEXR package or an OpenCV build with EXR",
    "npy": "one float32 NumPy array [B,H,W] for the whole batch, exact; metadata in a .json sidecar",
}


class SaveDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2SaveDepth",
            display_name="Save Depth",
            description=(
                "Saves the float depth itself (not a picture of it) into ComfyUI's output folder as 16-bit PNG, "
                "32-bit float EXR or .npy, with kind (relative/metric), units and model in the metadata. Files are "
                "written to temporary names and renamed only when the whole batch succeeded: a failure leaves no "
                "partial file."
            ),
            search_aliases=SEARCH_ALIASES + ["save depth", "export depth", "exr", "16-bit png", "npy", "depth file"],
            is_output_node=True,
            inputs=[
                depth_input("depth", tooltip="DEPTH to save (from Estimate Depth or Calibrate Depth to Metric)"),
                io.String.Input(
                    "filename_prefix",
                    default="depth/dav2_depth",
                    tooltip="File name start inside the output folder; may contain subfolders and "
                    "Save Image's %date%-style variables. A counter is appended.",
                ),
                choice_input("format", FORMAT_HELP, default="png16"),
            ],
            outputs=[],
        )

    @classmethod
    def validate_inputs(cls, format: str | None = None, filename_prefix: str | None = None) -> bool | str:
        """Refuse EXR when the graph is queued if this Python cannot write it, with how to enable it, and a
        prefix that would write outside the output folder."""
        problem = path_problem(filename_prefix, output_prefix=True)
        if problem:
            return problem
        if format is not None and format not in FORMATS:
            return f"unknown format {format!r}; choose one of {', '.join(FORMATS)}"
        if format == "exr" and export.exr_backend() is None:
            return export.EXR_HELP
        return True

    @classmethod
    def execute(cls, depth: object, filename_prefix: str, format: str) -> io.NodeOutput:
        depth_map = require_depth(depth)
        message = cls.validate_inputs(format)
        if message is not True:  # direct calls skip ComfyUI's validation
            raise ValueError(message)
        folder, name, counter, subfolder = output_target(filename_prefix, depth_map.width, depth_map.height)
        one_file = format == "npy" or depth_map.batch == 1  # a batch of PNG/EXR gets _00000, _00001, ... appended
        stem = folder / (f"{name}_{counter:05}_" if one_file else f"{name}_{counter:05}")
        written = save_depth(depth_map, stem, format)
        files = file_entries(written, subfolder)
        ui = {"depth_files": files}  # every file written, sidecars included
        if format == "png16":  # the frontend shows these on the node like Save Image's
            ui["images"] = [f for f in files if f["filename"].endswith(".png")]
        return io.NodeOutput(ui=ui)
