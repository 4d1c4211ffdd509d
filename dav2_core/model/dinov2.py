"""DINOv2 ViT backbone (patch 14, learned 37x37 position grid), as used by Depth Anything V2.

Parameter names follow the official checkpoints (`pretrained.*`), so an official state dict loads with
``strict=True``. Inference only: no dropout, drop-path, masking or register tokens.

Precision: the residual stream, LayerNorms, LayerScale and the position-embedding resize run in float32;
linear layers run in the dtype of their weights (fp16/bf16 when the model was cast), with SDPA attention.
The small parameters (position embedding, class token, LayerNorm weights, LayerScale gammas) stay float32
when the model is cast (``precision.Float32Params``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..variants import PATCH_SIZE, EncoderSpec
from .precision import Float32Params


class LayerNorm32(Float32Params, nn.LayerNorm):
    """LayerNorm computed in float32 whatever the dtype of its input; float32 weights; returns float32."""

    float32_params = ("weight", "bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Apply ``layer`` in its weight dtype (the float32 residual stream is cast down at the matmul)."""
    return F.linear(x.to(layer.weight.dtype), layer.weight, layer.bias)


class PatchEmbed(nn.Module):
    """[B,3,H,W] -> [B, H/14 * W/14, C] tokens by a stride-14 convolution."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(images.to(self.proj.weight.dtype))
        return tokens.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection, through SDPA."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = _linear(self.qkv, x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        attended = F.scaled_dot_product_attention(query, key, value)
        return _linear(self.proj, attended.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (vits/vitb/vitl)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(self.fc2, F.gelu(_linear(self.fc1, x)))


class SwiGLU(nn.Module):
    """w12 -> SiLU(gate) * value -> w3 (vitg)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = _linear(self.w12, x).chunk(2, dim=-1)
        return _linear(self.w3, F.silu(gate) * value)


class LayerScale(Float32Params, nn.Module):
    """Per-channel scale of a residual branch, applied in float32 (the residual stream's dtype)."""

    float32_params = ("gamma",)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self.gamma.float()


class Block(nn.Module):
    """Pre-norm transformer block with layer scale; the residual stream stays float32."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = LayerNorm32(dim, eps=1e-6)
        self.attn = Attention(dim, spec.num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = LayerNorm32(dim, eps=1e-6)
        self.mlp = SwiGLU(dim, spec.mlp_hidden) if spec.ffn == "swiglu" else Mlp(dim, spec.mlp_hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(Float32Params, nn.Module):
    """DINOv2 encoder returning normalised patch tokens of selected blocks."""

    float32_params = ("cls_token", "pos_embed", "mask_token")

    def __init__(self, spec: EncoderSpec, pos_grid: int = 37) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.embed_dim = dim
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid * pos_grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training-time only; kept so official files load strictly
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.depth))
        self.norm = LayerNorm32(dim, eps=1e-6)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """[1, 1 + grid_h*grid_w, C] float32, resized exactly as official DINOv2.

        Official DINOv2 resizes the 37x37 grid by bicubic interpolation with
        ``scale_factor=((grid_h + 0.1) / 37, (grid_w + 0.1) / 37)`` (the 0.1 avoids floating-point
        truncation), and uses the grid unchanged for a square input of the trained size.
        """
        pos = self.pos_embed.float()
        trained = pos.shape[1] - 1
        if grid_h * grid_w == trained and grid_h == grid_w:
            return pos
        side = int(math.sqrt(trained))
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        patch_pos = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        scale = ((grid_h + 0.1) / math.sqrt(trained), (grid_w + 0.1) / math.sqrt(trained))
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=False)
        if patch_pos.shape[-2:] != (grid_h, grid_w):
            raise RuntimeError(
                f"position-embedding resize gave {tuple(patch_pos.shape[-2:])}, expected {(grid_h, grid_w)}"
            )
        return torch.cat((cls_pos, patch_pos.flatten(2).transpose(1, 2)), dim=1)

    def intermediate_tokens(self, images: torch.Tensor, layer_ids: tuple[int, ...]) -> list[torch.Tensor]:
        """images [B,3,H,W] (H, W multiples of 14) -> per selected block, normed patch tokens [B, N, C] float32."""
        grid_h, grid_w = images.shape[-2] // PATCH_SIZE, images.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(images).float()
        tokens = torch.cat((self.cls_token.float().expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.position_embedding(grid_h, grid_w)
        outputs = []
        for index, block in enumerate(self.blocks[: max(layer_ids) + 1]):
            tokens = block(tokens)
            if index in layer_ids:
                outputs.append(self.norm(tokens)[:, 1:])
        return outputs
