"""TensorRT engine, through ONNX Runtime's TensorRT execution provider.

Why the execution provider and not torch-tensorrt: it consumes the same ONNX export as every other
backend (one exporter, one parity test), builds and caches serialized engines and timing caches on disk
by itself, falls back to CUDA for any op TensorRT lacks, and only needs ``onnxruntime-gpu`` + the
``tensorrt`` wheels; torch-tensorrt wheels are pinned to one exact torch release, which a ComfyUI install
rarely has.

Per network size (H, W) the engine uses a fixed-size export (position embedding baked, every shape
static for TensorRT's optimiser) with a dynamic batch of 1..``MAX_CHUNK`` (optimised for ``OPT_BATCH``).
fp16 (the default on CUDA) builds fp16 kernels from the fp32 file; fp32 is exact-ish. Engines and the
timing cache live in ``<engine cache>/tensorrt/``, so only the first run of a size pays the build.
"""

from __future__ import annotations

from typing import Any

import torch

from .export import require
from ..chunks import MAX_CHUNK
from .onnx_source import OnnxSource
from .onnxruntime import OnnxRuntimeEngine

PRECISIONS = ("fp16", "fp32")
OPT_BATCH = 8
INSTALL_HINT = (
    "pip install comfyui-depth-anything-v2-pro[tensorrt] (onnxruntime-gpu and tensorrt; "
    "uninstall the CPU-only onnxruntime package first)"
)


def check_available(device: torch.device) -> None:
    """Raise unless TensorRT can run on ``device``: CUDA present, ORT with the TensorRT provider installed."""
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(
            f"TensorRT requested without CUDA (device {device}, CUDA available: "
            f"{torch.cuda.is_available()}); TensorRT needs an NVIDIA GPU: use device cuda, or a "
            "CPU backend (onnxruntime, openvino, torch)"
        )
    ort = require("onnxruntime", "tensorrt")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise ImportError(
            f"ONNX Runtime {ort.__version__} here has no TensorRT execution provider "
            f"(it has {', '.join(ort.get_available_providers())}); {INSTALL_HINT}"
        )


def tensorrt_engine(
    source: OnnxSource, device: torch.device, precision: str = "fp16", name: str = ""
) -> OnnxRuntimeEngine:
    """An ONNX Runtime engine on the TensorRT execution provider (see the module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not offered by tensorrt; choose fp16 or fp32")
    check_available(device)
    index = device.index or 0
    folder = str(source.cache.subfolder("tensorrt"))

    def providers(net_size: tuple[int, int] | None) -> list[Any]:
        height, width = net_size
        shapes = {
            name: f"image:{batch}x3x{height}x{width}"
            for name, batch in (
                ("trt_profile_min_shapes", 1),
                ("trt_profile_opt_shapes", OPT_BATCH),
                ("trt_profile_max_shapes", MAX_CHUNK),
            )
        }
        trt = {
            "device_id": index,
            "trt_fp16_enable": precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": folder,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": folder,
            "trt_max_workspace_size": 4 << 30,
            **shapes,
        }
        return [
            ("TensorrtExecutionProvider", trt),
            ("CUDAExecutionProvider", {"device_id": index}),
            "CPUExecutionProvider",
        ]

    engine = OnnxRuntimeEngine(source, device, "fp32", providers=providers, per_shape=True, name=name)
    engine.backend = "tensorrt"
    engine.precision = precision
    return engine
