"""Read, recognise and write Depth Anything V2 checkpoints, whatever their on-disk format.

Formats read: official ``.pth`` (a pickled state dict, loaded with ``torch.load(weights_only=True)``:
nothing in a checkpoint is ever executed), safetensors with official keys (ours, and kijai's
``depth_anything_v2_vit?_fp16/fp32.safetensors``), HF-transformers ``model.safetensors`` /
``pytorch_model.bin`` (keys converted by :mod:`dav2_core.hf_convert`). Everything is returned with the
official keys (``pretrained.*`` / ``depth_head.*``), ready for ``DepthAnythingV2.load_state_dict(strict=True)``.

What can and cannot be told from a file:

* The encoder (vits/vitb/vitl/vitg) comes from the tensor shapes alone (embedding width, block count,
  SwiGLU feed-forward), never from the file name.
* Relative vs metric can NOT come from the tensors: a metric checkpoint has exactly the same keys and
  shapes as a relative one (its head ends in a Sigmoid scaled by ``max_depth`` instead of a ReLU, and
  neither activation has weights). It is therefore taken, in this order, from the caller
  (``kind=`` / ``max_depth=``), the safetensors metadata (``dav2.kind``, ``dav2.max_depth``,
  ``dav2.dataset`` — written by :func:`save_checkpoint`), an HF ``config.json`` next to the file
  (``depth_estimation_type``, ``max_depth``), and otherwise defaults to ``"relative"``.
  ``CheckpointInfo.kind_source`` says which one applied, so callers can warn when it was a guess.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import hf_convert
from .variants import ENCODERS, METRIC_MAX_DEPTH, PATCH_SIZE, POS_EMBED_GRID, VARIANTS, DepthKind, EncoderSpec

Layout = Literal["official", "hf"]
KindSource = Literal["override", "metadata", "config.json", "default"]

#: Metadata keys our own safetensors files carry (all values are strings, as safetensors requires).
META_ENCODER, META_KIND, META_MAX_DEPTH, META_DATASET = "dav2.encoder", "dav2.kind", "dav2.max_depth", "dav2.dataset"
#: Wrapper keys training scripts put around a state dict.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_OFFICIAL_HUB = "https://huggingface.co/depth-anything"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode that starts every pickle of protocol >= 2 (legacy torch.save too)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file, the cause and what to do."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds.

    encoder: "vits" | "vitb" | "vitl" | "vitg", from tensor shapes.
    kind / max_depth: "relative" (max_depth None) or "metric" (max_depth in metres); see the module
    docstring for where they come from, ``kind_source`` for which source applied.
    format: "<layout>-<container>": "official-pth", "official-safetensors", "hf-safetensors", "hf-pth",
    or "state-dict" for an in-memory dict.
    dtype: storage dtype of the weights (e.g. torch.float16 for kijai's fp16 files).
    """

    encoder: str
    kind: DepthKind
    max_depth: float | None
    format: str
    dtype: torch.dtype
    path: Path | None = None
    kind_source: KindSource = "default"

    @property
    def spec(self) -> EncoderSpec:
        return ENCODERS[self.encoder]


# --------------------------------------------------------------------------------------------- reading
def _where(path: Path | None) -> str:
    return str(path) if path is not None else "state dict"


def _download_hint(path: Path) -> str:
    """Where a good copy of this file can be had (the file name only picks the link; it never decides the model)."""
    from .hub import local_filenames  # lazy: huggingface_hub is only needed for downloads

    for variant in VARIANTS.values():
        if variant.hf_repo and path.name in local_filenames(variant):
            return f"https://huggingface.co/{variant.hf_repo}"
    return f"{_OFFICIAL_HUB} (or wherever it came from)"


def _corrupted(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: the checkpoint is truncated or corrupted ({detail}). "
        f"Delete it and download it again from {_download_hint(path)}."
    )


