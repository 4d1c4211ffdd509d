"""The loader node's non-torch path: backend choices, and an engine wrapped for ComfyUI memory management."""

from __future__ import annotations

import os

import torch

from dav2_core.dtypes import precision_name
from dav2_core.engines.registry import REQUIREMENTS, backend_device, installed_backends, resolve_backend
from dav2_core.loading import load_model

from .engine_patcher import EnginePatcher, weight_bytes
from .types import DepthModel

#: Engine files (ONNX exports, compiled engines) live here, under the first depthanything model folder.
ENGINES_FOLDER = "engines"


def backend_options() -> list[str]:
    """Combo entries: auto and the backends installed here (torch always)."""
    return ["auto", *installed_backends()]


def backend_tooltip() -> str:
    lines = [
        "Inference engine. torch is exact everywhere and managed like any ComfyUI model. auto: the "
        "fastest installed one for the device (CPU: openvino, then onnxruntime; NVIDIA GPU: tensorrt). "
        "Other engines export the model to ONNX once (cached in models/depthanything/engines) and are "
        "freed with ComfyUI's model memory. Only installed backends are listed:"
    ]
    lines += [f"- {name}: {need}" for name, need in REQUIREMENTS.items()]
    return "\n".join(lines)


def engine_device(backend: str, dtype: str | None, load_device: torch.device) -> torch.device:
    """Where a ``backend`` engine runs for ComfyUI's ``load_device``: the CPU for int8, else the backend's
    device for it (``auto`` decides on ``load_device`` itself, by the engines' rule)."""
    if precision_name(dtype, load_device) == "int8":
        return torch.device("cpu")
    return load_device if backend == "auto" else backend_device(backend, load_device)


def resolve(backend: str, precision: str, load_device: torch.device) -> str:
    """The concrete backend for the node's choice ('auto' by the engines' rule); errors if not installed."""
    dtype = None if precision == "auto" else precision
    return resolve_backend(backend, engine_device(backend, dtype, load_device), dtype)


def load_depth_model(
    source: str,
    name: str,
    backend: str,
    precision: str,
    load_device: torch.device,
    models_folder: str,
    kind: str | None,
    max_depth: float | None,
) -> DepthModel:
    """A DepthModel whose patcher holds a ``backend`` engine (ONNX files cached under ``models_folder/engines``)."""
    dtype = None if precision == "auto" else precision
    device = engine_device(backend, dtype, load_device)
    engine = load_model(
        source,
        device=device,
        dtype=dtype,
        models_dir=models_folder,
        kind=kind,
        max_depth=max_depth,
        backend=backend,
        cache_dir=os.path.join(models_folder, ENGINES_FOLDER),
    )
    info = engine.checkpoint_info
    patcher = EnginePatcher(engine, weight_bytes(info.encoder, engine.precision))
    return DepthModel.loaded(patcher, name, info, engine.precision, engine.backend)
