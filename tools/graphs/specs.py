"""What a node type looks like to a graph: its inputs (sockets and widgets, in order, with defaults) and outputs.

The pack's nodes are read from their own V3 schemas (``define_schema()`` of the classes in ``nodes/``, through the
pack's node list), imported with the ComfyUI checkout in ``COMFYUI_DIR`` (default ``.comfyui/ComfyUI``, installed by
``make comfyui-setup``). Core nodes cannot be imported without starting ComfyUI's node registry, so the few the
tests and example workflows use are declared in :data:`CORE_NODES`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: Module name the pack's ``nodes/`` package is imported under (never ``nodes``: ComfyUI owns that name).
PACK_MODULE = "dav2_graph_specs_nodes"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


@dataclass(frozen=True)
class InputSpec:
    """One input: a socket, or a widget with its default (``None``: no default). ``ui_extra`` are the values the
    frontend saves after this widget's own (an upload button's, a seed's control_after_generate mode)."""

    name: str
    type: str
    widget: bool = False
    default: Any = None
    optional: bool = False
    ui_extra: tuple[Any, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """A node type's inputs in schema order and its outputs as (name, type)."""

    inputs: tuple[InputSpec, ...]
    outputs: tuple[tuple[str, str], ...] = ()

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"no input {name!r}")

    def output_slot(self, name: str) -> int:
        return [n for n, _ in self.outputs].index(name)


def _socket(name: str, type_: str, optional: bool = False) -> InputSpec:
    return InputSpec(name, type_, optional=optional)


def _widget(name: str, type_: str, default: Any = None, ui_extra: tuple[Any, ...] = ()) -> InputSpec:
    return InputSpec(name, type_, widget=True, default=default, ui_extra=ui_extra)


#: Core ComfyUI nodes the graphs use, as ComfyUI 0.3.75 defines them (only the inputs that are used are declared).
CORE_NODES: dict[str, NodeSpec] = {
    "LoadImage": NodeSpec((_widget("image", "COMBO", ui_extra=("image",)),), (("IMAGE", "IMAGE"), ("MASK", "MASK"))),
    "SaveImage": NodeSpec((_socket("images", "IMAGE"), _widget("filename_prefix", "STRING", "ComfyUI"))),
    "PreviewImage": NodeSpec((_socket("images", "IMAGE"),)),
    "RepeatImageBatch": NodeSpec(
        (_socket("image", "IMAGE"), _widget("amount", "INT", 1)),
        (("IMAGE", "IMAGE"),),
    ),
    "MaskToImage": NodeSpec((_socket("mask", "MASK"),), (("IMAGE", "IMAGE"),)),
    "LoadVideo": NodeSpec((_widget("file", "COMBO", ui_extra=("image",)),), (("VIDEO", "VIDEO"),)),
    "GetVideoComponents": NodeSpec(
        (_socket("video", "VIDEO"),),
        (("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")),
    ),
    "CreateVideo": NodeSpec(
        (_socket("images", "IMAGE"), _socket("audio", "AUDIO", optional=True), _widget("fps", "FLOAT", 30.0)),
        (("VIDEO", "VIDEO"),),
    ),
    "SaveVideo": NodeSpec(
        (
            _socket("video", "VIDEO"),
            _widget("filename_prefix", "STRING", "video/ComfyUI"),
            _widget("format", "COMBO", "auto"),
            _widget("codec", "COMBO", "auto"),
        )
    ),
    "SaveGLB": NodeSpec((_socket("mesh", "MESH"), _widget("filename_prefix", "STRING", "mesh/ComfyUI"))),
    "Preview3D": NodeSpec((_socket("model_file", "STRING"),)),
    "CheckpointLoaderSimple": NodeSpec(
        (_widget("ckpt_name", "COMBO"),), (("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE"))
    ),
    "CLIPTextEncode": NodeSpec(
        (_socket("clip", "CLIP"), _widget("text", "STRING")), (("CONDITIONING", "CONDITIONING"),)
    ),
    "ControlNetLoader": NodeSpec((_widget("control_net_name", "COMBO"),), (("CONTROL_NET", "CONTROL_NET"),)),
    "ControlNetApplyAdvanced": NodeSpec(
        (
            _socket("positive", "CONDITIONING"),
            _socket("negative", "CONDITIONING"),
            _socket("control_net", "CONTROL_NET"),
            _socket("image", "IMAGE"),
            _socket("vae", "VAE", optional=True),
            _widget("strength", "FLOAT", 1.0),
            _widget("start_percent", "FLOAT", 0.0),
            _widget("end_percent", "FLOAT", 1.0),
        ),
        (("positive", "CONDITIONING"), ("negative", "CONDITIONING")),
    ),
    "EmptyLatentImage": NodeSpec(
        (_widget("width", "INT", 512), _widget("height", "INT", 512), _widget("batch_size", "INT", 1)),
        (("LATENT", "LATENT"),),
    ),
    "KSampler": NodeSpec(
        (
            _socket("model", "MODEL"),
            _widget("seed", "INT", 0, ui_extra=("fixed",)),
            _widget("steps", "INT", 20),
            _widget("cfg", "FLOAT", 8.0),
            _widget("sampler_name", "COMBO", "euler"),
            _widget("scheduler", "COMBO", "simple"),
            _socket("positive", "CONDITIONING"),
            _socket("negative", "CONDITIONING"),
            _socket("latent_image", "LATENT"),
            _widget("denoise", "FLOAT", 1.0),
        ),
        (("LATENT", "LATENT"),),
    ),
    "VAEDecode": NodeSpec((_socket("samples", "LATENT"), _socket("vae", "VAE")), (("IMAGE", "IMAGE"),)),
}


