"""Seeded random-init Depth Anything V2 checkpoints in every on-disk format (the Hub is unreachable in tests).

Weights come from the official implementation (``depth_anything_v2.dpt.DepthAnythingV2``) built under
``torch.manual_seed(seed)``: its own init (layer-scale gamma 1.0, timm-style ViT init) gives a
non-degenerate depth map. Formats:

* ``official-pth``: ``torch.save`` of the plain state dict, like the official release files;
* ``official-safetensors``: official keys, fp32, written by ``dav2_core.checkpoints.save_checkpoint``
  (carries ``dav2.kind`` / ``dav2.max_depth`` metadata);
* ``kijai-fp32`` / ``kijai-fp16``: official keys in safetensors without our metadata, like kijai's
  ``depth_anything_v2_vits_fp16.safetensors`` re-uploads;
* ``hf-safetensors``: the HF-transformers on-disk layout (the names ``save_pretrained`` writes and the
  Hub's ``*-hf`` repos hold) plus a ``config.json`` next to it.

Relative and metric checkpoints share keys and shapes, so ``kind``/``max_depth`` only change the
metadata / config.json (and are lost in the formats that have neither, as with the real files).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from dav2_core.checkpoints import CheckpointInfo, save_checkpoint
from dav2_core.hf_convert import RENAME_RULES
from dav2_core.variants import ENCODERS

FORMATS = ("official-pth", "official-safetensors", "kijai-fp32", "kijai-fp16", "hf-safetensors")


@functools.lru_cache(maxsize=4)
def _official_state_dict(encoder: str, seed: int) -> dict[str, torch.Tensor]:
    from depth_anything_v2.dpt import DepthAnythingV2

    spec = ENCODERS[encoder]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DepthAnythingV2(encoder, spec.features, list(spec.out_channels))
    return {k: v.detach() for k, v in model.state_dict().items()}


def make_state_dict(encoder: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Official-key fp32 state dict of a seeded random official model (cached; do not modify the tensors)."""
    return dict(_official_state_dict(encoder, seed))


def official_model(encoder: str, seed: int = 0) -> torch.nn.Module:
    """The official model in eval mode holding ``make_state_dict(encoder, seed)``."""
    from depth_anything_v2.dpt import DepthAnythingV2

    spec = ENCODERS[encoder]
    model = DepthAnythingV2(encoder, spec.features, list(spec.out_channels))
    model.load_state_dict(make_state_dict(encoder, seed), strict=True)
    return model.eval()


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)").replace(re.escape("{p}"), r"(?P<p>weight|bias)")
    return re.compile(f"^{pattern}$")


_OFFICIAL_TO_HF = [(_template_regex(off), hf) for hf, off in RENAME_RULES]
_QKV = re.compile(r"^pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def official_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official keys -> HF-transformers on-disk keys (inverse of ``dav2_core.hf_convert``; q/k/v split)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in sd.items():
        if m := _QKV.match(key):
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                out[f"backbone.encoder.layer.{m.group(1)}.attention.attention.{name}.{m.group(2)}"] = part.contiguous()
            continue
        for pattern, template in _OFFICIAL_TO_HF:
            if m := pattern.match(key):
                groups = m.groupdict()
                out[template.replace("{n}", groups.get("n") or "").replace("{p}", groups.get("p") or "")] = tensor
                break
        else:
            raise KeyError(f"no HF name for official key {key}")
    return out


def hf_config(encoder: str, kind: str = "relative", max_depth: float | None = None):
    """``transformers.DepthAnythingConfig`` of an encoder (Dinov2 backbone, out_indices = layer_ids + 1)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    spec = ENCODERS[encoder]
    backbone = Dinov2Config(
        image_size=518,
        patch_size=14,
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


def write_checkpoint(
    path: str | Path,
    encoder: str,
    fmt: str,
    seed: int = 0,
    kind: str = "relative",
    max_depth: float | None = None,
) -> Path:
    """Write ``make_state_dict(encoder, seed)`` to ``path`` in format ``fmt`` (one of FORMATS).

    ``hf-safetensors`` also writes ``config.json`` in the same folder. Returns ``path``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    if kind == "metric" and max_depth is None:
        raise ValueError("a metric checkpoint needs max_depth (20 Hypersim, 80 VKITTI)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = make_state_dict(encoder, seed)
    if fmt == "official-pth":
        torch.save(sd, path)
    elif fmt == "official-safetensors":
        info = CheckpointInfo(encoder, kind, max_depth if kind == "metric" else None, fmt, torch.float32, path)
        save_checkpoint(sd, path, info)
    elif fmt in ("kijai-fp32", "kijai-fp16"):
        dtype = torch.float16 if fmt == "kijai-fp16" else torch.float32
        save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, path, metadata={"format": "pt"})
    else:  # hf-safetensors
        save_file(official_to_hf(sd), path, metadata={"format": "pt"})
        hf_config(encoder, kind, max_depth).to_json_file(path.parent / "config.json")
    return path
