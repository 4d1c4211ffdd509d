"""Which backends exist, which are installed, what each needs, and how ``load_model`` builds one.

``auto`` picks, per device, the fastest installed backend as measured by ``benchmarks/bench_cpu.py`` /
``bench_gpu.py`` (README, "Backends"):

* CPU, fp32: openvino, else onnxruntime, else torch (all three exact; OpenVINO and ONNX Runtime reach
  90-100 % of the fp32 matrix-multiply floor, PyTorch eager less).
* CPU, int8 (approximate, opt-in): openvino, else onnxruntime (OpenVINO's int8 was closer to fp32 and
  faster for vits, equally fast for vitb).
* CUDA: tensorrt when ONNX Runtime's TensorRT provider is installed, else torch.
* anything else (MPS, ...): torch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from ..dtypes import precision_name
from .base import Engine

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
BACKEND_CHOICES = ("auto", *BACKENDS)
#: The backends offering precision int8 (CPU only, approximate), fastest first.
INT8_BACKENDS = ("openvino", "onnxruntime")
INT8_ONLY = "precision int8 is offered by backends openvino and onnxruntime only, on the CPU (approximate)"
PACKAGE = "comfyui-depth-anything-v2-pro"
#: What each backend needs (the loader node's tooltip and every "not installed" error say this).
REQUIREMENTS: dict[str, str] = {
    "torch": "always there (PyTorch; exact, every device)",
    "onnxruntime": f"pip install {PACKAGE}[onnx] (onnx + onnxruntime; onnxruntime-gpu for CUDA); CPU fp32 "
    "exact, int8 approximate",
    "openvino": f"pip install {PACKAGE}[openvino] (onnx + openvino); CPU (and Intel GPUs), fp32 exact, "
    "bf16 and int8 approximate",
    "tensorrt": f"pip install {PACKAGE}[tensorrt] (onnx + onnxruntime-gpu + tensorrt) and an NVIDIA GPU; fp16",
}
_MODULES = {
    "onnxruntime": ("onnx", "onnxruntime"),
    "openvino": ("onnx", "openvino"),
    "tensorrt": ("onnx", "onnxruntime"),
}


def _missing_modules(backend: str) -> list[str]:
    return [m for m in _MODULES.get(backend, ()) if importlib.util.find_spec(m) is None]


def is_installed(backend: str) -> bool:
    """True when the backend's packages are importable (tensorrt: ORT with its TensorRT provider)."""
    if backend == "torch":
        return True
    if backend not in BACKENDS or _missing_modules(backend):
        return False
    if backend == "tensorrt":
        return _ort_has_tensorrt()
    return True


def _ort_has_tensorrt() -> bool:
    """Whether the installed ONNX Runtime was built with its TensorRT provider (onnxruntime-gpu), from the
    provider library in its package folder: what ``get_available_providers()`` lists, without importing
    onnxruntime (~30 MB resident at ComfyUI's start, for the loader's backend list)."""
    spec = importlib.util.find_spec("onnxruntime")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    names = ("libonnxruntime_providers_tensorrt.so", "onnxruntime_providers_tensorrt.dll")
    return any(os.path.isfile(os.path.join(folder, "capi", name)) for folder in folders for name in names)


def installed_backends() -> list[str]:
    """The backends usable here, torch first."""
    return [b for b in BACKENDS if is_installed(b)]


def require_backend(backend: str) -> None:
    """ValueError for an unknown backend; ImportError naming the pip command for a missing one."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    missing = _missing_modules(backend)
    if missing:
        raise ImportError(
            f"backend {backend} needs {', '.join(missing)}, which is not installed: {REQUIREMENTS[backend]}"
        )


def auto_backend(device: torch.device, precision: str) -> str:
    """The backend ``auto`` means for a device and precision (the rule in the module docstring)."""
    if precision == "int8":
        installed = [b for b in INT8_BACKENDS if is_installed(b)]
        if not installed:
            raise ImportError(
                f"precision int8 needs backend openvino or onnxruntime, and neither is installed: "
                f"{REQUIREMENTS['openvino']}; or {REQUIREMENTS['onnxruntime']}"
            )
        return installed[0]
    if device.type == "cpu":
        for backend in ("openvino", "onnxruntime"):
            if is_installed(backend):
                return backend
    if device.type == "cuda" and is_installed("tensorrt"):
        return "tensorrt"
    return "torch"


def backend_device(backend: str, device: torch.device) -> torch.device:
    """Where ``backend`` runs when the host offers ``device``: OpenVINO on the CPU (its NVIDIA-free devices),
    ONNX Runtime on CUDA only with onnxruntime-gpu (else the CPU), TensorRT and torch where asked."""
    if backend == "openvino" or (backend == "onnxruntime" and device.type != "cpu"):
        if backend == "onnxruntime" and device.type == "cuda":
            from .onnxruntime import cuda_available

            if cuda_available():
                return device
        return torch.device("cpu")
    return device


def create_engine(backend: str, source: Any, device: torch.device, precision: str, name: str = "") -> Engine:
    """An engine of ``backend`` over an :class:`~.onnx_source.OnnxSource` (files built now, not on first call)."""
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeEngine

        engine = OnnxRuntimeEngine(source, device, precision, name=name)
        engine.session(None)  # export (or find in the cache) and open now: errors surface at load time
    elif backend == "openvino":
        from .openvino import OpenVinoEngine

        engine = OpenVinoEngine(source, device, precision, name=name)
        engine.network()  # export / quantise (or find in the cache) and read now: errors surface at load time
    elif backend == "tensorrt":
        from .tensorrt import tensorrt_engine

        return tensorrt_engine(source, device, precision, name=name)  # keeps the model: exports per size
    else:
        raise ValueError(f"create_engine builds onnxruntime/openvino/tensorrt engines, not {backend!r}")
    source.release_model()
    return engine


def resolve_backend(backend: str, device: torch.device, dtype: Any) -> str:
    """The concrete backend for a choice ('auto' follows the module docstring's rule); errors if unusable."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    precision = precision_name(dtype, device)
    if backend == "auto":
        backend = auto_backend(device, precision)
    if precision == "int8" and backend not in INT8_BACKENDS:
        raise ValueError(f"{INT8_ONLY}; use backend auto, openvino or onnxruntime, or fp32/fp16/bf16 with {backend}")
    require_backend(backend)
    return backend


def load_engine(
    name: str, backend: str, device: torch.device, dtype: Any, cache_dir: str | os.PathLike[str] | None, load_torch: Any
) -> Engine:
    """The engine ``load_model(..., backend=...)`` returns for a resolved non-torch ``backend``;
    ``load_torch()`` gives the CPU fp32 PyTorch model to export from (not called for an .onnx file)."""
    from .cache import EngineCache, default_cache_dir
    from .onnx_source import OnnxSource, is_onnx_file

    precision = precision_name(dtype, device)
    if backend == "tensorrt":
        from .tensorrt import check_available

        check_available(device)
    cache = EngineCache(default_cache_dir() if cache_dir is None else cache_dir)
    if is_onnx_file(name):
        source = OnnxSource(cache, file=Path(name))
    else:
        source = OnnxSource(cache, model=load_torch())
    return create_engine(backend, source, device, precision, name=name)
