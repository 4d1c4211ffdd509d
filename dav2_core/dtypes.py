"""Compute precisions: their names, dtypes and weight sizes, and the one rule for ``auto``.

Every place that offers or resolves a precision (``load_model``, the engine registry, the CLI's
``--dtype``, the loader node, the benchmarks) reads it from here. ``auto`` is fp32 on the CPU and fp16 on
a GPU; a host that knows better per device (ComfyUI's ``should_use_fp16`` / ``should_use_bf16``) passes
its answers to :func:`auto_precision` instead of writing its own rule.
"""

from __future__ import annotations

from typing import Any

import torch

#: Precision names and their dtypes: the one table the CLI, the nodes and the benchmarks offer.
PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Every precision a backend may run, int8 included (approximate: ONNX Runtime / OpenVINO on the CPU).
PRECISIONS: tuple[str, ...] = (*PRECISION_DTYPES, "int8")
#: Bytes per weight at each precision (int8: quantised MatMuls, float convolutions: about 1.3 on average).
PRECISION_BYTES: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1.3}
_ALIASES: dict[Any, str] = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    "float32": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
}


def auto_precision(device: torch.device, fp16: bool | None = None, bf16: bool = False) -> str:
    """What ``auto`` means on ``device``: fp32 on the CPU; elsewhere fp16 where it runs (``fp16``: the host's
    answer; default: CUDA and MPS), else bf16 where the host says it runs, else fp32."""
    if device.type == "cpu":
        return "fp32"
    if fp16 is None:
        fp16 = device.type in ("cuda", "mps")
    if fp16:
        return "fp16"
    return "bf16" if bf16 else "fp32"


def precision_name(dtype: Any, device: torch.device) -> str:
    """'fp32' | 'fp16' | 'bf16' | 'int8' from a torch dtype, a name, or None/'auto' (:func:`auto_precision`)."""
    if dtype is None or dtype == "auto":
        return auto_precision(device)
    name = _ALIASES.get(dtype, dtype)
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {dtype!r}; use auto, fp32, fp16, bf16 or int8")
    return name


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """The torch dtype for a precision on a device (None/'auto': :func:`auto_precision`). fp16 on the CPU is
    refused (slow and partly unimplemented there); int8 is not a torch dtype and is refused too."""
    if dtype is None or dtype == "auto":
        return PRECISION_DTYPES[auto_precision(device)]
    if isinstance(dtype, str):
        if dtype not in PRECISION_DTYPES and dtype not in _ALIASES:
            raise ValueError(f"unknown precision {dtype!r}; use auto, fp32, fp16 or bf16")
        dtype = PRECISION_DTYPES[_ALIASES.get(dtype, dtype)]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported precision {dtype}; use fp32, fp16 or bf16")
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU (slow and partly unimplemented); use bf16 or fp32 there")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """'fp32' | 'fp16' | 'bf16' for a torch dtype (KeyError for others)."""
    return {v: k for k, v in PRECISION_DTYPES.items()}[dtype]