def _sniff(path: Path) -> Literal["zip", "pickle", "safetensors"]:
    """Container type from the first bytes (the extension is not trusted)."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"{path}: the file is empty (0 bytes), so a download or copy was interrupted. "
            f"Delete it and download it again from {_download_hint(path)}."
        )
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head[0] == _PICKLE_MAGIC:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] + 8 <= size:
        return "safetensors"
    if len(head) == 9 and head[8:9] == b"{":
        raise _corrupted(path, "the safetensors header runs past the end of the file")
    raise _corrupted(path, "its bytes are neither a PyTorch checkpoint nor a safetensors file")


def _resolve_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():  # an HF model folder
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{p}: is a folder without model.safetensors or pytorch_model.bin; pass the checkpoint file itself.")
    if not p.is_file():
        raise CheckpointError(
            f"{p}: no such checkpoint file. Check the path, or download the file (official files: {_OFFICIAL_HUB})."
        )
    return p


def _torch_load(path: Path, kind: str) -> Any:
    try:
        if path.suffix == ".safetensors":  # torch.load would hand such a path to safetensors: open it ourselves
            with path.open("rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
        # mmap keeps a multi-GB file out of RAM until used; only the zip format supports it.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" not in text:
            raise _corrupted(path, text.strip().splitlines()[0] if text.strip() else type(exc).__name__) from None
        detail = text.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
        detail = " ".join(detail.split())[:200]
        raise CheckpointError(
            f"{path}: refused to load: the pickle in this file needs to run code ({detail}), and this loader "
            "refuses to execute code from a checkpoint (nothing was executed). Genuine Depth Anything V2 "
            f"checkpoints hold only tensors; get a clean copy or a .safetensors file from {_download_hint(path)}."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, struct.error, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _corrupted(path, msg[:200]) from None


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside {'model': sd} / {'state_dict': sd} wrappers; strip 'module.' prefixes."""
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)]
        if not inner:
            top = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(
                f"{path}: holds no state dict of tensors (top level: {top}). "
                "Pass a Depth Anything V2 checkpoint (.pth or .safetensors)."
            )
        obj = inner[0]
    else:
        raise CheckpointError(f"{path}: state dict nested too deeply inside wrapper dicts; re-save the plain state dict.")
    sd: dict[str, torch.Tensor] = {str(k): v for k, v in obj.items()}
    while sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, keys as stored (see :func:`to_official_keys`), on the CPU.

    ``.pth/.pt/.bin`` go through ``torch.load(weights_only=True)`` (memory-mapped for the zip format);
    ``.safetensors`` through safetensors. The container is recognised from the bytes, not the extension.
    Raises CheckpointError for a missing, empty, truncated or corrupted file, or a pickle that needs code.
    """
    p = _resolve_path(path)
    kind = _sniff(p)
    if kind == "safetensors":
        try:
            return load_file(p, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise _corrupted(p, str(exc)[:200]) from None
    return _unwrap(_torch_load(p, kind), p)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors header metadata (``{}`` for pickled checkpoints or files without any)."""
    p = _resolve_path(path)
    if _sniff(p) != "safetensors":
        return {}
    try:
        with safe_open(p, framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupted(p, str(exc)[:200]) from None


def read_sidecar_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An HF ``config.json`` next to the checkpoint, if it describes a Depth Anything model (else None).

    Unreadable JSON and configs of other model types are ignored: they say nothing about this file.
    """
    cfg_path = _resolve_path(path).parent / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and cfg.get("model_type") == "depth_anything" else None


# ----------------------------------------------------------------------------------------- layout
def to_official_keys(
    state_dict: dict[str, torch.Tensor], path: Path | None = None
) -> tuple[dict[str, torch.Tensor], Layout]:
    """Return (state dict with official keys, detected layout "official" | "hf")."""
    keys = list(state_dict)
    if any(k.startswith(hf_convert.OFFICIAL_PREFIXES[0]) for k in keys) and any(
        k.startswith(hf_convert.OFFICIAL_PREFIXES[1]) for k in keys
    ):
        return dict(state_dict), "official"
    if hf_convert.is_hf_layout(keys):
        try:
            return hf_convert.hf_to_official(state_dict), "hf"
        except ValueError as exc:
            raise CheckpointError(f"{_where(path)}: HF-transformers layout that cannot be converted: {exc}.") from None
    hint = ""
    if any(k.startswith(("blocks.", "cls_token", "patch_embed.")) for k in keys):
        hint = " It looks like a bare DINOv2 backbone, not a Depth Anything V2 depth model."
    raise CheckpointError(
        f"{_where(path)}: unknown checkpoint layout ({len(keys)} tensors, e.g. {keys[:5]}). Expected official "
        f"Depth Anything V2 keys starting with {hf_convert.OFFICIAL_PREFIXES} or HF-transformers keys starting "
        f"with {hf_convert.HF_PREFIXES}.{hint} Use a Depth Anything V2 checkpoint ({_OFFICIAL_HUB})."
    )


def expected_shapes(spec: EncoderSpec) -> dict[str, tuple[int, ...]]:
    """Every official key of an encoder's depth model with its shape (the strict-load contract)."""
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
    h = "depth_head"
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
    return s


# -------------------------------------------------------------------------------------- detection
def _detect_encoder(sd: dict[str, torch.Tensor], where: str) -> EncoderSpec:
    cls = sd.get("pretrained.cls_token")
    if cls is None or cls.ndim != 3:
        raise CheckpointError(
            f"{where}: no usable 'pretrained.cls_token' tensor, so this is not a complete Depth Anything V2 "
            "checkpoint. Use an official checkpoint file."
        )
    dim = int(cls.shape[-1])
    blocks = {int(k.split(".")[2]) for k in sd if k.startswith("pretrained.blocks.") and k.split(".")[2].isdigit()}
    ffn = "swiglu" if "pretrained.blocks.0.mlp.w12.weight" in sd else "mlp"
    for spec in ENCODERS.values():
        if (spec.embed_dim, spec.depth, spec.ffn) == (dim, len(blocks), ffn):
            return spec
    known = ", ".join(f"{s.name} {s.embed_dim}/{s.depth} blocks/{s.ffn}" for s in ENCODERS.values())
    raise CheckpointError(
        f"{where}: tensor shapes match no Depth Anything V2 encoder (embedding width {dim}, {len(blocks)} "
        f"blocks, {ffn} feed-forward; known: {known}). Use an official checkpoint file."
    )


def _check_shapes(sd: dict[str, torch.Tensor], spec: EncoderSpec, where: str) -> None:
    want = expected_shapes(spec)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {want[k]})" for k in want if k in sd and tuple(sd[k].shape) != want[k]]
    if missing or unexpected or wrong:
        parts = [
            f"{len(lst)} {what}, e.g. {lst[:3]}"
            for what, lst in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong))
            if lst
        ]
        raise CheckpointError(
            f"{where}: does not match the {spec.name} Depth Anything V2 model: {'; '.join(parts)}. "
            "The file is incomplete or from a different model; use an official checkpoint file."
        )


