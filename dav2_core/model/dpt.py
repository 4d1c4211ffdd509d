"""DPT decoder of Depth Anything V2: four token maps -> one depth map at 14x the patch grid.

Module and parameter names follow the official checkpoints (`depth_head.*`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import Conv2d32


def _conv3x3(channels_in: int, channels_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=bias)


def _upsample(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Bilinear, align_corners=True; doubles the size when ``size`` is None."""
    if size is None:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x))))."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(features, features)
        self.conv2 = _conv3x3(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu_(self.conv1(F.relu(x)))).add_(x)


class FeatureFusionBlock(nn.Module):
    """Fuses the coarser path with this level's features, then upsamples and projects (1x1).

    The deepest block (refinenet4) has no skip input; its ``resConfUnit1`` exists in every official
    checkpoint but is unused, as in the official model.

    The 1x1 projection runs before the bilinear upsampling: both are linear and the bilinear weights
    sum to one, so the order does not change the result, and the convolution sees 4x fewer pixels.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(
        self, path: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            path = self.resConfUnit1(skip).add_(path)
        path = self.resConfUnit2(path)
        return _upsample(self.out_conv(path), size)


class Scratch(nn.Module):
    """Per-level 3x3 channel unification, the four fusion blocks and the output convolutions."""

    def __init__(self, out_channels: tuple[int, ...], features: int, metric: bool) -> None:
        super().__init__()
        self.layer1_rn = _conv3x3(out_channels[0], features, bias=False)
        self.layer2_rn = _conv3x3(out_channels[1], features, bias=False)
        self.layer3_rn = _conv3x3(out_channels[2], features, bias=False)
        self.layer4_rn = _conv3x3(out_channels[3], features, bias=False)
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features)
        self.output_conv1 = _conv3x3(features, features // 2)
        # Indices 0 and 2 carry the weights (official names); relative ends in ReLU, metric in a sigmoid.
        # The last 1x1 convolution and the activation run in float32 (weights kept float32 when the model
        # is cast): a half-precision output would quantise depth (metric: 2^-8 x max_depth steps in bf16).
        self.output_conv2 = nn.Sequential(
            _conv3x3(features // 2, 32),
            nn.ReLU(inplace=True),
            Conv2d32(32, 1, kernel_size=1),
            nn.Sigmoid() if metric else nn.ReLU(inplace=True),
        )


class DPTHead(nn.Module):
    """Reassembles four token maps at 1/4..1/32-ish scales and fuses them into depth [B,1,14*gh,14*gw]."""

    def __init__(self, embed_dim: int, features: int, out_channels: tuple[int, ...], metric: bool = False) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(embed_dim, c, kernel_size=1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(out_channels, features, metric)

    def forward(self, token_maps: list[torch.Tensor], grid_h: int, grid_w: int) -> torch.Tensor:
        dtype = self.scratch.output_conv1.weight.dtype
        levels = []
        for tokens, project, resize in zip(token_maps, self.projects, self.resize_layers):
            feature_map = tokens.to(dtype).transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], grid_h, grid_w)
            levels.append(resize(project(feature_map)))
        s = self.scratch
        level1, level2, level3, level4 = (
            s.layer1_rn(levels[0]),
            s.layer2_rn(levels[1]),
            s.layer3_rn(levels[2]),
            s.layer4_rn(levels[3]),
        )
        path = s.refinenet4(level4, size=level3.shape[2:])
        path = s.refinenet3(path, level3, size=level2.shape[2:])
        path = s.refinenet2(path, level2, size=level1.shape[2:])
        path = s.refinenet1(path, level1)
        path = _upsample(s.output_conv1(path), (grid_h * 14, grid_w * 14))
        return s.output_conv2(path)
