"""The engine protocol: what ``predict_depth``, ``infer_image`` and the pipeline need from a backend.

An engine turns a network input batch into depth:

    engine(images [B,3,H,W] ImageNet-normalised, H and W multiples of 14, dtype ``engine.input_dtype``,
           on ``engine.device``) -> depth [B,H,W] float32 on ``engine.device``
           (relative inverse depth, or metres for a metric model)

plus what it is (``checkpoint_info``: encoder, kind, max_depth; ``source``: variant id or file), how much
working memory one image needs (for chunk sizing), whether it can run a given network size (a fixed-shape
export cannot), and ``close()`` to free device memory. The PyTorch model is adapted by :func:`as_engine`
so that ``predict_depth(model, ...)`` keeps accepting a plain ``DepthAnythingV2``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..preprocess import prepare_bgr_image
from ..variants import DEFAULT_INPUT_SIZE, ENCODERS, PATCH_SIZE


@runtime_checkable
class Engine(Protocol):
    """A backend that runs the Depth Anything V2 network (see the module docstring for the contract)."""

    backend: str  # "torch" | "onnxruntime" | "openvino" | "tensorrt"
    device: torch.device  # where inputs go and depth comes back
    input_dtype: torch.dtype  # dtype of the network input batch
    source: str  # variant id or checkpoint path the weights came from
    checkpoint_info: Any  # dav2_core.checkpoints.CheckpointInfo (or None for a bare model)

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def bytes_per_image(self, net_size: tuple[int, int], image_size: tuple[int, int]) -> int: ...

    def check_net_size(self, net_size: tuple[int, int]) -> None: ...

    def close(self) -> None: ...


class EngineBase:
    """Shared behaviour of engine classes: the official ``infer_image`` API and context management."""

    backend = "base"
    source = ""
    checkpoint_info: Any = None

    def check_net_size(self, net_size: tuple[int, int]) -> None:
        """Raise ValueError when this engine cannot run ``net_size`` = (h, w); any x14 size is fine here."""
        if net_size[0] % PATCH_SIZE or net_size[1] % PATCH_SIZE:
            raise ValueError(f"network size {net_size} is not a multiple of {PATCH_SIZE}")

    def infer_image(self, raw_image: np.ndarray, input_size: int | None = None) -> np.ndarray:
        """Official contract: BGR uint8 [H,W,3] -> depth [H,W] float32 at the image's size (:func:`infer_image`)."""
        return infer_image(self, raw_image, DEFAULT_INPUT_SIZE if input_size is None else input_size)

    def close(self) -> None:
        """Free what the engine holds (device memory, sessions); the engine is unusable afterwards."""

    def __enter__(self) -> EngineBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TorchEngine(EngineBase):
    """The PyTorch network as an engine (a thin view: the module keeps its own device and weights)."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        weight = model.pretrained.patch_embed.proj.weight
        self.device = weight.device
        self.input_dtype = weight.dtype
        self.source = getattr(model, "source", "")
        self.checkpoint_info = getattr(model, "checkpoint_info", None)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if is_video_model(self.model):
            raise ValueError(single_image_refusal(self.model))
        return self.model(images)

    def bytes_per_image(self, net_size: tuple[int, int], image_size: tuple[int, int]) -> int:
        """Rough peak working memory of one image in a chunk (activations, not weights), in bytes."""
        elem = torch.finfo(self.input_dtype).bits // 8
        return activation_bytes(self.model.encoder, net_size, image_size, elem)


def activation_bytes(encoder: str, net_size: tuple[int, int], image_size: tuple[int, int], elem: int) -> int:
    """Rough peak working memory of one image through the network (activations, not weights), in bytes;
    ``elem``: bytes per element of the compute dtype."""
    spec = ENCODERS[encoder]
    tokens = (net_size[0] // PATCH_SIZE) * (net_size[1] // PATCH_SIZE) + 1
    encoder_bytes = tokens * spec.embed_dim * (4 * 6 + elem * 8)  # fp32 residual + 4 kept maps + qkv/mlp
    head = net_size[0] * net_size[1] * (spec.features // 2 + 32) * elem * 2 + tokens * 64 * spec.features * elem
    io = image_size[0] * image_size[1] * 4 * 6  # input chunk in float32 + upsampled depth
    return int(encoder_bytes + head + io)


def is_video_model(model: Any) -> bool:
    """True for a Video Depth Anything model (clips of frames in; see :mod:`dav2_core.vda`)."""
    info = getattr(model, "checkpoint_info", None)
    return bool(getattr(model, "is_video", False)) or getattr(info, "family", "dav2") == "vda"


def single_image_refusal(model: Any) -> str:
    """The message for a Video Depth Anything model asked for per-image depth (single images, tiles, TTA)."""
    name = getattr(model, "source", "") or "this model"
    return (
        f"{name} is a Video Depth Anything model: it estimates clips of frames (temporally consistent depth), "
        "not single images. Give it a video (the Video Depth node, or `dav2 clip.mp4`) or an IMAGE batch of at "
        "least 2 frames without tiled mode / flip TTA; for single images or tiles load a Depth Anything V2 model."
    )


def as_engine(model: Any) -> Engine:
    """An engine for ``model``: a ``DepthAnythingV2`` module is wrapped; an engine is returned as is."""
    if isinstance(model, torch.nn.Module):
        return TorchEngine(model)
    if isinstance(model, Engine):
        return model
    raise TypeError(
        f"expected a Depth Anything V2 model (dav2_core.load_model / DepthAnythingV2) or an engine, got {type(model).__name__}"
    )


@torch.inference_mode()
def infer_image(model: Any, bgr: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """The official ``infer_image`` contract over any model or engine (the one definition; the model's and the
    engines' ``.infer_image`` methods call it): BGR uint8 [H,W,3] -> depth [H,W] float32 numpy at the image's size."""
    engine = as_engine(model)
    x = torch.from_numpy(prepare_bgr_image(bgr, input_size))[None]
    engine.check_net_size(tuple(x.shape[-2:]))
    x = x.to(device=engine.device, dtype=engine.input_dtype)
    depth = engine(x.contiguous(memory_format=torch.channels_last))
    depth = F.interpolate(depth[:, None], bgr.shape[:2], mode="bilinear", align_corners=True)[0, 0]
    return depth.cpu().numpy()


def describe(model: Any) -> tuple[str, float | None, str]:
    """(kind, max_depth, source) of a model or engine: from its checkpoint info, else from the network itself."""
    info = getattr(model, "checkpoint_info", None)
    source = str(getattr(model, "source", "") or "")
    if info is not None:
        return info.kind, info.max_depth, source
    max_depth = getattr(model, "max_depth", None)
    return ("metric" if max_depth is not None else "relative"), max_depth, source
