"""What a checkpoint holds: the encoder from tensor shapes, relative vs metric from one precedence rule.

The model family (Depth Anything V2 or Video Depth Anything: the temporal head's ``head.motion_modules.*``
keys) and the encoder (vits/vitb/vitl/vitg) come from the tensors alone (key names, embedding width, block
count, SwiGLU feed-forward), never from the file name.

Relative vs metric can NOT come from the tensors: a metric checkpoint has exactly the same keys and
shapes as a relative one (its head ends in a Sigmoid scaled by ``max_depth`` instead of a ReLU, and
neither activation has weights). :func:`resolve_kind` is the one place it is decided, for every caller
(``load_checkpoint``, ``load_model``, the CLI, the ComfyUI loader), in this order:

1. ``"override"``: the caller's ``kind=`` / ``max_depth=`` (a bare ``max_depth`` means metric; ``kind="metric"``
   alone takes the max depth from the file);
2. ``"metadata"``: the safetensors metadata ``dav2.kind`` / ``dav2.max_depth`` / ``dav2.dataset``
   (written by :func:`save_checkpoint`);
3. ``"config.json"``: an HF ``config.json`` beside the file (``depth_estimation_type``, ``max_depth``);
4. ``"file name"``: the published name of an official or kijai file of the same encoder
   (``depth_anything_v2_metric_hypersim_vitl.pth``, ``..._fp32.safetensors``): what picking that variant means;
5. ``"default"``: ``"relative"``.

The same rule holds for Video Depth Anything, whose metric model outputs metres directly (no max_depth):
its metric kind carries ``max_depth=None``.

``CheckpointInfo.kind_source`` says which one applied, so callers can warn when it was a guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable, Mapping

import torch

from ..variants import ENCODERS, FAMILY_NAMES, METRIC_MAX_DEPTH, DepthKind, EncoderSpec, ModelFamily, Variant
from .layout import expected_shapes, family_of
from .read import META_DATASET, META_KIND, META_MAX_DEPTH, CheckpointError, known_file_names, location

KindSource = Literal["override", "metadata", "config.json", "file name", "default"]
#: An HF config.json as a dict, None (none beside the file), or a reader called only when it is needed.
Sidecar = Mapping[str, Any] | None | Callable[[], Mapping[str, Any] | None]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds.

    encoder: "vits" | "vitb" | "vitl" | "vitg", from tensor shapes.
    kind / max_depth: "relative" (max_depth None) or "metric" (max_depth in metres); see the module
    docstring for where they come from, ``kind_source`` for which source applied.
    format: "<layout>-<container>": "official-pth", "official-safetensors", "hf-safetensors", "hf-pth",
    or "state-dict" for an in-memory dict.
    dtype: storage dtype of the weights (e.g. torch.float16 for kijai's fp16 files).
    family: "dav2" (Depth Anything V2, per image) or "vda" (Video Depth Anything, clips), from the keys.
    """

    encoder: str
    kind: DepthKind
    max_depth: float | None
    format: str
    dtype: torch.dtype
    path: Path | None = None
    kind_source: KindSource = "default"
    family: ModelFamily = "dav2"

    @property
    def spec(self) -> EncoderSpec:
        return ENCODERS[self.encoder]

    @property
    def is_video(self) -> bool:
        """True for a Video Depth Anything checkpoint (its model takes clips, not single images)."""
        return self.family == "vda"


# ------------------------------------------------------------------------------------------- encoder
def encoder_of(sd: dict[str, torch.Tensor], where: str, family: ModelFamily | None = None) -> EncoderSpec:
    """The encoder whose model an official-key state dict is, with every key and shape checked.

    ``family``: the model family the keys must be (default: whichever :func:`~.layout.family_of` finds)."""
    family = family or family_of(sd) or "dav2"
    model = FAMILY_NAMES[family]
    cls = sd.get("pretrained.cls_token")
    if cls is None or cls.ndim != 3:
        raise CheckpointError(
            f"{where}: no usable 'pretrained.cls_token' tensor, so this is not a complete {model} "
            "checkpoint. Use an official checkpoint file."
        )
    dim = int(cls.shape[-1])
    blocks = {int(k.split(".")[2]) for k in sd if k.startswith("pretrained.blocks.") and k.split(".")[2].isdigit()}
    ffn = "swiglu" if "pretrained.blocks.0.mlp.w12.weight" in sd else "mlp"
    spec = next((s for s in ENCODERS.values() if (s.embed_dim, s.depth, s.ffn) == (dim, len(blocks), ffn)), None)
    if spec is None:
        known = ", ".join(f"{s.name} {s.embed_dim}/{s.depth} blocks/{s.ffn}" for s in ENCODERS.values())
        raise CheckpointError(
            f"{where}: tensor shapes match no {model} encoder (embedding width {dim}, {len(blocks)} "
            f"blocks, {ffn} feed-forward; known: {known}). Use an official checkpoint file."
        )
    want = expected_shapes(spec, family)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [
        f"{k} {tuple(sd[k].shape)} (expected {want[k]})" for k in want if k in sd and tuple(sd[k].shape) != want[k]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{len(lst)} {what}, e.g. {lst[:3]}"
            for what, lst in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong))
            if lst
        ]
        raise CheckpointError(
            f"{where}: does not match the {spec.name} {model} model: {'; '.join(parts)}. "
            "The file is incomplete or from a different model; use an official checkpoint file."
        )
    return spec


