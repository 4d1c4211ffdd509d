"""ComfyUI memory management for non-torch engines (ONNX Runtime, OpenVINO, TensorRT).

:class:`EnginePatcher` stands in for a ``comfy.model_patcher.ModelPatcher`` in ComfyUI's loaded-models
list: Estimate Depth loads it with ``comfy.model_management.load_models_gpu`` exactly like the PyTorch
network, so ComfyUI accounts for its memory (frees other models to make room for it) and can free it:
when ComfyUI needs room on the device, when the user presses "Free model and node cache" (``/free``)
or on ``unload_all_models``, ComfyUI calls ``partially_unload`` / ``detach``, which ``close()`` the
engine: its sessions / compiled models and their device memory go. The engine reopens them (from the
on-disk engine cache, without a new export) on its next call. Dropping the DAV2_MODEL output frees
everything with the engine object.
"""

from __future__ import annotations

from typing import Any

import torch

from dav2_core.dtypes import PRECISION_BYTES
from dav2_core.model import DepthAnythingV2


def weight_bytes(encoder: str, precision: str) -> int:
    """Approximate device memory of an engine's weights."""
    with torch.device("meta"):  # shapes only, no memory
        params = sum(p.numel() for p in DepthAnythingV2(encoder).parameters())
    return int(params * PRECISION_BYTES.get(precision, 4))


class EnginePatcher:
    """The subset of ModelPatcher that ``comfy.model_management`` uses, over an engine (see the module docstring)."""

    parent = None

    def __init__(self, engine: Any, size_bytes: int) -> None:
        self.model = engine
        self.load_device = engine.device
        self.offload_device = torch.device("cpu")
        self.size = int(size_bytes)
        self.loaded = False

    def model_size(self) -> int:
        return self.size

    def loaded_size(self) -> int:
        return self.size if self.loaded else 0

    def current_loaded_device(self) -> torch.device:
        return self.load_device if self.loaded else self.offload_device

    def model_dtype(self) -> torch.dtype:
        return self.model.input_dtype

    def model_patches_to(self, device_or_dtype: Any) -> None:
        """No patches to move."""

    def model_patches_models(self) -> list[Any]:
        return []

    def lowvram_patch_counter(self) -> int:
        return 0

    def is_dynamic(self) -> bool:
        """Not a dynamic-VRAM model (ComfyUI 0.33 asks every loaded model; only its own patcher pins weights)."""
        return False

    def is_clone(self, other: Any) -> bool:
        return getattr(other, "model", None) is self.model

    def partially_load(self, device: torch.device, extra_memory: float = 0, force_patch_weights: bool = False) -> int:
        """Mark loaded (the engine opens its session on its first call); returns the bytes newly accounted."""
        newly = 0 if self.loaded else self.size
        self.loaded = True
        return newly

    def partially_unload(self, device_to: torch.device, memory_to_free: float = 0) -> int:
        """An engine cannot be unloaded in part: close it all; returns the bytes freed."""
        freed = self.loaded_size()
        self.detach()
        return freed

    def detach(self, unpatch_all: bool = True) -> Any:
        """Close the engine (frees its device memory; it reopens on the next call)."""
        self.model.close()
        self.loaded = False
        return self.model
