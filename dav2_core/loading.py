"""`load_model`: a variant id or checkpoint path -> a ready DepthAnythingV2 in eval mode on a device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointInfo, load_checkpoint
from .dtypes import resolve_dtype
from .engines.onnx_source import is_onnx_file
from .engines.registry import load_engine, resolve_backend
from .model import DepthAnythingV2, VideoDepthAnything
from .variants import FAMILY_NAMES, VARIANTS


def default_models_dir() -> Path:
    """Where variants are looked for / downloaded when no folder is given: $DAV2_MODELS_DIR or ~/.cache/dav2."""
    return Path(os.environ.get("DAV2_MODELS_DIR", Path.home() / ".cache" / "dav2" / "models")).expanduser()


def default_device() -> torch.device:
    """CUDA if present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_model(info: CheckpointInfo) -> DepthAnythingV2 | VideoDepthAnything:
    """An empty (meta-device) network shaped for a checkpoint; fill it with ``load_state_dict(assign=True)``.
    A Video Depth Anything checkpoint gives a :class:`VideoDepthAnything`."""
    spec = info.spec
    with torch.device("meta"):
        if info.is_video:
            return VideoDepthAnything(spec.name, spec.features, spec.out_channels)
        return DepthAnythingV2(
            spec.name, spec.features, spec.out_channels, info.max_depth if info.kind == "metric" else None
        )


def _exportable(model: Any, backend: str) -> Any:
    """The PyTorch model to export for ``backend``; a Video Depth Anything model cannot be (ValueError)."""
    if isinstance(model, VideoDepthAnything):
        raise ValueError(
            f"{model.source} is a Video Depth Anything model: it runs on the torch backend only (its temporal head "
            f"has no {backend} export); use backend 'torch'"
        )
    return model


def load_model(
    path_or_variant: str | os.PathLike[str],
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    kind: str | None = None,
    max_depth: float | None = None,
    backend: str = "torch",
    cache_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Load Depth Anything V2 (or Video Depth Anything: a :class:`VideoDepthAnything`) ready for inference.

    path_or_variant: a variant id from ``variants.VARIANTS`` (found in, or downloaded to, ``models_dir``)
    or the path of a checkpoint in any supported format (official .pth, official-key or HF-transformers
    safetensors). The encoder is read from the tensors; relative vs metric by the one rule of
    :mod:`dav2_core.checkpoints.detect`: ``kind``/``max_depth``, else the file's metadata, an HF config.json
    beside it, its published file name (a variant's file), else relative. The result carries
    ``.checkpoint_info`` and ``.source``.

    backend: 'torch' (default: the ``DepthAnythingV2`` module), 'onnxruntime', 'openvino', 'tensorrt' or
    'auto' (the fastest installed one for the device, see :mod:`dav2_core.engines.registry`). Other
    backends return an engine (:mod:`dav2_core.engines`) that ``predict_depth`` / ``.infer_image`` take
    exactly like the module; its ONNX export and compiled files are cached in ``cache_dir`` (default
    $DAV2_ENGINE_CACHE or ~/.cache/dav2/engines). An ``.onnx`` file from ``dav2 export`` loads on them too.
    ``dtype`` may then also be 'int8' (openvino or onnxruntime, CPU: approximate).
    """
    device = torch.device(device) if device is not None else default_device()
    name = os.fspath(path_or_variant)
    if name in VARIANTS and VARIANTS[name].is_video and backend not in ("torch", "auto"):
        raise ValueError(
            f"{name} is a Video Depth Anything model: it runs on the torch backend only (its temporal head has no "
            f"ONNX / OpenVINO / TensorRT export); use backend 'torch'"
        )
    backend = "torch" if name in VARIANTS and VARIANTS[name].is_video else resolve_backend(backend, device, dtype)
    if backend != "torch" or is_onnx_file(path_or_variant):
        if backend == "torch":
            raise ValueError(
                f"{path_or_variant} is an ONNX file: load it with backend onnxruntime, openvino or tensorrt"
            )
        return load_engine(
            os.fspath(path_or_variant),
            backend,
            device,
            dtype,
            cache_dir,
            lambda: _exportable(
                load_model(path_or_variant, "cpu", torch.float32, models_dir, kind, max_depth), backend
            ),
        )
    dtype = resolve_dtype(dtype, device)
    if device.type == "mps":
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")  # CPU fallback for ops MPS lacks
    if name in VARIANTS:  # its file carries a published name, which gives the variant's kind (checkpoints.detect)
        from .hub import resolve_checkpoint  # lazy: huggingface_hub is needed only to fetch a variant

        path = resolve_checkpoint(name, models_dir if models_dir is not None else default_models_dir())
        state_dict, info = load_checkpoint(
            path, expected_encoder=VARIANTS[name].encoder, kind=kind, max_depth=max_depth
        )
        if info.family != VARIANTS[name].family:
            raise ValueError(
                f"{path}: holds a {FAMILY_NAMES[info.family]} model, but variant {name} is "
                f"{FAMILY_NAMES[VARIANTS[name].family]}; replace the file with the official {VARIANTS[name].filename}"
            )
    else:
        path = Path(name)
        if not path.suffix and not path.exists():
            raise ValueError(
                f"{name!r} is neither a known variant ({', '.join(VARIANTS)}) nor an existing checkpoint file"
            )
        state_dict, info = load_checkpoint(path, kind=kind, max_depth=max_depth)
    model = build_model(info)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    model.checkpoint_info = info
    model.source = name
    return model
