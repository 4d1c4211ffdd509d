"""The pack's ComfyUI io types (DAV2_MODEL, DEPTH) and shared constants (category, model folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .api import CORE_GEOMETRY_TYPES, HAS_INTERMEDIATE_OUTPUT, SCHEMA_FIELDS, io

from dav2_core.checkpoints import CheckpointInfo
from dav2_core.depth import DepthMap
from dav2_core.geometry import DEFAULT_FOV, depth_from_geometry, is_geometry_packet
from dav2_core.ranges import RangeName, help_of
from dav2_core.variants import PATCH_SIZE, units_for

#: The one "Add Node" menu category of the pack.
CATEGORY = "depth/Depth Anything V2"
#: ComfyUI model folder name (``models/depthanything``, also the key in ``extra_model_paths.yaml``).
MODEL_FOLDER = "depthanything"
#: Largest native-mode network side the nodes offer (the patch limit still scales an image down to fit).
MAX_SIDE_LIMIT = 8190 // PATCH_SIZE * PATCH_SIZE
#: Words the node search matches besides the display names (used where the Schema supports aliases).
SEARCH_ALIASES = ["depth", "depth anything", "depth map", "midas", "zoe", "controlnet depth", "dav2"]
#: Largest batch index the nodes that pick one item of a batch offer (Depth Stats' plot, Depth to Mesh).
MAX_BATCH_INDEX = 4095
#: Largest pixel stride (keep every n-th pixel in x and y) of the point cloud and mesh outputs.
MAX_PIXEL_STRIDE = 64


@dataclass(frozen=True)
class DepthModel:
    """What flows through a DAV2_MODEL link: ComfyUI's patcher around the network plus what it is.

    ``patcher`` is a ``comfy.model_patcher.ModelPatcher``; its ``.model`` is the
    ``dav2_core.DepthAnythingV2`` network (weights on the offload device until ``load_models_gpu``).
    For other backends it is a ``nodes.engine_patcher.EnginePatcher`` whose ``.model`` is the engine.
    """

    patcher: Any
    name: str  # variant id or checkpoint file name, recorded in every DepthMap it produces
    encoder: str  # "vits" | "vitb" | "vitl" | "vitg"
    kind: str  # "relative" | "metric"
    max_depth: float | None  # metres, metric models only
    dtype: str  # compute precision actually used: "fp32" | "fp16" | "bf16" | "int8" (onnxruntime)
    backend: str = "torch"  # "torch" | "onnxruntime" | "openvino" | "tensorrt" (then ``patcher.model`` is the engine)

    @property
    def units(self) -> str:
        return units_for(self.kind)

    @classmethod
    def loaded(cls, patcher: Any, name: str, info: CheckpointInfo, dtype: str, backend: str = "torch") -> DepthModel:
        """The DepthModel of a loaded network or engine: what its checkpoint says it is (``checkpoint_info``)."""
        return cls(
            patcher=patcher,
            name=name,
            encoder=info.encoder,
            kind=info.kind,
            max_depth=info.max_depth,
            dtype=dtype,
            backend=backend,
        )


@io.comfytype(io_type="DAV2_MODEL")
class DepthModelIO(io.ComfyTypeIO):
    """A loaded Depth Anything V2 model (:class:`DepthModel`)."""

    Type = DepthModel


@io.comfytype(io_type="DEPTH")
class DepthIO(io.ComfyTypeIO):
    """Float depth of a batch with its meaning (:class:`dav2_core.depth.DepthMap`: [B,H,W], kind, units)."""

    Type = DepthMap


def schema(**fields: Any) -> io.Schema:
    """``io.Schema`` with the pack's category, passing ``search_aliases`` and ``has_intermediate_output`` only
    where the running ComfyUI knows them (see nodes/api.py)."""
    fields.setdefault("category", CATEGORY)
    aliases = fields.pop("search_aliases", None)
    if aliases and "search_aliases" in SCHEMA_FIELDS:
        fields["search_aliases"] = aliases
    intermediate = fields.pop("has_intermediate_output", False)
    if intermediate and HAS_INTERMEDIATE_OUTPUT:
        fields["has_intermediate_output"] = True
    return io.Schema(**fields)


#: Core's geometry packet types as io types (empty on a ComfyUI without core's DA3/MoGe nodes).
GEOMETRY_IO = [io.Custom(name) for name in CORE_GEOMETRY_TYPES]
GEOMETRY_NOTE = (
    "; or core's Depth Anything 3 / MoGe geometry (read as the pack's DEPTH: metres for MoGe-2, relative depth "
    "otherwise, with the model's camera)"
    if GEOMETRY_IO
    else ""
)


def depth_input(name: str = "depth", tooltip: str = "", image: bool = False, **options: Any) -> io.Input:
    """The one declaration of a depth input: DEPTH (plus a grey depth IMAGE where ``image``), and core's
    DA3_GEOMETRY / MOGE_GEOMETRY where the running ComfyUI has them (nodes/api.py). Read the value with
    :func:`require_depth`, which converts geometry packets (dav2_core.geometry)."""
    extra = ([io.Image] if image else []) + GEOMETRY_IO
    tooltip = tooltip + GEOMETRY_NOTE
    if not extra:
        return DepthIO.Input(name, tooltip=tooltip, **options)
    return io.MultiType.Input(name, types=[DepthIO, *extra], tooltip=tooltip, **options)


def image_and_depth_inputs(image_tooltip: str) -> list[io.Input]:
    """An image effect's first two inputs: the IMAGE batch and the DEPTH of the same images."""
    return [
        io.Image.Input("image", tooltip=image_tooltip),
        depth_input(
            "depth",
            tooltip="DEPTH of the same images (one per image, or one for all). A depth of "
            "another size is resized to the image with a warning.",
        ),
    ]