def _parse_depth(value: Any, source: str, where: str) -> float:
    try:
        depth = float(value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: max_depth {value!r} from {source} is not a number; pass max_depth= explicitly.") from None
    if not (depth > 0 and depth != float("inf")):
        raise CheckpointError(f"{where}: max_depth {depth} from {source} must be a positive number of metres.")
    return depth


def _resolve_kind(
    metadata: dict[str, str],
    sidecar: dict[str, Any] | None,
    kind: str | None,
    max_depth: float | None,
    where: str,
) -> tuple[DepthKind, float | None, KindSource]:
    if kind not in (None, "relative", "metric"):
        raise ValueError(f"kind must be 'relative', 'metric' or None, got {kind!r}")
    if kind == "relative" and max_depth is not None:
        raise ValueError("max_depth only applies to metric checkpoints; drop it or pass kind='metric'")
    # What the file says: safetensors metadata first, then an HF config.json next to it.
    if META_KIND in metadata:
        file_says = (metadata[META_KIND], metadata.get(META_MAX_DEPTH), metadata.get(META_DATASET), "metadata")
    elif sidecar is not None and "depth_estimation_type" in sidecar:
        file_says = (sidecar["depth_estimation_type"], sidecar.get("max_depth"), None, "config.json")
    else:
        file_says = ("relative", None, None, "default")
    k, depth, dataset, source = file_says
    if kind is not None or max_depth is not None:  # the caller wins; a bare max_depth means metric
        if k != "metric":
            depth = dataset = None
        k, source = kind or "metric", "override"
        depth = max_depth if max_depth is not None else depth
    elif k not in ("relative", "metric"):
        raise CheckpointError(f"{where}: kind {k!r} from {source} is neither 'relative' nor 'metric'; pass kind= explicitly.")
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
    metadata: dict[str, str] | None = None,
    sidecar_config: dict[str, Any] | None = None,
    *,
    kind: str | None = None,
    max_depth: float | None = None,
    path: Path | None = None,
    fmt: str = "state-dict",
) -> CheckpointInfo:
    """Recognise an official-key state dict.

    The encoder comes from tensor shapes (``pretrained.cls_token`` width, block count, SwiGLU keys) and
    every key and shape is then checked against that encoder's model. Relative vs metric cannot be seen
    in the tensors (identical keys and shapes); precedence: ``kind``/``max_depth`` arguments (a bare
    ``max_depth`` means metric), ``metadata`` (``dav2.kind``, ``dav2.max_depth``, ``dav2.dataset``),
    ``sidecar_config`` (HF ``depth_estimation_type``, ``max_depth``), else "relative".
    """
    where = _where(path)
    spec = _detect_encoder(sd_official, where)
    _check_shapes(sd_official, spec, where)
    k, depth, source = _resolve_kind(metadata or {}, sidecar_config, kind, max_depth, where)
    return CheckpointInfo(spec.name, k, depth, fmt, _storage_dtype(sd_official), path, source)


