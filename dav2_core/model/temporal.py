"""Motion modules of Video Depth Anything: temporal self-attention across the frames of a window.

Each :class:`MotionModule` attends, at every pixel of a feature map independently, across the T frames of a
window (GroupNorm -> linear in -> [2 x (LayerNorm -> temporal attention with sinusoidal frame positions)
-> LayerNorm -> GEGLU feed-forward] -> linear out, plus the input). Module and parameter names follow the
official checkpoints (``head.motion_modules.<i>.temporal_transformer.*``), so official files load strictly;
the frame-position table ``pos_encoder.pe`` is a buffer stored in them.

Layouts: feature maps [B*T, C, H, W] (frames of a clip consecutive); inside, tokens [B*H*W, T, C].
Streaming: :meth:`MotionModule.forward` takes the cached per-frame attention inputs of earlier frames
(``cache``: one [B*H*W, T_cached, C] tensor per attention block) and returns the new frames' ones, so one
frame can be run against a window of earlier frames (the official ``infer_video_depth_one``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Attention heads of every temporal attention, blocks per module, attention layers per block (official).
HEADS = 8
ATTENTION_BLOCKS = 2
NORM_GROUPS = 32


def sinusoid_table(max_len: int, dim: int) -> torch.Tensor:
    """[1, max_len, dim] float32 sinusoidal position table (sin on even channels, cos on odd), as official."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    table = torch.zeros(1, max_len, dim)
    table[0, :, 0::2] = torch.sin(position * div_term)
    table[0, :, 1::2] = torch.cos(position * div_term)
    return table


class PositionalEncoding(nn.Module):
    """Adds the frame-position table to a [S, T, C] sequence (frame t gets row t)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"{x.shape[1]} frames exceed the {self.pe.shape[1]}-frame position table")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(nn.Module):
    """Self-attention across frames (SDPA), queries for the new frames only, keys/values over cache + new."""

    def __init__(self, dim: int, max_len: int, heads: int = HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Identity()])  # [1]: the official (inactive) dropout
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [S, T, C] (normed) -> (attended [S, T, C], x: this call's frames for a later cache)."""
        seq = x if cache is None else torch.cat((cache.to(x.dtype), x), dim=1)
        seq = self.pos_encoder(seq)
        spatial, frames, dim = x.shape
        head_dim = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [S, L, C] -> [S, heads, L, head_dim]
            return t.reshape(spatial, -1, self.heads, head_dim).transpose(1, 2)

        query = split(self.to_q(seq[:, seq.shape[1] - frames :]))
        attended = F.scaled_dot_product_attention(query, split(self.to_k(seq)), split(self.to_v(seq)))
        return self.to_out[0](attended.transpose(1, 2).reshape(spatial, frames, dim)), x


class GEGLU(nn.Module):
    """Linear to 2 x hidden, value * GELU(gate)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU (4x) -> linear; ``net`` indices as official ([1] is the inactive dropout)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class TemporalTransformerBlock(nn.Module):
    """Two pre-norm temporal attentions and a pre-norm GEGLU feed-forward, each with a residual."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(TemporalAttention(dim, max_len) for _ in range(ATTENTION_BLOCKS))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(ATTENTION_BLOCKS))
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, cache: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []
        for i, (attention, norm) in enumerate(zip(self.attention_blocks, self.norms)):
            attended, state = attention(norm(x), cache[i] if cache is not None else None)
            x = x + attended
            states.append(state)
        return x + self.ff(self.ff_norm(x)), states


class TemporalTransformer(nn.Module):
    """GroupNorm -> proj_in -> transformer blocks across frames -> proj_out, plus the input."""

    def __init__(self, channels: int, max_len: int, num_blocks: int = 1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(TemporalTransformerBlock(channels, max_len) for _ in range(num_blocks))
        self.proj_out = nn.Linear(channels, channels)

    def forward(
        self, x: torch.Tensor, frames: int, cache: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B*T, C, H, W] (T = ``frames`` consecutive frames per clip) -> (same shape, attention inputs)."""
        bt, channels, height, width = x.shape
        batch = bt // frames
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(batch, frames, height * width, channels)
        tokens = self.proj_in(tokens.transpose(1, 2).reshape(batch * height * width, frames, channels))
        states: list[torch.Tensor] = []
        per_block = ATTENTION_BLOCKS
        for i, block in enumerate(self.transformer_blocks):
            tokens, block_states = block(tokens, cache[i * per_block : (i + 1) * per_block] if cache else None)
            states.extend(block_states)
        tokens = self.proj_out(tokens).reshape(batch, height, width, frames, channels)
        return tokens.permute(0, 3, 4, 1, 2).reshape(bt, channels, height, width) + x, states


class MotionModule(nn.Module):
    """One temporal module of the head (official ``TemporalModule``: holds ``temporal_transformer``)."""

    def __init__(self, channels: int, max_len: int) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, max_len)

    def forward(
        self, x: torch.Tensor, frames: int, cache: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.temporal_transformer(x, frames, cache)