def fov_input(name: str, tooltip: str) -> io.Input:
    """The one declaration of a horizontal field of view input: degrees, 1..179, default DEFAULT_FOV (60)."""
    return io.Float.Input(name, default=DEFAULT_FOV, min=1.0, max=179.0, step=0.5, tooltip=tooltip)


def depth_value_input(name: str, default: float, tooltip: str) -> io.Input:
    """A value in a depth map's own units (metres for metric models, the raw value for relative ones): any
    float, step 0.01."""
    return io.Float.Input(name, default=default, min=-1e9, max=1e9, step=0.01, tooltip=tooltip)


def batch_index_input(name: str, tooltip: str) -> io.Input:
    """Which item of a batch a node uses: 0 (the first) .. MAX_BATCH_INDEX; check it with
    :func:`check_batch_index`."""
    return io.Int.Input(name, default=0, min=0, max=MAX_BATCH_INDEX, tooltip=tooltip)


def check_batch_index(name: str, index: int, batch: int, items: str) -> None:
    """ValueError unless ``index`` (the input ``name``) picks one of ``batch`` ``items`` (e.g. "image(s)")."""
    if not 0 <= index < batch:
        raise ValueError(f"{name} {index} is outside the batch of {batch} {items}; use 0..{batch - 1}")


def pixel_stride_input(name: str, tooltip: str) -> io.Input:
    """A "keep every n-th pixel in x and y" input: 1 (every pixel) .. MAX_PIXEL_STRIDE."""
    return io.Int.Input(name, default=1, min=1, max=MAX_PIXEL_STRIDE, tooltip=tooltip)


def require_depth(value: Any, input_name: str = "depth") -> DepthMap:
    """The DepthMap on a depth input (a DEPTH, or core DA3/MoGe geometry converted by
    ``dav2_core.geometry.depth_from_geometry``), or a ValueError saying what was wired instead and what to do."""
    if isinstance(value, DepthMap):
        return value
    if is_geometry_packet(value):
        try:
            return depth_from_geometry(value)
        except ValueError as err:
            raise ValueError(f"'{input_name}': {err}") from None
    what = type(value).__name__
    shape = getattr(value, "shape", None)
    if shape is not None:
        what += f" of shape {tuple(shape)}"
    raise ValueError(
        f"'{input_name}' must be a DEPTH (the DEPTH output of Estimate Depth), got {what}; "
        "connect Estimate Depth's DEPTH output here"
    )


def help_text(options: dict[str, str]) -> str:
    """A tooltip listing choices, one ``name: meaning`` line each."""
    return "\n".join(f"{name}: {text}" for name, text in options.items())


def choice_input(name: str, choices: dict[str, str], default: str, lead: str = "", **flags: Any) -> io.Combo.Input:
    """A combo of ``choices``' names in order whose tooltip lists them, one ``name: meaning`` line each (after the
    line ``lead`` where given); ``flags`` such as ``optional``."""
    tooltip = lead + "\n" + help_text(choices) if lead else help_text(choices)
    return io.Combo.Input(name, options=list(choices), default=default, tooltip=tooltip, **flags)


def range_combo(name: str, names: dict[str, RangeName], lead: str, default: str | None = None) -> io.Combo.Input:
    """A range-mode combo from one of ``dav2_core.ranges``' tables: its names in order (the first is the default
    unless ``default`` says), the tooltip ``lead`` then one ``name: help`` line each."""
    return choice_input(name, help_of(names), default or next(iter(names)), lead)
