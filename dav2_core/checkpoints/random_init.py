"""Seeded random-init Depth Anything V2 checkpoints in every supported on-disk format (no download needed).

For trying the loaders, nodes and CLI where the Hub cannot be reached, and for the tests. The weights
are our own :class:`~dav2_core.model.DepthAnythingV2` initialised like the official model (timm-style
ViT: linear weights N(0, 0.02) clipped at 2 sigma, zero biases; position embedding N(0, 0.02); class
token N(0, 1e-6); layer-scale 1; PyTorch's default uniform init for the convolutions, the last one made
positive so the depth map is never all zero), drawn from a
private generator seeded with ``seed``: the same (encoder, seed) always gives the same tensors, whatever
the global RNG state. Outputs are meaningless but not degenerate. Formats (:data:`FORMATS`):

* ``official-pth``: ``torch.save`` of the plain state dict, like the official release files;
* ``official-safetensors``: official keys, fp32, by :func:`save_checkpoint` (``dav2.kind`` / ``dav2.max_depth``);
* ``kijai-fp32`` / ``kijai-fp16``: official keys in safetensors without our metadata, like kijai's re-uploads;
* ``hf-safetensors``: the HF-transformers on-disk layout plus ``config.json`` beside it (needs transformers).

``family="vda"`` gives a Video Depth Anything model (:class:`~dav2_core.model.VideoDepthAnything`) in the
official formats (``official-pth``, ``official-safetensors``); its motion modules are initialised like the
other linear layers (the official code zero-initialises their output projection, which would make them
inert: random weights are meant to exercise every path), GroupNorms as identity, frame-position tables as
the official sinusoids.

Relative and metric checkpoints share keys and shapes, so ``kind``/``max_depth`` only reach the metadata /
config.json (and are lost in the formats that have neither, as with the real files).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .. import hf_convert
from ..model import DepthAnythingV2, VideoDepthAnything
from ..model.temporal import PositionalEncoding, sinusoid_table
from ..variants import ModelFamily
from .detect import CheckpointInfo
from .write import save_checkpoint

FORMATS = ("official-pth", "official-safetensors", "kijai-fp32", "kijai-fp16", "hf-safetensors")
#: Formats Video Depth Anything is published in (only official keys exist for it).
VDA_FORMATS = ("official-pth", "official-safetensors")


def _clipped_normal_(t: torch.Tensor, std: float, g: torch.Generator) -> None:
    t.normal_(0.0, std, generator=g).clamp_(-2 * std, 2 * std)


@functools.lru_cache(maxsize=4)
def _state_dict(encoder: str, seed: int, family: ModelFamily = "dav2") -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = VideoDepthAnything(encoder) if family == "vda" else DepthAnythingV2(encoder)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():  # registration order: deterministic
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, PositionalEncoding):
                module.pe.copy_(sinusoid_table(module.pe.shape[1], module.pe.shape[2]))
            elif isinstance(module, nn.Linear):
                _clipped_normal_(module.weight, 0.02, g)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):  # PyTorch's default: U(+-1/sqrt(fan_in))
                bound = 1.0 / math.sqrt(module.weight.shape[1] * module.weight[0, 0].numel())
                module.weight.uniform_(-bound, bound, generator=g)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=g)
        vit = model.pretrained
        _clipped_normal_(vit.pos_embed, 0.02, g)
        vit.cls_token.normal_(0.0, 1e-6, generator=g)
        vit.mask_token.zero_()
        for block in vit.blocks:
            block.ls1.gamma.fill_(1.0)
            block.ls2.gamma.fill_(1.0)
        # The head ends in conv(32 -> 1) + ReLU on non-negative features: with mixed-sign weights about half the
        # seeds give an all-zero map. Positive last weights and bias keep every seed's depth alive and varying.
        head = model.head if family == "vda" else model.depth_head
        last = head.scratch.output_conv2[2]
        last.weight.abs_()
        last.bias.abs_()
    return {k: v.detach() for k, v in model.state_dict().items()}


def random_state_dict(encoder: str, seed: int = 0, family: ModelFamily = "dav2") -> dict[str, torch.Tensor]:
    """Official-key fp32 state dict of a seeded random model (cached: do not modify the tensors in place);
    ``family="vda"``: Video Depth Anything."""
    if family not in ("dav2", "vda"):
        raise ValueError(f"family must be 'dav2' or 'vda', got {family!r}")
    return dict(_state_dict(encoder, seed, family))


def write_random_checkpoint(
    path: str | os.PathLike[str],
    encoder: str,
    fmt: str = "official-safetensors",
    seed: int = 0,
    kind: str = "relative",
    max_depth: float | None = None,
    family: ModelFamily = "dav2",
) -> Path:
    """Write ``random_state_dict(encoder, seed)`` to ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    ``hf-safetensors`` also writes ``config.json`` in the same folder. Returns ``path``. ValueError for an
    unknown format or a metric checkpoint without ``max_depth``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    if kind not in ("relative", "metric"):
        raise ValueError(f"kind must be 'relative' or 'metric', got {kind!r}")
    if family == "vda":
        if fmt not in VDA_FORMATS:
            raise ValueError(f"Video Depth Anything checkpoints come in {VDA_FORMATS}, not {fmt!r}")
        if max_depth is not None:
            raise ValueError("a metric Video Depth Anything checkpoint has no max_depth (it outputs metres)")
    elif kind == "metric" and max_depth is None:
        raise ValueError("a metric checkpoint needs max_depth (20 Hypersim, 80 VKITTI)")
    path = Path(path)
    config = hf_convert.hf_config(encoder, kind, max_depth) if fmt == "hf-safetensors" else None  # fail before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = random_state_dict(encoder, seed, family)
    if fmt == "official-pth":
        torch.save(sd, path)
    elif fmt == "official-safetensors":
        depth = max_depth if kind == "metric" else None
        info = CheckpointInfo(encoder, kind, depth, fmt, torch.float32, path, family=family)  # type: ignore[arg-type]
        save_checkpoint(sd, path, info)
    elif fmt in ("kijai-fp32", "kijai-fp16"):
        dtype = torch.float16 if fmt == "kijai-fp16" else torch.float32
        save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, path, metadata={"format": "pt"})
    else:  # hf-safetensors
        save_file(hf_convert.official_to_hf(sd), path, metadata={"format": "pt"})
        config.to_json_file(path.parent / "config.json")
    return path
