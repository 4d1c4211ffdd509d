"""OpenVINO engine: the dynamic ONNX export compiled per network size (batch stays dynamic).

OpenVINO runs static spatial shapes much faster than dynamic ones, so the model is reshaped to
``[-1, 3, H, W]`` and compiled for each network size it meets (a few kept, least recently used dropped);
compiled blobs go to OpenVINO's own cache under the engine cache folder, so a second run of a size loads
in a fraction of a second.

Precision: fp32 sets ``INFERENCE_PRECISION_HINT=f32``. Without it OpenVINO's CPU plugin silently runs
bf16 on CPUs with AVX512-BF16/AMX (about 1e-2 of the depth range off). ``bf16`` asks for exactly that;
``fp16`` is for Intel GPUs. ``int8`` (CPU, approximate) compiles the int8-weight file of :mod:`.quantize`
with dynamic quantisation of the activations (the linear layers run as int8 dot products, the rest in f32).
Exactness also depends on the graph: OpenVINO's cubic ``Interpolate``
maps coordinates differently from PyTorch for upscales, so the exporter never emits one (the position
embedding is baked or computed with matrices, see :mod:`.onnx_graph`).

Devices: ``cpu`` -> OpenVINO ``CPU``; ``xpu`` (PyTorch's Intel GPU device) -> ``GPU`` when present.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .export import require
from .onnx_source import OnnxEngineBase, OnnxSource
from .quantize import OPENVINO_GROUP_SIZE

log = logging.getLogger(__name__)
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
MAX_COMPILED = 4


def ov_device(device: torch.device) -> str:
    """The OpenVINO device for a torch device (ValueError when OpenVINO has none for it)."""
    ov = require("openvino", "openvino")
    available = ov.Core().available_devices
    if device.type == "cpu":
        return "CPU"
    if device.type == "xpu" and any(d.startswith("GPU") for d in available):
        return "GPU" if device.index is None else f"GPU.{device.index}"
    raise ValueError(
        f"OpenVINO cannot run on {device} (its devices here: {', '.join(available)}); "
        "use device cpu, or backend torch/onnxruntime/tensorrt for NVIDIA GPUs"
    )


class OpenVinoEngine(OnnxEngineBase):
    """Depth through OpenVINO (see the module docstring)."""

    backend = "openvino"

    def __init__(self, source: OnnxSource, device: torch.device, precision: str = "fp32", name: str = "") -> None:
        if precision not in HINTS:
            raise ValueError(f"precision {precision!r} is not offered by openvino; choose one of {', '.join(HINTS)}")
        ov = require("openvino", "openvino")
        self.target = ov_device(device)
        if precision == "int8" and self.target != "CPU":
            raise ValueError(
                "int8 (int8 weights, activations quantised on the fly) runs on the CPU only; "
                "use device cpu, or fp16 on an Intel GPU"
            )
        super().__init__(source, device, precision, name)
        self._core = ov.Core()
        self._core.set_property({"CACHE_DIR": str(source.cache.subfolder(f"openvino-{ov.__version__.split('-')[0]}"))})
        self._model: Any = None
        self._compiled: OrderedDict[tuple[int, int], Any] = OrderedDict()

    def model_file(self) -> Path:
        """The ONNX file compiled for every size: the dynamic export, or its int8-weight form for int8."""
        return self.onnx.int8("openvino") if self.precision == "int8" else self.onnx.onnx(None, "fp32")

    def _compile(self, net_size: tuple[int, int]) -> Any:
        return self.kept(self._compiled, net_size, lambda: self._compile_new(net_size), MAX_COMPILED)

    def network(self) -> Any:
        """The OpenVINO model read from :meth:`model_file` (read once; again after :meth:`close`)."""
        if self._model is None:
            self._model = self._core.read_model(str(self.model_file()))
        return self._model

    def _compile_new(self, net_size: tuple[int, int]) -> Any:
        model = self.network().clone()
        model.reshape({"image": [-1, 3, net_size[0], net_size[1]]})
        config = {"INFERENCE_PRECISION_HINT": HINTS[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.precision == "int8":
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = OPENVINO_GROUP_SIZE
        return self._core.compile_model(model, self.target, config)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        compiled = self._compile(tuple(images.shape[-2:]))
        x = images.to(device="cpu", dtype=torch.float32).contiguous().numpy()
        depth = compiled({0: x})[0]
        return torch.from_numpy(np.array(depth, copy=True)).to(self.device)

    def close(self) -> None:
        """Drop the compiled models (and their memory); the next call compiles (or loads cached blobs) again."""
        self._compiled.clear()
        self._model = None
