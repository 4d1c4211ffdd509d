"""Key conversion from the HF-transformers ``DepthAnythingForDepthEstimation`` layout to the official one.

Official layout: ``pretrained.*`` (DINOv2) + ``depth_head.*`` (DPT), fused ``attn.qkv``.
HF layout: ``backbone.*`` + ``neck.*`` + ``head.*`` with separate query/key/value projections.

Two HF spellings exist and both are accepted:

* on disk (every ``model.safetensors`` on the Hub, and what ``save_pretrained`` writes):
  ``attention.attention.{query,key,value}``, ``attention.output.dense``, ``mlp.weights_in/out``;
* in memory in transformers >= 5 (``model.state_dict()``): ``attention.{q,k,v}_proj``,
  ``attention.o_proj``, ``mlp.{gate,up,down}_proj``.

The fusion blocks are stored in reverse order: HF ``neck.fusion_stage.layers.{j}`` is official
``depth_head.scratch.refinenet{4-j}``.

The other way (:func:`official_to_hf`, :func:`hf_config`) writes the HF on-disk layout, for the
random-init checkpoints (:mod:`dav2_core.checkpoints.random_init`) and the cross-checks in the tests.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .variants import DEFAULT_INPUT_SIZE, ENCODERS, PATCH_SIZE

#: Top-level prefixes that identify each layout.
OFFICIAL_PREFIXES = ("pretrained.", "depth_head.")
HF_PREFIXES = ("backbone.", "neck.", "head.")

_PARAM = "{p}"  # weight | bias
_BLOCK = "{n}"  # transformer block / DPT level index


def _rules() -> list[tuple[str, str]]:
    """(HF on-disk name, official name) templates; ``{n}`` = index, ``{p}`` = weight|bias."""
    layer, block = "backbone.encoder.layer.{n}", "pretrained.blocks.{n}"
    rules = [
        ("backbone.embeddings.cls_token", "pretrained.cls_token"),
        ("backbone.embeddings.mask_token", "pretrained.mask_token"),
        ("backbone.embeddings.position_embeddings", "pretrained.pos_embed"),
        ("backbone.embeddings.patch_embeddings.projection.{p}", "pretrained.patch_embed.proj.{p}"),
        (f"{layer}.norm1.{{p}}", f"{block}.norm1.{{p}}"),
        (f"{layer}.norm2.{{p}}", f"{block}.norm2.{{p}}"),
        (f"{layer}.attention.output.dense.{{p}}", f"{block}.attn.proj.{{p}}"),
        (f"{layer}.layer_scale1.lambda1", f"{block}.ls1.gamma"),
        (f"{layer}.layer_scale2.lambda1", f"{block}.ls2.gamma"),
        (f"{layer}.mlp.fc1.{{p}}", f"{block}.mlp.fc1.{{p}}"),
        (f"{layer}.mlp.fc2.{{p}}", f"{block}.mlp.fc2.{{p}}"),
        (f"{layer}.mlp.weights_in.{{p}}", f"{block}.mlp.w12.{{p}}"),  # SwiGLU (vitg)
        (f"{layer}.mlp.weights_out.{{p}}", f"{block}.mlp.w3.{{p}}"),
        ("backbone.layernorm.{p}", "pretrained.norm.{p}"),
        ("neck.reassemble_stage.layers.{n}.projection.{p}", "depth_head.projects.{n}.{p}"),
        ("neck.reassemble_stage.layers.{n}.resize.{p}", "depth_head.resize_layers.{n}.{p}"),
        ("head.conv1.{p}", "depth_head.scratch.output_conv1.{p}"),
        ("head.conv2.{p}", "depth_head.scratch.output_conv2.0.{p}"),
        ("head.conv3.{p}", "depth_head.scratch.output_conv2.2.{p}"),
    ]
    for i in range(4):
        rules.append((f"neck.convs.{i}.weight", f"depth_head.scratch.layer{i + 1}_rn.weight"))
        hf, off = f"neck.fusion_stage.layers.{i}", f"depth_head.scratch.refinenet{4 - i}"
        rules.append((f"{hf}.projection.{{p}}", f"{off}.out_conv.{{p}}"))
        for r in (1, 2):
            for c in (1, 2):
                rules.append((f"{hf}.residual_layer{r}.convolution{c}.{{p}}", f"{off}.resConfUnit{r}.conv{c}.{{p}}"))
    return rules


#: (HF on-disk template, official template) pairs; exactly invertible (used both ways by the tests).
RENAME_RULES: tuple[tuple[str, str], ...] = tuple(_rules())

#: transformers >= 5 in-memory names -> the on-disk names of RENAME_RULES.
_V5_ALIASES = (
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
    (re.compile(r"\.mlp\.down_proj\."), ".mlp.weights_out."),
)

# Projections that the official model keeps fused: (suffix group regex, fused official template, part order).
_QKV = re.compile(
    r"^backbone\.encoder\.layer\.(\d+)\.attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$"
)
_SWIGLU_IN = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.mlp\.(gate|up)_proj\.(weight|bias)$")


def _compile(template: str) -> re.Pattern[str]:
    pattern = (
        re.escape(template).replace(re.escape(_BLOCK), r"(?P<n>\d+)").replace(re.escape(_PARAM), r"(?P<p>weight|bias)")
    )
    return re.compile(f"^{pattern}$")


_HF_TO_OFFICIAL = [(_compile(hf), off) for hf, off in RENAME_RULES]
_OFFICIAL_TO_HF = [(_compile(off), hf) for hf, off in RENAME_RULES]
_OFFICIAL_QKV = re.compile(r"^pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def _fill(template: str, m: re.Match[str]) -> str:
    groups = m.groupdict()
    return template.replace(_BLOCK, groups.get("n") or "").replace(_PARAM, groups.get("p") or "")


def is_hf_layout(keys: list[str]) -> bool:
    """True when the keys look like an HF-transformers Depth Anything state dict."""
    return any(k.startswith("backbone.embeddings.") for k in keys) and any(k.startswith("neck.") for k in keys)


def hf_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/k/v, SwiGLU gate/up) an HF Depth Anything state dict into official keys.

    Raises ValueError listing the keys that have no official counterpart, or an incomplete q/k/v set.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    swiglu: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        if m := _QKV.match(key):
            part = (m.group(2) or m.group(3))[0]  # q | k | v
            qkv.setdefault((m.group(1), m.group(4)), {})[part] = tensor
            continue
        if m := _SWIGLU_IN.match(key):
            swiglu.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = tensor
            continue
        name = key
        for pattern, replacement in _V5_ALIASES:
            name = pattern.sub(replacement, name)
        for pattern, template in _HF_TO_OFFICIAL:
            if m := pattern.match(name):
                out[_fill(template, m)] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{len(unknown)} HF key(s) have no Depth Anything V2 counterpart, e.g. {unknown[:5]}")
    for (n, p), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"block {n} attention {p}: found only {sorted(parts)} of the q/k/v projections")
        out[f"pretrained.blocks.{n}.attn.qkv.{p}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    for (n, p), parts in swiglu.items():
        if set(parts) != {"gate", "up"}:
            raise ValueError(f"block {n} SwiGLU {p}: found only {sorted(parts)} of gate_proj/up_proj")
        out[f"pretrained.blocks.{n}.mlp.w12.{p}"] = torch.cat([parts["gate"], parts["up"]], dim=0)
    return out


def official_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official keys -> HF-transformers on-disk keys (the inverse of :func:`hf_to_official`; q/k/v split).

    Only the ``mlp`` feed-forward is written (vits/vitb/vitl); KeyError for a key with no HF name.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in sd.items():
        if m := _OFFICIAL_QKV.match(key):
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                out[f"backbone.encoder.layer.{m.group(1)}.attention.attention.{name}.{m.group(2)}"] = part.contiguous()
            continue
        for pattern, template in _OFFICIAL_TO_HF:
            if m := pattern.match(key):
                out[_fill(template, m)] = tensor
                break
        else:
            raise KeyError(f"no HF name for official key {key}")
    return out


def hf_config(encoder: str, kind: str = "relative", max_depth: float | None = None) -> Any:
    """``transformers.DepthAnythingConfig`` of an encoder (Dinov2 backbone, out_indices = layer_ids + 1).

    Needs ``transformers`` (imported here only); ``config.to_json_file(path)`` writes the HF config.json.
    """
    try:
        from transformers import DepthAnythingConfig, Dinov2Config
    except ImportError as exc:
        raise ImportError(
            f"writing an HF config.json needs the transformers package ({exc}); pip install transformers"
        ) from None

    spec = ENCODERS[encoder]
    backbone = Dinov2Config(
        image_size=DEFAULT_INPUT_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=spec.embed_dim,
        num_attention_heads=spec.num_heads,
        num_hidden_layers=spec.depth,
        mlp_ratio=4,
        use_swiglu_ffn=spec.ffn == "swiglu",
        layerscale_value=1.0,
        out_indices=[i + 1 for i in spec.layer_ids],
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=spec.embed_dim,
        neck_hidden_sizes=list(spec.out_channels),
        fusion_hidden_size=spec.features,
        depth_estimation_type=kind,
        # transformers 5 types max_depth as int (the Hub configs hold 20 / 80)
        max_depth=(int(max_depth) if float(max_depth).is_integer() else max_depth) if kind == "metric" else 1,
    )