def comfyui_dir() -> Path:
    """The ComfyUI checkout whose ``comfy_api`` the pack's schemas are built with (``COMFYUI_DIR`` or the default)."""
    return Path(os.environ.get("COMFYUI_DIR") or ROOT / ".comfyui" / "ComfyUI").expanduser().resolve()


def _inputs_of(item: Any, optional: bool = False) -> list[InputSpec]:
    """InputSpecs of one V3 input; a DynamicCombo (ComfyUI 0.33+) as a combo followed by every option's own inputs,
    the flat form ComfyUI 0.3.75 has (the server moves them to ``<combo>.<input>``, tests/support/comfy_harness.py)."""
    optional = optional or bool(item.optional)
    options = getattr(item, "options", None) or []
    if options and hasattr(options[0], "key"):
        specs = [InputSpec(item.id, "COMBO", widget=True, default=options[0].key, optional=optional)]
        for option in options:
            for sub in option.inputs:
                if all(s.name != sub.id for s in specs):
                    specs += _inputs_of(sub, optional)
        return specs
    type_ = item.get_io_type()
    widget = type_ in WIDGET_TYPES and not getattr(item, "force_input", False)
    default = getattr(item, "default", None)
    if widget and default is None and type_ == "COMBO" and options:
        default = options[0]
    extra = ("image",) if getattr(item, "upload", None) else ()
    return [InputSpec(item.id, type_, widget=widget, default=default, optional=optional, ui_extra=extra)]


def spec_of(node_class: Any) -> tuple[str, NodeSpec]:
    """(node id, NodeSpec) of a V3 ``io.ComfyNode`` class, from its schema."""
    schema = node_class.GET_SCHEMA()
    inputs = tuple(spec for item in schema.inputs for spec in _inputs_of(item))
    outputs = tuple((o.display_name or o.id, o.get_io_type()) for o in schema.outputs)
    return schema.node_id, NodeSpec(inputs, outputs)


def prepare_comfyui() -> None:
    """Put the ComfyUI checkout on ``sys.path`` (first: its ``nodes``, never the pack's) in CPU mode, once."""
    path = str(comfyui_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    from comfy.cli_args import args  # parses no argv in-process

    args.cpu = True  # like main.py --cpu; must precede the first comfy.model_management import


@functools.cache
def pack_specs() -> dict[str, NodeSpec]:
    """NodeSpecs of every node the pack offers on this ComfyUI, by node id, from the schemas in ``nodes/``."""
    if PACK_MODULE not in sys.modules:
        prepare_comfyui()
        init = ROOT / "nodes" / "__init__.py"
        spec = importlib.util.spec_from_file_location(PACK_MODULE, init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_MODULE] = module
        spec.loader.exec_module(module)
    return dict(spec_of(node) for node in sys.modules[PACK_MODULE].NODES)


def node_spec(class_type: str, extra: dict[str, NodeSpec] | None = None) -> NodeSpec:
    """The NodeSpec of ``class_type``: from ``extra``, the core table, or the pack's schemas."""
    for table in (extra or {}, CORE_NODES):
        if class_type in table:
            return table[class_type]
    specs = pack_specs()
    if class_type not in specs:
        raise KeyError(f"unknown node type {class_type!r}")
    return specs[class_type]


def specs_of(node_classes: Iterable[Any]) -> dict[str, NodeSpec]:
    """NodeSpecs of other V3 node classes (a test-only node pack), by node id."""
    return dict(spec_of(node) for node in node_classes)
