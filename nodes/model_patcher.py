"""ComfyUI memory management for the depth network: wrap it in a ModelPatcher, load it on demand.

Like ComfyUI's own auxiliary models (CLIP vision, upscalers): weights live on the offload device
(``unet_offload_device``) until a node needs them; ``load_models_gpu`` moves them to the torch device,
evicting other models if VRAM is short, and ComfyUI offloads them again when something else needs room.
"""

from __future__ import annotations

import operator

import comfy.model_management as mm
import comfy.model_patcher
import torch

from dav2_core.dtypes import auto_precision, resolve_dtype

PRECISIONS: dict[str, str] = {
    "auto": "fp16 on GPUs that run it fast (bf16 where fp16 is unsupported), fp32 on CPU",
    "fp32": "full precision (exact parity with the official implementation)",
    "fp16": "half precision: half the memory, faster on most GPUs",
    "bf16": "bfloat16: half the memory, safer range than fp16 on recent GPUs",
    "int8": "8-bit linear layers, approximate (not the official output): backends openvino and onnxruntime, "
    "on the CPU only",
}

DEVICES: dict[str, str] = {
    "auto": "ComfyUI's device (the GPU, or the CPU when started with --cpu); offloaded when idle",
    "cpu": "always run on the CPU (keeps GPU memory free for other models; slow)",
}


def devices(device: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) for the ``device`` choice."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


def compute_dtype(precision: str, load_device: torch.device) -> torch.dtype:
    """The dtype the network runs in on ``load_device`` for a precision choice (ValueError if unusable there)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":  # the engine's rule, with ComfyUI's answer to "does fp16 / bf16 run well here?"
        fp16 = mm.should_use_fp16(load_device)
        precision = auto_precision(load_device, fp16=fp16, bf16=not fp16 and mm.should_use_bf16(load_device))
    return resolve_dtype(precision, load_device)  # e.g. refuses fp16 on the CPU, saying why


def wrap(
    model: torch.nn.Module, load_device: torch.device, offload_device: torch.device
) -> comfy.model_patcher.ModelPatcher:
    """A ModelPatcher around ``model`` (whose weights sit on ``offload_device``)."""
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def load(patcher: comfy.model_patcher.ModelPatcher, memory_required: int = 0) -> torch.nn.Module:
    """Put the network on its load device through ComfyUI (evicting others if needed); returns it.

    memory_required: bytes the caller's activations will need on that device beyond the weights (e.g.
    images per chunk x the engine's ``bytes_per_image``; ``EstimateOptions.memory_required``). ComfyUI only counts a patcher's weights,
    so without it other models are not offloaded to make room for a large chunk. Loaded fully (no
    partial low-VRAM loading: the network uses plain torch layers, not comfy.ops).
    An ``EnginePatcher`` (non-torch backend) goes the same way and returns its engine.
    """
    try:
        required = operator.index(memory_required)
    except TypeError:
        required = -1
    if required < 0:
        raise ValueError(f"memory_required must be a whole number of bytes >= 0, got {memory_required!r}")
    mm.load_models_gpu([patcher], memory_required=required, force_full_load=True)
    return patcher.model
