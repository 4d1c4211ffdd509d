"""ONNX Runtime engine: CPU, CUDA and TensorRT execution providers behind the engine protocol.

* CPU (``device='cpu'``): the dynamic export, one session for every shape; precision fp32 (exact) or
  int8 (dynamic quantisation of the transformer's MatMuls: approximate, opt-in).
* CUDA: the dynamic export (fp32 or fp16 file) on the CUDA execution provider; inputs and outputs stay
  on the GPU (I/O binding on torch tensors, no host round trip).
* TensorRT (:mod:`.tensorrt`): per network size a fixed-size export with a dynamic batch, built into a
  TensorRT engine by ORT's TensorRT execution provider (fp16 by default), engines cached on disk.

Sessions are created lazily and dropped by :meth:`close` (the engine reopens them on the next call), so
a host such as ComfyUI can free device memory between runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from .export import OPSET, opset_of, require
from .onnx_source import OnnxEngineBase, OnnxSource

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "int8")
MAX_SESSIONS = 4  # per-shape sessions kept (TensorRT); older ones are closed


def cuda_available() -> bool:
    """True when the installed ONNX Runtime has its CUDA execution provider."""
    return "CUDAExecutionProvider" in require("onnxruntime", "onnx").get_available_providers()


def open_session(path: Path, providers: list[Any], threads: int | None = None) -> Any:
    """An ``InferenceSession`` for ``path``; an opset this runtime cannot read becomes a clear ValueError."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph classes
        text = str(exc)
        if "opset" in text.lower() or "Unsupported model IR version" in text:
            raise ValueError(
                f"{path}: ONNX Runtime {ort.__version__} cannot read this file (ONNX opset {opset_of(path)}; "
                f"{text.strip().splitlines()[0][:300]}). Re-export it with `dav2 export --opset {OPSET}` or "
                "upgrade onnxruntime"
            ) from exc
        raise


class OnnxRuntimeEngine(OnnxEngineBase):
    """Depth through ONNX Runtime (see the module docstring)."""

    backend = "onnxruntime"

    def __init__(
        self,
        source: OnnxSource,
        device: torch.device,
        precision: str = "fp32",
        providers: Callable[[tuple[int, int] | None], list[Any]] | None = None,
        per_shape: bool = False,
        name: str = "",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} for onnxruntime; choose one of {', '.join(PRECISIONS)}")
        if precision == "int8" and device.type != "cpu":
            raise ValueError("int8 (dynamic quantisation) runs on the CPU only; use device cpu, or fp16 on the GPU")
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("fp16 is not supported on the CPU (slow, cast op by op); use fp32 or int8 there")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"onnxruntime runs on cpu or cuda, not {device}; use backend torch there")
        if device.type == "cuda" and providers is None and not cuda_available():
            raise ImportError(
                "ONNX Runtime here has no CUDA execution provider (the CPU-only onnxruntime package); "
                "pip install onnxruntime-gpu (after uninstalling onnxruntime), or use device cpu"
            )
        super().__init__(source, device, precision, name)
        default = (
            ["CPUExecutionProvider"]
            if device.type == "cpu"
            else [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        )
        self.providers = providers or (lambda net_size: default)  # providers for a session of net_size
        self.per_shape = per_shape
        self._sessions: OrderedDict[tuple[int, int] | None, Any] = OrderedDict()

    # ----------------------------------------------------------------------------------- sessions
    def _file(self, net_size: tuple[int, int] | None) -> Path:
        export_precision = "fp16" if self.precision == "fp16" and not self.per_shape else "fp32"
        if self.precision == "int8":
            return self.onnx.int8("onnxruntime")
        return self.onnx.onnx(net_size, export_precision)

    def session(self, net_size: tuple[int, int] | None) -> Any:
        """The session that runs ``net_size`` (created, and its file exported or built, on first use);
        None: the any-shape session (engines that are not per shape)."""
        key = tuple(net_size) if self.per_shape and net_size is not None else None
        return self.kept(self._sessions, key, lambda: self._open(key), MAX_SESSIONS)

    def _open(self, key: tuple[int, int] | None) -> Any:
        path = self._file(key)
        try:
            return open_session(path, self.providers(key))
        except ValueError:  # a file this runtime cannot read (opset): rebuilding gives the same file
            raise
        except Exception as exc:  # noqa: BLE001 - a cached file the runtime refuses: rebuild once
            if self.onnx.file is not None or not self.onnx.cache.persistent:
                raise
            log.warning("ONNX Runtime could not load %s (%s); rebuilding it", path, exc)
            self.onnx.cache.discard(path.parent)
            return open_session(self._file(key), self.providers(key))

    # ----------------------------------------------------------------------------------- protocol
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        session = self.session(tuple(images.shape[-2:]))
        x = images.to(device=self.device, dtype=torch.float32).contiguous()
        if self.device.type == "cpu":
            depth = session.run(["depth"], {"image": x.numpy()})[0]
            return torch.from_numpy(np.ascontiguousarray(depth))
        out = torch.empty((x.shape[0], x.shape[2], x.shape[3]), dtype=torch.float32, device=self.device)
        binding = session.io_binding()
        index = self.device.index or 0
        binding.bind_input("image", "cuda", index, np.float32, list(x.shape), x.data_ptr())
        binding.bind_output("depth", "cuda", index, np.float32, list(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # x is ready before ORT's stream reads it
        session.run_with_iobinding(binding)
        return out

    def close(self) -> None:
        """Drop every session (frees its device memory); the next call opens them again."""
        self._sessions.clear()
