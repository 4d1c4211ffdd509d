"""The loader node's non-torch path: backend choices, and an engine wrapped for ComfyUI memory management."""
from __future__ import annotations

import os

import torch

from dav2_core.engines.registry import REQUIREMENTS, auto_backend, backend_device, installed_backends, precision_name, resolve_backend
from dav2_core.loading import load_model

from .engine_patcher import EnginePatcher, weight_bytes
from .types import DepthModel

#: Engine files (ONNX exports, compiled engines) live here, under the first depthanything model folder.
ENGINES_FOLDER = "engines"


def backend_options() -> list[str]:
    """Combo entries: auto and the backends installed here (torch always)."""
    return ["auto", *installed_backends()]


def backend_tooltip() -> str:
    lines = ["Inference engine. torch is exact everywhere and managed like any ComfyUI model. auto: the "
             "fastest installed one for the device (CPU: openvino, then onnxruntime; NVIDIA GPU: tensorrt). "
             "Other engines export the model to ONNX once (cached in models/depthanything/engines) and are "
             "freed with ComfyUI's model memory. Only installed backends are listed:"]
    lines += [f"- {name}: {need}" for name, need in REQUIREMENTS.items()]
    return "\n".join(lines)


def resolve(backend: str, precision: str, load_device: torch.device) -> str:
    """The concrete backend for the node's choice ('auto' by the engines' rule); errors if not installed."""
    dtype = None if precision == "auto" else precision
    if backend == "auto":
        device = load_device
        if precision_name(dtype, device) == "int8":
            device = torch.device("cpu")
        return auto_backend(backend_device("onnxruntime", device) if device.type == "cuda" else device,
                            precision_name(dtype, device))
    return resolve_backend(backend, backend_device(backend, load_device), dtype)


def load_depth_model(source: str, name: str, backend: str, precision: str, load_device: torch.device,
                     models_folder: str, kind: str | None, max_depth: float | None) -> DepthModel:
    """A DepthModel whose patcher holds a ``backend`` engine (ONNX files cached under ``models_folder/engines``)."""
    device = backend_device(backend, load_device)
    dtype = None if precision == "auto" else precision
    if precision_name(dtype, device) == "int8":
        device = torch.device("cpu")
    engine = load_model(source, device=device, dtype=dtype, models_dir=models_folder, kind=kind, max_depth=max_depth,
                        backend=backend, cache_dir=os.path.join(models_folder, ENGINES_FOLDER))
    info = engine.checkpoint_info
    patcher = EnginePatcher(engine, weight_bytes(info.encoder, engine.precision))
    return DepthModel(patcher=patcher, name=name, encoder=info.encoder, kind=info.kind, max_depth=info.max_depth,
                      dtype=engine.precision, backend=engine.backend)
