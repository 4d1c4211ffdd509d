"""Load Depth Anything V2: a known variant (downloaded on first use) or any file in models/depthanything."""
from __future__ import annotations

import os

import folder_paths
import torch
from .api import io

from dav2_core.checkpoints import META_KIND, read_metadata
from dav2_core.hub import local_filenames
from dav2_core.loading import load_model
from dav2_core.variants import DOWNLOADABLE, METRIC_MAX_DEPTH, VARIANTS, Variant

from . import model_patcher
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
}
_CHECKPOINT_TYPE_HELP = (
    "What the checkpoint predicts. Relative and metric files have identical tensors, so this cannot be "
    "read from the weights. auto: the file's metadata, else the official file name, else relative. "
    f"relative: inverse depth without units. metric-indoor: metres up to {METRIC_MAX_DEPTH['hypersim']:g} "
    f"(Hypersim models). metric-outdoor: metres up to {METRIC_MAX_DEPTH['vkitti']:g} (VKITTI models)."
)


def _known_file_variants() -> dict[str, Variant]:
    """Every file name a published variant is known under (official .pth, kijai's safetensors)."""
    return {name: v for v in VARIANTS.values() for name in local_filenames(v)}


def model_options() -> list[str]:
    """Combo entries: the official file of each downloadable variant, then every other file found."""
    official = [VARIANTS[name].filename for name in DOWNLOADABLE]
    found = folder_paths.get_filename_list(MODEL_FOLDER)
    return official + sorted(f for f in found if f not in official)


def _model_tooltip() -> str:
    lines = ["Checkpoint to load. Official files are downloaded to models/depthanything on first use:"]
    lines += [f"- {VARIANTS[n].filename}: {VARIANTS[n].label}" for n in DOWNLOADABLE]
    lines.append("Any other file in a depthanything model folder (extra_model_paths.yaml included) is listed too.")
    return "\n".join(lines)


class LoadDepthAnythingV2(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2ModelLoader",
            display_name="Load Depth Anything V2",
            description=(
                "Loads a Depth Anything V2 model (relative or metric; Small/Base/Large) for Estimate Depth. "
                "Missing official checkpoints are downloaded from Hugging Face; the model is managed by "
                "ComfyUI's memory system (moved to the GPU when used, offloaded when idle)."
            ),
            search_aliases=SEARCH_ALIASES + ["depth model", "load depth"],
            inputs=[
                io.Combo.Input("model", options=model_options(), default=VARIANTS["vits"].filename,
                               tooltip=_model_tooltip()),
                io.Combo.Input("precision", options=list(model_patcher.PRECISIONS), default="auto",
                               tooltip="Compute precision. " + "; ".join(f"{k}: {v}" for k, v in model_patcher.PRECISIONS.items())),
                io.Combo.Input("checkpoint_type", options=list(CHECKPOINT_TYPES), default="auto",
                               tooltip=_CHECKPOINT_TYPE_HELP),
                io.Combo.Input("device", options=list(model_patcher.DEVICES), default="auto",
                               tooltip="Where the model runs. " + "; ".join(f"{k}: {v}" for k, v in model_patcher.DEVICES.items())),
            ],
            outputs=[
                DepthModelIO.Output(display_name="model",
                                    tooltip="The loaded depth model (connect to Estimate Depth)"),
            ],
        )

    @classmethod
    def execute(cls, model: str, precision: str, checkpoint_type: str, device: str) -> io.NodeOutput:
        if checkpoint_type not in CHECKPOINT_TYPES:
            raise ValueError(f"unknown checkpoint type {checkpoint_type!r}; choose one of {', '.join(CHECKPOINT_TYPES)}")
        kind, max_depth = CHECKPOINT_TYPES[checkpoint_type]
        known = _known_file_variants().get(os.path.basename(model))
        path = folder_paths.get_full_path(MODEL_FOLDER, model)
        if kind is None and known is not None and path is not None and META_KIND not in read_metadata(path):
            kind, max_depth = known.kind, known.max_depth  # a known file name decides only when metadata is silent
        folders = folder_paths.get_folder_paths(MODEL_FOLDER)
        if path is None and (known is None or model != known.filename):
            raise ValueError(
                f"model file {model!r} was not found in the depthanything model folders ({', '.join(folders)}); "
                "put the checkpoint there (or add a folder with extra_model_paths.yaml) and refresh"
            )
        load_device, offload_device = model_patcher.devices(device)
        dtype = model_patcher.compute_dtype(precision, load_device)
        source = path if path is not None else known.name
        # Weights are stored on the offload device; dav2_core refuses fp16 *compute* on the CPU, so an
        # fp16 model for the GPU is read in fp32 there and cast (storage only; it runs on load_device).
        storage = torch.float32 if dtype == torch.float16 and offload_device.type == "cpu" else dtype
        net = load_model(source, device=offload_device, dtype=storage, models_dir=folders[0],
                         kind=kind, max_depth=max_depth).to(dtype=dtype)
        info = net.checkpoint_info
        patcher = model_patcher.wrap(net, load_device, offload_device)
        loaded = DepthModel(patcher=patcher, name=model, encoder=info.encoder, kind=info.kind,
                            max_depth=info.max_depth, dtype=model_patcher.dtype_name(dtype))
        return io.NodeOutput(loaded)
