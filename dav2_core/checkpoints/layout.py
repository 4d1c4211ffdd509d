"""Key layouts: official (``pretrained.*`` / ``depth_head.*``) vs HF-transformers, and the official key/shape contract.

Video Depth Anything files have official keys too (``pretrained.*`` / ``head.*`` with ``head.motion_modules.*``):
:func:`family_of` tells the two model families apart from the keys.

The HF -> official renaming itself lives in :mod:`dav2_core.hf_convert` (also used by the tests to go
the other way); this module decides which layout a state dict has and what the official one must hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from .. import hf_convert
from ..variants import PATCH_SIZE, POS_EMBED_GRID, VDA_WINDOW, EncoderSpec, ModelFamily
from .read import OFFICIAL_HUB, CheckpointError, location

Layout = Literal["official", "hf"]
#: Head prefix of each family's official keys (the encoder is ``pretrained.*`` in both).
HEAD_PREFIX: dict[str, str] = {"dav2": "depth_head.", "vda": "head."}
VDA_MOTION_PREFIX = "head.motion_modules."


def family_of(keys: list[str] | dict[str, torch.Tensor]) -> ModelFamily | None:
    """'vda' for official Video Depth Anything keys (a ``head.*`` beside ``pretrained.*``), 'dav2' for official
    Depth Anything V2 keys, None for anything else (HF layout, unknown)."""
    has_encoder = any(k.startswith("pretrained.") for k in keys)
    if has_encoder and any(k.startswith(HEAD_PREFIX["dav2"]) for k in keys):
        return "dav2"
    if has_encoder and any(k.startswith(HEAD_PREFIX["vda"]) for k in keys):
        return "vda"
    return None


def to_official_keys(
    state_dict: dict[str, torch.Tensor], path: Path | None = None
) -> tuple[dict[str, torch.Tensor], Layout]:
    """Return (state dict with official keys, detected layout "official" | "hf")."""
    keys = list(state_dict)
    if family_of(keys) is not None:  # official Depth Anything V2 or Video Depth Anything keys
        return dict(state_dict), "official"
    if hf_convert.is_hf_layout(keys):
        try:
            return hf_convert.hf_to_official(state_dict), "hf"
        except ValueError as exc:
            raise CheckpointError(
                f"{location(path)}: HF-transformers layout that cannot be converted: {exc}."
            ) from None
    hint = ""
    if any(k.startswith(("blocks.", "cls_token", "patch_embed.")) for k in keys):
        hint = " It looks like a bare DINOv2 backbone, not a Depth Anything V2 depth model."
    raise CheckpointError(
        f"{location(path)}: unknown checkpoint layout ({len(keys)} tensors, e.g. {keys[:5]}). Expected official "
        f"Depth Anything V2 keys starting with {hf_convert.OFFICIAL_PREFIXES} or HF-transformers keys starting "
        f"with {hf_convert.HF_PREFIXES}.{hint} Use a Depth Anything V2 checkpoint ({OFFICIAL_HUB})."
    )


def expected_shapes(spec: EncoderSpec, family: ModelFamily = "dav2") -> dict[str, tuple[int, ...]]:
    """Every official key of an encoder's depth model with its shape (the strict-load contract); ``family``
    'vda': the Video Depth Anything model (``head.*`` plus its motion modules)."""
    d, hidden, f = spec.embed_dim, spec.mlp_hidden, spec.features
    c0, c1, _, c3 = spec.out_channels  # level 2 keeps its resolution: Identity, no resize weights
    s: dict[str, tuple[int, ...]] = {
        "pretrained.cls_token": (1, 1, d),
        "pretrained.pos_embed": (1, POS_EMBED_GRID * POS_EMBED_GRID + 1, d),
        "pretrained.mask_token": (1, d),
        "pretrained.patch_embed.proj.weight": (d, 3, PATCH_SIZE, PATCH_SIZE),
        "pretrained.patch_embed.proj.bias": (d,),
        "pretrained.norm.weight": (d,),
        "pretrained.norm.bias": (d,),
    }
    mlp = (
        {"w12.weight": (2 * hidden, d), "w12.bias": (2 * hidden,), "w3.weight": (d, hidden), "w3.bias": (d,)}
        if spec.ffn == "swiglu"
        else {"fc1.weight": (hidden, d), "fc1.bias": (hidden,), "fc2.weight": (d, hidden), "fc2.bias": (d,)}
    )
    for i in range(spec.depth):
        b = f"pretrained.blocks.{i}"
        for norm in ("norm1", "norm2"):
            s[f"{b}.{norm}.weight"] = s[f"{b}.{norm}.bias"] = (d,)
        s[f"{b}.attn.qkv.weight"], s[f"{b}.attn.qkv.bias"] = (3 * d, d), (3 * d,)
        s[f"{b}.attn.proj.weight"], s[f"{b}.attn.proj.bias"] = (d, d), (d,)
        s[f"{b}.ls1.gamma"] = s[f"{b}.ls2.gamma"] = (d,)
        s.update({f"{b}.mlp.{k}": v for k, v in mlp.items()})
    h = HEAD_PREFIX[family].rstrip(".")
    for i, c in enumerate(spec.out_channels):
        s[f"{h}.projects.{i}.weight"], s[f"{h}.projects.{i}.bias"] = (c, d, 1, 1), (c,)
        s[f"{h}.scratch.layer{i + 1}_rn.weight"] = (f, c, 3, 3)
        r = f"{h}.scratch.refinenet{i + 1}"
        s[f"{r}.out_conv.weight"], s[f"{r}.out_conv.bias"] = (f, f, 1, 1), (f,)
        for unit in ("resConfUnit1", "resConfUnit2"):
            for conv in ("conv1", "conv2"):
                s[f"{r}.{unit}.{conv}.weight"], s[f"{r}.{unit}.{conv}.bias"] = (f, f, 3, 3), (f,)
    for i, (c, k) in {0: (c0, 4), 1: (c1, 2)}.items():  # transposed-conv upsampling x4, x2
        s[f"{h}.resize_layers.{i}.weight"], s[f"{h}.resize_layers.{i}.bias"] = (c, c, k, k), (c,)
    s[f"{h}.resize_layers.3.weight"], s[f"{h}.resize_layers.3.bias"] = (c3, c3, 3, 3), (c3,)  # stride-2 conv
    s[f"{h}.scratch.output_conv1.weight"], s[f"{h}.scratch.output_conv1.bias"] = (f // 2, f, 3, 3), (f // 2,)
    s[f"{h}.scratch.output_conv2.0.weight"], s[f"{h}.scratch.output_conv2.0.bias"] = (32, f // 2, 3, 3), (32,)
    s[f"{h}.scratch.output_conv2.2.weight"], s[f"{h}.scratch.output_conv2.2.bias"] = (1, 32, 1, 1), (1,)
    if family == "vda":
        for i, c in enumerate((spec.out_channels[2], spec.out_channels[3], f, f)):
            s.update(_motion_module_shapes(f"{VDA_MOTION_PREFIX}{i}.temporal_transformer", c))
    return s


def _motion_module_shapes(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of one Video Depth Anything motion module of width ``c`` (official names)."""
    s: dict[str, tuple[int, ...]] = {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,)}
    for lin in ("proj_in", "proj_out"):
        s[f"{prefix}.{lin}.weight"], s[f"{prefix}.{lin}.bias"] = (c, c), (c,)
    b = f"{prefix}.transformer_blocks.0"
    for i in range(2):
        a = f"{b}.attention_blocks.{i}"
        for qkv in ("to_q", "to_k", "to_v"):
            s[f"{a}.{qkv}.weight"] = (c, c)
        s[f"{a}.to_out.0.weight"], s[f"{a}.to_out.0.bias"] = (c, c), (c,)
        s[f"{a}.pos_encoder.pe"] = (1, VDA_WINDOW, c)
        s[f"{b}.norms.{i}.weight"] = s[f"{b}.norms.{i}.bias"] = (c,)
    s[f"{b}.ff.net.0.proj.weight"], s[f"{b}.ff.net.0.proj.bias"] = (8 * c, c), (8 * c,)
    s[f"{b}.ff.net.2.weight"], s[f"{b}.ff.net.2.bias"] = (c, 4 * c), (c,)
    s[f"{b}.ff_norm.weight"] = s[f"{b}.ff_norm.bias"] = (c,)
    return s