# ---------------------------------------------------------------------------------------------- kind
def variant_for_file_name(file_name: str | None, encoder: str, family: ModelFamily = "dav2") -> Variant | None:
    """The published variant a file is named after, if its encoder and family are the ones in the tensors
    (else None: a file renamed to another model's name says nothing about its own kind)."""
    variant = known_file_names().get(file_name) if file_name else None
    return variant if variant is not None and (variant.encoder, variant.family) == (encoder, family) else None


def _parse_depth(value: Any, source: str, where: str) -> float:
    try:
        depth = float(value)
    except (TypeError, ValueError):
        raise CheckpointError(
            f"{where}: max_depth {value!r} from {source} is not a number; pass max_depth= explicitly."
        ) from None
    if not (depth > 0 and depth != float("inf")):
        raise CheckpointError(f"{where}: max_depth {depth} from {source} must be a positive number of metres.")
    return depth


def _file_says(
    metadata: Mapping[str, str], sidecar: Sidecar, file_name: str | None, encoder: str, family: ModelFamily
) -> tuple[Any, Any, str | None, KindSource]:
    """(kind, max_depth, dataset, source) from the first source in the file that speaks."""
    if META_KIND in metadata:
        return metadata[META_KIND], metadata.get(META_MAX_DEPTH), metadata.get(META_DATASET), "metadata"
    config = sidecar() if callable(sidecar) else sidecar
    if config is not None and "depth_estimation_type" in config:
        return config["depth_estimation_type"], config.get("max_depth"), None, "config.json"
    variant = variant_for_file_name(file_name, encoder, family)
    if variant is not None:
        return variant.kind, variant.max_depth, variant.dataset, "file name"
    return "relative", None, None, "default"


def resolve_kind(
    encoder: str,
    metadata: Mapping[str, str] | None = None,
    sidecar: Sidecar = None,
    file_name: str | None = None,
    *,
    kind: str | None = None,
    max_depth: float | None = None,
    where: str = "state dict",
    family: ModelFamily = "dav2",
) -> tuple[DepthKind, float | None, KindSource]:
    """(kind, max_depth in metres or None, source) by the precedence in the module docstring.

    ``family`` 'vda': Video Depth Anything, whose metric model has no max_depth (a given one is refused).

    ``sidecar`` may be a callable: the config.json is then read only when the earlier sources are silent.
    Raises ValueError for contradictory arguments, CheckpointError for unusable file values.
    """
    if kind not in (None, "relative", "metric"):
        raise ValueError(f"kind must be 'relative', 'metric' or None, got {kind!r}")
    if kind == "relative" and max_depth is not None:
        raise ValueError("max_depth only applies to metric checkpoints; drop it or pass kind='metric'")
    if kind == "relative":
        return "relative", None, "override"
    if family == "vda":
        if max_depth is not None:
            raise ValueError(
                "max_depth does not apply to Video Depth Anything: its metric model outputs metres directly; "
                "pass kind='metric' without max_depth (checkpoint_type 'metric-video' in the loader node)"
            )
        if kind == "metric":
            return "metric", None, "override"
        k, _, _, source = _file_says(metadata or {}, sidecar, file_name, encoder, family)
        if k not in ("relative", "metric"):
            raise CheckpointError(
                f"{where}: kind {k!r} from {source} is neither 'relative' nor 'metric'; pass kind= explicitly."
            )
        return k, None, source
    if max_depth is not None:  # a bare max_depth means metric
        return "metric", _parse_depth(max_depth, "override", where), "override"
    k, depth, dataset, source = _file_says(metadata or {}, sidecar, file_name, encoder, family)
    if kind == "metric":  # the caller says metric; the file may still say how deep
        if k != "metric":
            depth = dataset = None
        k, source = "metric", "override"
    elif k not in ("relative", "metric"):
        raise CheckpointError(
            f"{where}: kind {k!r} from {source} is neither 'relative' nor 'metric'; pass kind= explicitly."
        )
    if k == "relative":
        return "relative", None, source
    if depth is None and dataset in METRIC_MAX_DEPTH:
        depth = METRIC_MAX_DEPTH[dataset]
    if depth is None:
        raise CheckpointError(
            f"{where}: metric checkpoint without max_depth ({source} gives none). Pass max_depth=20 for the "
            "Hypersim (indoor) models or max_depth=80 for the VKITTI (outdoor) ones."
        )
    return "metric", _parse_depth(depth, source, where), source


def _storage_dtype(sd: dict[str, torch.Tensor]) -> torch.dtype:
    counts = Counter(t.dtype for t in sd.values() if t.is_floating_point())
    return counts.most_common(1)[0][0] if counts else torch.float32


def detect_variant(
    sd_official: dict[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    sidecar_config: Sidecar = None,
    *,
    kind: str | None = None,
    max_depth: float | None = None,
    path: Path | None = None,
    fmt: str = "state-dict",
) -> CheckpointInfo:
    """Recognise an official-key state dict: family from the keys, encoder from shapes (every key and shape
    checked), kind by :func:`resolve_kind` (``path``'s file name is the "file name" source)."""
    where = location(path)
    family = family_of(sd_official) or "dav2"
    spec = encoder_of(sd_official, where, family)
    k, depth, source = resolve_kind(
        spec.name,
        metadata,
        sidecar_config,
        path.name if path is not None else None,
        kind=kind,
        max_depth=max_depth,
        where=where,
        family=family,
    )
    return CheckpointInfo(spec.name, k, depth, fmt, _storage_dtype(sd_official), path, source, family)
