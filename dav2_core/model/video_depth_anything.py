"""`VideoDepthAnything`: the DINOv2 encoder + a spatio-temporal DPT head (Video Depth Anything, VDA).

The encoder and the DPT blocks are Depth Anything V2's (:mod:`.dinov2`, :mod:`.dpt`); four motion modules
(:mod:`.temporal`) attend across the frames of a window inside the head: on the two deepest reassembled
levels, and after the two deepest fusion blocks. Same state-dict layout as the official
``video_depth_anything.video_depth.VideoDepthAnything`` (``pretrained.*`` / ``head.*``), so official files
load with ``load_state_dict(strict=True)``. The metric VDA model has the same network (ReLU output, metres).

The windowing, key frames and scale/shift alignment of whole clips live in :mod:`dav2_core.vda`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..variants import PATCH_SIZE, VDA_WINDOW, encoder_spec
from .dinov2 import DinoVisionTransformer
from .dpt import DPTHead, _upsample
from .temporal import MotionModule

#: Frames per chunk in the head's last two fusion blocks and output convolutions (per-frame work, the largest
#: maps of the head): the official micro-batch, bounding their memory for a whole window.
HEAD_MICRO_BATCH = 4


class TemporalDPTHead(DPTHead):
    """DPT head with motion modules: token maps of B*T frames -> depth [B*T, 1, 14*gh, 14*gw].

    ``cache`` (streaming): the attention inputs of earlier frames, 2 tensors per motion module in module
    order (8 in all), each [B*h*w, T_cached, C]; the returned states have the same layout for this call's frames.
    """

    def __init__(self, embed_dim: int, features: int, out_channels: tuple[int, ...], num_frames: int) -> None:
        super().__init__(embed_dim, features, out_channels, metric=False)
        self.motion_modules = nn.ModuleList(
            MotionModule(c, num_frames) for c in (out_channels[2], out_channels[3], features, features)
        )

    def forward(  # type: ignore[override]
        self,
        token_maps: list[torch.Tensor],
        grid_h: int,
        grid_w: int,
        frames: int,
        cache: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        dtype = self.scratch.output_conv1.weight.dtype
        levels = []
        for tokens, project, resize in zip(token_maps, self.projects, self.resize_layers):
            feature_map = tokens.to(dtype).transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], grid_h, grid_w)
            levels.append(resize(project(feature_map)))
        per_module = len(cache) // len(self.motion_modules) if cache else 0

        def temporal(i: int, x: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
            sub = cache[i * per_module : (i + 1) * per_module] if per_module else None
            out, new = self.motion_modules[i](x, frames, sub)
            states.extend(new)
            return out

        states: list[torch.Tensor] = []
        s = self.scratch
        level3 = temporal(0, levels[2], states)
        level4 = temporal(1, levels[3], states)
        level1, level2 = s.layer1_rn(levels[0]), s.layer2_rn(levels[1])
        level3, level4 = s.layer3_rn(level3), s.layer4_rn(level4)
        path = temporal(2, s.refinenet4(level4, size=level3.shape[2:]), states)
        path = temporal(3, s.refinenet3(path, level3, size=level2.shape[2:]), states)
        outputs = []
        for start in range(0, path.shape[0], HEAD_MICRO_BATCH):  # per-frame from here: chunked for memory
            part = slice(start, start + HEAD_MICRO_BATCH)
            out = s.refinenet2(path[part], level2[part], size=level1.shape[2:])
            out = s.refinenet1(out, level1[part])
            out = _upsample(s.output_conv1(out), (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE))
            outputs.append(s.output_conv2(out))
        return torch.cat(outputs), states


class VideoDepthAnything(nn.Module):
    """Video Depth Anything network.

    forward: frames [B,T,3,H,W] (ImageNet-normalised, H and W multiples of 14, T <= 32) -> depth [B,T,H,W]
    float32 (relative inverse depth >= 0, or metres for the metric model). :meth:`encode` and :meth:`decode`
    split it so per-frame encoder work can be reused across windows and the streaming mode can pass a cache.
    """

    is_video = True

    def __init__(
        self,
        encoder: str = "vitl",
        features: int | None = None,
        out_channels: Sequence[int] | None = None,
        num_frames: int = VDA_WINDOW,
    ) -> None:
        super().__init__()
        spec = encoder_spec(encoder)
        self.encoder = encoder
        self.spec = spec
        self.num_frames = num_frames
        self.max_depth = None  # metric VDA outputs metres directly
        self.layer_ids = spec.layer_ids
        self.pretrained = DinoVisionTransformer(spec)
        self.head = TemporalDPTHead(
            spec.embed_dim,
            features if features is not None else spec.features,
            tuple(out_channels) if out_channels is not None else spec.out_channels,
            num_frames,
        )

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [N,3,H,W] -> the encoder's four token maps [N, h*w, C] (per frame: reusable across windows)."""
        return self.pretrained.intermediate_tokens(images, self.layer_ids)

    def decode(
        self,
        token_maps: list[torch.Tensor],
        grid: tuple[int, int],
        frames: int,
        cache: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Token maps of B*T frames (T = ``frames``) on a ``grid`` = (h, w) patch grid -> (depth [B*T, 14h, 14w]
        float32, attention states for a streaming cache)."""
        depth, states = self.head(token_maps, grid[0], grid[1], frames, cache)
        return depth.float().squeeze(1), states

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5:
            raise ValueError(f"Video Depth Anything takes frames [B,T,3,H,W], got shape {tuple(frames.shape)}")
        batch, count = frames.shape[:2]
        if count > self.num_frames:
            raise ValueError(f"{count} frames exceed the model's {self.num_frames}-frame window")
        grid = (frames.shape[-2] // PATCH_SIZE, frames.shape[-1] // PATCH_SIZE)
        depth, _ = self.decode(self.encode(frames.flatten(0, 1)), grid, count)
        return depth.unflatten(0, (batch, count))
