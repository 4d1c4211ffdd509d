"""Load Depth Anything V2: a known variant (downloaded on first use) or any file in models/depthanything."""

from __future__ import annotations

import os

import folder_paths
import torch

from dav2_core.dtypes import dtype_name
from dav2_core.loading import load_model
from dav2_core.paths import relative_parts
from dav2_core.variants import DOWNLOADABLE, METRIC_MAX_DEPTH, VARIANTS

from . import engine_loader, model_patcher
from .api import advanced, io
from .types import MODEL_FOLDER, SEARCH_ALIASES, DepthModel, DepthModelIO, schema

# models/depthanything under ComfyUI's models dir; extra_model_paths.yaml may add more folders.
folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
_extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER][1]
if not _extensions:  # a new folder accepts any file: list checkpoints only (not config.json, notes...)
    _extensions.update(folder_paths.supported_pt_extensions)

#: Checkpoint type choices -> (kind, max_depth) handed to dav2_core; None = read from the file.
CHECKPOINT_TYPES: dict[str, tuple[str | None, float | None]] = {
    "auto": (None, None),
    "relative": ("relative", None),
    "metric-indoor": ("metric", METRIC_MAX_DEPTH["hypersim"]),
    "metric-outdoor": ("metric", METRIC_MAX_DEPTH["vkitti"]),
    "metric-video": ("metric", None),
}
_CHECKPOINT_TYPE_HELP = (
    "What the checkpoint predicts. Relative and metric files have identical tensors, so this cannot be "
    "read from the weights. auto: the file decides: its metadata, else an HF config.json beside it, else "
    "its official file name, else relative. "
    f"relative: inverse depth without units. metric-indoor: metres up to {METRIC_MAX_DEPTH['hypersim']:g} "
    f"(Hypersim models). metric-outdoor: metres up to {METRIC_MAX_DEPTH['vkitti']:g} (VKITTI models). "
    "metric-video: metric Video Depth Anything (metres, no fixed maximum)."
)
#: Official file name -> variant id: such a file missing from the folders is downloaded (load_model).
_OFFICIAL_FILES = {v.filename: v.name for v in VARIANTS.values()}


def model_options() -> list[str]:
    """Combo entries: the official file of each downloadable variant, then every other file found."""
    official = [VARIANTS[name].filename for name in DOWNLOADABLE]
    found = folder_paths.get_filename_list(MODEL_FOLDER)
    return official + sorted(f for f in found if f not in official)


def _model_tooltip() -> str:
    lines = ["Checkpoint to load. Official files are downloaded to models/depthanything on first use:"]
    lines += [f"- {VARIANTS[n].filename}: {VARIANTS[n].label}" for n in DOWNLOADABLE]
    lines.append("Any other file in a depthanything model folder (extra_model_paths.yaml included) is listed too.")
    lines.append(
        "Video Depth Anything files (video_depth_anything_*.pth) make temporally consistent depth of clips: use "
        "them with Video Depth, or Estimate Depth on an IMAGE batch of frames (not single images or tiles)."
    )
    return "\n".join(lines)


class LoadDepthAnythingV2(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2ModelLoader",
            display_name="Load Depth Anything V2",
            description=(
                "Loads a Depth Anything V2 model (relative or metric; Small/Base/Large) for Estimate Depth, or a "
                "Video Depth Anything model for Video Depth and frame batches. "
                "Missing official checkpoints are downloaded from Hugging Face; the model is managed by "
                "ComfyUI's memory system (moved to the GPU when used, offloaded when idle)."
            ),
            search_aliases=SEARCH_ALIASES + ["depth model", "load depth"],
            inputs=[
                io.Combo.Input(
                    "model", options=model_options(), default=VARIANTS["vits"].filename, tooltip=_model_tooltip()
                ),
                io.Combo.Input(
                    "precision",
                    options=list(model_patcher.PRECISIONS),
                    default="auto",
                    tooltip="Compute precision. " + "; ".join(f"{k}: {v}" for k, v in model_patcher.PRECISIONS.items()),
                ),
                advanced(
                    io.Combo.Input(
                        "checkpoint_type", options=list(CHECKPOINT_TYPES), default="auto", tooltip=_CHECKPOINT_TYPE_HELP
                    )
                ),
                advanced(
                    io.Combo.Input(
                        "device",
                        options=list(model_patcher.DEVICES),
                        default="auto",
                        tooltip="Where the model runs. "
                        + "; ".join(f"{k}: {v}" for k, v in model_patcher.DEVICES.items()),
                    )
                ),
                advanced(
                    io.Combo.Input(
                        "backend",
                        options=engine_loader.backend_options(),
                        default="torch",
                        optional=True,
                        tooltip=engine_loader.backend_tooltip(),
                    )
                ),
            ],
            outputs=[
                DepthModelIO.Output(display_name="model", tooltip="The loaded depth model (connect to Estimate Depth)"),
            ],
        )

    @classmethod
    def execute(
        cls, model: str, precision: str, checkpoint_type: str, device: str, backend: str = "torch"
    ) -> io.NodeOutput:
        if checkpoint_type not in CHECKPOINT_TYPES:
            raise ValueError(
                f"unknown checkpoint type {checkpoint_type!r}; choose one of {', '.join(CHECKPOINT_TYPES)}"
            )
        kind, max_depth = CHECKPOINT_TYPES[checkpoint_type]  # None: dav2_core decides from the file
        folders = folder_paths.get_folder_paths(MODEL_FOLDER)
        source = _checkpoint_source(model, folders)
        load_device, offload_device = model_patcher.devices(device)
        backend = engine_loader.resolve(backend, precision, load_device)
        if backend != "torch":
            return io.NodeOutput(
                engine_loader.load_depth_model(
                    source, model, backend, precision, load_device, folders[0], kind, max_depth
                )
            )
        dtype = model_patcher.compute_dtype(precision, load_device)
        # Weights are stored on the offload device; dav2_core refuses fp16 *compute* on the CPU, so an
        # fp16 model for the GPU is read in fp32 there and cast (storage only; it runs on load_device).
        storage = torch.float32 if dtype == torch.float16 and offload_device.type == "cpu" else dtype
        net = load_model(
            source, device=offload_device, dtype=storage, models_dir=folders[0], kind=kind, max_depth=max_depth
        ).to(dtype=dtype)
        info = net.checkpoint_info
        patcher = model_patcher.wrap(net, load_device, offload_device)
        return io.NodeOutput(DepthModel.loaded(patcher, model, info, dtype_name(dtype)))


def _checkpoint_source(model: str, folders: list[str]) -> str:
    """The file's path in a depthanything folder, else the variant id of a missing official file (downloaded).

    Names are relative to those folders (the lexical rule of ``dav2_core.paths``: an absolute name, ``..``,
    ``:`` or a control character is refused like a missing file). Unlike input files, links inside a model
    folder may lead elsewhere, as in core's loaders: admins link model files from other drives, and the
    names come from ComfyUI's listing of those folders.
    """
    inside = relative_parts(model) is not None
    path = folder_paths.get_full_path(MODEL_FOLDER, model) if inside else None
    if path is not None:
        return path
    if inside and model in _OFFICIAL_FILES:
        return _OFFICIAL_FILES[model]
    raise ValueError(
        f"model file {model!r} was not found in the depthanything model folders ({', '.join(folders)}); "
        "model names are relative to those folders: put the checkpoint there (or add a folder with "
        "extra_model_paths.yaml) and refresh"
    )
