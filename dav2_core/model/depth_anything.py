"""`DepthAnythingV2`: DINOv2 encoder + DPT head, a drop-in for the official class and checkpoints."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..variants import PATCH_SIZE, encoder_spec
from .dinov2 import DinoVisionTransformer
from .dpt import DPTHead


class DepthAnythingV2(nn.Module):
    """Depth Anything V2 network.

    Same constructor and state-dict layout as the official ``depth_anything_v2.dpt.DepthAnythingV2``
    (and, with ``max_depth``, as the official metric model), so official files load with
    ``load_state_dict(strict=True)``.

    forward: images [B,3,H,W] (ImageNet-normalised, H and W multiples of 14) -> depth [B,H,W] float32:
    relative inverse depth (>= 0), or metres in [0, max_depth] for a metric model.
    """

    def __init__(
        self,
        encoder: str = "vitl",
        features: int | None = None,
        out_channels: Sequence[int] | None = None,
        max_depth: float | None = None,
    ) -> None:
        super().__init__()
        spec = encoder_spec(encoder)
        self.encoder = encoder
        self.spec = spec
        self.max_depth = max_depth
        self.layer_ids = spec.layer_ids
        self.pretrained = DinoVisionTransformer(spec)
        self.depth_head = DPTHead(
            spec.embed_dim,
            features if features is not None else spec.features,
            tuple(out_channels) if out_channels is not None else spec.out_channels,
            metric=max_depth is not None,
        )

    @property
    def is_metric(self) -> bool:
        return self.max_depth is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = images.shape[-2] // PATCH_SIZE, images.shape[-1] // PATCH_SIZE
        token_maps = self.pretrained.intermediate_tokens(images, self.layer_ids)
        depth = self.depth_head(token_maps, grid_h, grid_w).float().squeeze(1)
        return depth * self.max_depth if self.is_metric else depth

    @torch.inference_mode()
    def infer_image(self, raw_image: np.ndarray, input_size: int = 518) -> np.ndarray:
        """Official contract: BGR uint8 [H,W,3] -> depth [H,W] float32 at the image's size."""
        from ..engines.base import infer_image  # the one definition (engines never import the model)

        return infer_image(self, raw_image, input_size)
