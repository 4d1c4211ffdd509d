"""Float32 islands of a half-precision network: parameters that stay float32 when the model is cast.

``model.to(torch.bfloat16)`` (or ``.half()``, or ComfyUI's ``.to(dtype=...)``) would otherwise round
everything, including small tensors whose rounding costs accuracy for no speed: the position embedding
and class token (added to the float32 residual stream), LayerNorm weights, LayerScale gammas, and the
last 1x1 convolution of the head (whose bf16 output quantised metric depth to 2^-8 x max_depth, about
0.31 m at 80 m). Modules listing them in ``float32_params`` keep those parameters float32 through every
cast; device moves and all other conversions still apply.
"""

from __future__ import annotations

from typing import ClassVar
from collections.abc import Callable

import torch
from torch import nn


class Float32Params(nn.Module):
    """Mixin: the parameters named in ``float32_params`` stay float32 whatever dtype the module is cast to."""

    float32_params: ClassVar[tuple[str, ...]] = ()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        if recurse:
            for module in self.children():
                module._apply(fn)
        keep = {id(p) for name, p in self._parameters.items() if name in self.float32_params and p is not None}

        def convert(tensor: torch.Tensor) -> torch.Tensor:
            out = fn(tensor)
            if id(tensor) in keep and out.is_floating_point() and out.dtype != torch.float32:
                # Convert from the original (not from the rounded result): moved, but never rounded.
                return tensor.to(device=out.device, dtype=torch.float32)
            return out

        return super()._apply(convert, recurse=False)


class Conv2d32(Float32Params, nn.Conv2d):
    """A convolution whose weights stay float32 and that runs in their dtype on any input dtype
    (for the cheap last layer of the head: float32 output, no quantised depth)."""

    float32_params = ("weight", "bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))