def _encoder_name(expected: str) -> str:
    if expected in ENCODERS:
        return expected
    if expected in VARIANTS:
        return VARIANTS[expected].encoder
    raise ValueError(f"unknown encoder {expected!r}; expected one of {', '.join(ENCODERS)} (or a variant id)")


def load_checkpoint(
    path: str | os.PathLike[str],
    expected_encoder: str | None = None,
    kind: str | None = None,
    max_depth: float | None = None,
) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read any supported checkpoint file -> (official-key state dict on CPU, what it holds).

    ``expected_encoder`` (an encoder or variant id) makes a file of another encoder an error.
    ``kind``/``max_depth`` override whatever the file says (see :func:`detect_variant`).
    Raises CheckpointError (a ValueError) naming the file, the cause and what to do.
    """
    want = _encoder_name(expected_encoder) if expected_encoder is not None else None
    p = _resolve_path(path)
    raw = read_state_dict(p)
    container = "safetensors" if _sniff(p) == "safetensors" else "pth"
    sd, layout = to_official_keys(raw, p)
    info = detect_variant(
        sd, read_metadata(p), read_sidecar_config(p), kind=kind, max_depth=max_depth, path=p, fmt=f"{layout}-{container}"
    )
    if want is not None and info.encoder != want:
        raise CheckpointError(
            f"{p}: the file holds a {info.encoder} model (from its tensor shapes), you asked for {want}. "
            f"Choose encoder {info.encoder}, or use a {want} checkpoint."
        )
    return sd, info


# --------------------------------------------------------------------------------------------- writing
def save_checkpoint(sd: dict[str, torch.Tensor], path: str | os.PathLike[str], info: CheckpointInfo) -> Path:
    """Write official-key tensors as ``.safetensors`` with ``dav2.*`` metadata, atomically.

    The tensors are checked against ``info.encoder`` first; the file appears complete or not at all
    (written to a temporary file in the same folder, then ``os.replace``d).
    """
    p = Path(path).expanduser()
    if p.suffix != ".safetensors":
        raise ValueError(f"{p}: save_checkpoint writes safetensors; give the file a .safetensors extension")
    if info.kind == "metric" and info.max_depth is None:
        raise ValueError(f"{p}: a metric checkpoint needs max_depth (metres) in its CheckpointInfo")
    detected = detect_variant(sd, path=p).encoder
    if detected != info.encoder:
        raise ValueError(f"{p}: the tensors are a {detected} model but info says {info.encoder}; refusing to write")
    metadata = {"format": "pt", META_ENCODER: info.encoder, META_KIND: info.kind}
    if info.max_depth is not None:
        metadata[META_MAX_DEPTH] = repr(float(info.max_depth))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
