"""Where ONNX-based engines get their files: exports of the PyTorch model (cached) or a given .onnx file.

:class:`OnnxSource` hands out, for a network shape and precision, an ONNX file that takes it: the dynamic
export (any shape), a fixed-shape export made on demand, an int8 file (:mod:`.quantize`), or, for
a user's own ``.onnx`` file, that file if it can take the shape (else a clear error: never a resize).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch

from ..checkpoints import CheckpointInfo
from .export import EXPORT_VERSION, OPSET, export_onnx, file_sha256, model_metadata, read_metadata, require
from .base import EngineBase, activation_bytes
from .cache import EngineCache
from .quantize import int8_weights, ort_dynamic_int8

ONNX_NAME = "model.onnx"


def file_info(path: Path, metadata: dict[str, str]) -> CheckpointInfo:
    """CheckpointInfo of an exported file, from its metadata (ValueError if it is not one of ours)."""
    missing = [k for k in ("encoder", "kind") if not metadata.get(k)]
    if missing:
        raise ValueError(
            f"{path}: not a Depth Anything V2 export of dav2_core (its ONNX metadata lacks "
            f"{', '.join(missing)}); export it with `dav2 export`"
        )
    max_depth = float(metadata["max_depth"]) if metadata.get("max_depth") else None
    return CheckpointInfo(metadata["encoder"], metadata["kind"], max_depth, "onnx", torch.float32, path, "metadata")


@dataclass
class OnnxSource:
    """ONNX files for one model. ``model``: the PyTorch network (CPU, fp32) to export from; or ``file``."""

    cache: EngineCache
    model: Any = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.file is None):
            raise ValueError("OnnxSource needs either a model or an ONNX file")
        if self.file is not None:
            self.file = Path(self.file)
            self.metadata = read_metadata(self.file)
            self.checkpoint_info = file_info(self.file, self.metadata)
            self.sha256 = self.metadata.get("checkpoint_sha256") or file_sha256(self.file, remember=True)
        else:
            self.metadata = model_metadata(self.model)
            self.checkpoint_info = getattr(self.model, "checkpoint_info", None)
            self.sha256 = self.metadata["checkpoint_sha256"]
        self.encoder = self.metadata["encoder"]

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) a given fixed-shape file takes; None when any size goes (dynamic file, or exports on demand)."""
        if self.file is None or self.metadata.get("dynamic", "true") == "true" or not self.metadata.get("height"):
            return None
        return int(self.metadata["height"]), int(self.metadata["width"])

    def check_net_size(self, net_size: tuple[int, int]) -> None:
        """ValueError when the given file cannot run ``net_size`` (a fixed-shape export of another size)."""
        fixed = self.fixed_size
        if fixed is not None and tuple(net_size) != fixed:
            raise ValueError(
                f"{self.file} was exported for {fixed[0]}x{fixed[1]} only, but this image needs the network at "
                f"{net_size[0]}x{net_size[1]}; export it with --dynamic (any size), or for that size, or choose "
                "an input size / resolution giving that size"
            )

    def key(self, what: str, shape: str, precision: str, **extra: str) -> dict[str, str]:
        """Cache key fields of a file built from this source."""
        return {
            "backend": what,
            "encoder": self.encoder,
            "shape": shape,
            "precision": precision,
            "checkpoint_sha256": self.sha256,
            "kind": self.metadata["kind"],
            "max_depth": self.metadata.get("max_depth", ""),
            "export_version": EXPORT_VERSION,
            "opset": str(OPSET),
            "torch": torch.__version__,
            **extra,
        }

    def onnx(self, net_size: tuple[int, int] | None = None, precision: str = "fp32") -> Path:
        """An ONNX file for ``net_size`` = (H, W) with any batch (None: the dynamic, any-shape file)."""
        if self.file is not None:
            if net_size is not None:
                self.check_net_size(net_size)
            return self.file
        onnx = require("onnx", "onnx")
        shape = "dynamic" if net_size is None else f"{net_size[0]}x{net_size[1]}"
        key = self.key("onnx", shape, precision, onnx=onnx.__version__)

        def build(folder: Path) -> None:
            if net_size is None:
                export_onnx(self.model, folder / ONNX_NAME, dynamic=True, dtype=precision)
            else:
                export_onnx(self.model, folder / ONNX_NAME, height=net_size[0], width=net_size[1], dtype=precision)

        return self.cache.get(key, build) / ONNX_NAME

    def int8(self, backend: str) -> Path:
        """The dynamic file with its linear-layer weights in int8 for ``backend`` ('onnxruntime' or
        'openvino'; each runtime's own form, see :mod:`.quantize`)."""
        builders = {"onnxruntime": (ort_dynamic_int8, "onnxruntime"), "openvino": (int8_weights, "onnx")}
        if backend not in builders:
            raise ValueError(f"no int8 file for backend {backend!r}; int8 runs on onnxruntime or openvino")
        build_int8, package = builders[backend]
        runtime = require(package, "onnx")
        key = self.key(f"{backend}-int8", "dynamic", "int8", **{package: runtime.__version__})
        if self.file is not None:
            key["source_file_sha256"] = file_sha256(self.file, remember=True)
        # the fp32 file is looked up (or exported) only when the int8 file must be built
        return self.cache.get(key, lambda folder: build_int8(self.onnx(None, "fp32"), folder / ONNX_NAME)) / ONNX_NAME

    def release_model(self) -> None:
        """Drop the PyTorch model once no more exports are needed (frees its host memory)."""
        if self.model is not None and self.file is None:
            self.model = None


def is_onnx_file(source: str | os.PathLike[str]) -> bool:
    return Path(source).suffix.lower() == ".onnx"


class OnnxEngineBase(EngineBase):
    """What every engine that runs an :class:`OnnxSource` shares: what it is, the sizes its file can run,
    working memory per image at its precision (fp16/bf16 activations are 2 bytes, fp32 and int8-weight runs
    4), and a few per-shape runtime objects (sessions, compiled models) kept, least recently used dropped."""

    def __init__(self, source: OnnxSource, device: torch.device, precision: str, name: str = "") -> None:
        self.onnx = source
        self.device = device
        self.precision = precision
        self.input_dtype = torch.float32
        self.checkpoint_info = source.checkpoint_info
        self.source = name or str(source.file or getattr(source.model, "source", ""))

    @staticmethod
    def kept(store: OrderedDict, key: Any, build: Callable[[], Any], limit: int) -> Any:
        """``store[key]``, built by ``build()`` on first use; at most ``limit`` entries stay (oldest dropped)."""
        if key in store:
            store.move_to_end(key)
            return store[key]
        value = store[key] = build()
        while len(store) > limit:
            store.popitem(last=False)
        return value

    def check_net_size(self, net_size: tuple[int, int]) -> None:
        super().check_net_size(net_size)
        self.onnx.check_net_size(net_size)

    def bytes_per_image(self, net_size: tuple[int, int], image_size: tuple[int, int]) -> int:
        elem = 2 if self.precision in ("fp16", "bf16") else 4
        return activation_bytes(self.onnx.encoder, net_size, image_size, elem)
