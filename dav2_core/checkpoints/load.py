"""`load_checkpoint`: any supported checkpoint file -> (official-key state dict, CheckpointInfo), in one read."""

from __future__ import annotations

import os

import torch

from ..variants import ENCODERS, VARIANTS
from .detect import CheckpointInfo, detect_variant
from .layout import to_official_keys
from .read import CheckpointError, CheckpointFile, contents, sidecar_config


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

    The path is resolved and the container recognised once; tensors and metadata come from one read; an
    HF ``config.json`` beside the file is read only when the kind is not settled before it.
    ``expected_encoder`` (an encoder or variant id) makes a file of another encoder an error.
    ``kind``/``max_depth`` override whatever the file says (see :mod:`.detect` for the whole precedence).
    Raises CheckpointError (a ValueError) naming the file, the cause and what to do.
    """
    want = _encoder_name(expected_encoder) if expected_encoder is not None else None
    file = CheckpointFile.open(path)
    raw, metadata = contents(file)
    sd, layout = to_official_keys(raw, file.path)
    container = "safetensors" if file.container == "safetensors" else "pth"
    info = detect_variant(
        sd,
        metadata,
        lambda: sidecar_config(file),
        kind=kind,
        max_depth=max_depth,
        path=file.path,
        fmt=f"{layout}-{container}",
    )
    if want is not None and info.encoder != want:
        raise CheckpointError(
            f"{file.path}: the file holds a {info.encoder} model (from its tensor shapes), you asked for {want}. "
            f"Choose encoder {info.encoder}, or use a {want} checkpoint."
        )
    return sd, info
