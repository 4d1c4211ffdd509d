"""`save_checkpoint`: official-key tensors -> ``.safetensors`` with ``dav2.*`` metadata, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import temp_prefix
from .detect import CheckpointInfo, encoder_of
from .read import META_ENCODER, META_KIND, META_MAX_DEPTH


def save_checkpoint(sd: dict[str, torch.Tensor], path: str | os.PathLike[str], info: CheckpointInfo) -> Path:
    """Write official-key tensors as ``.safetensors`` with ``dav2.*`` metadata, atomically.

    The tensors are checked against ``info.encoder`` first; the file appears complete or not at all
    (written to a temporary file in the same folder, then ``os.replace``d).
    """
    p = Path(path).expanduser()
    if p.suffix != ".safetensors":
        raise ValueError(f"{p}: save_checkpoint writes safetensors; give the file a .safetensors extension")
    if info.kind == "metric" and info.max_depth is None and not info.is_video:
        raise ValueError(f"{p}: a metric checkpoint needs max_depth (metres) in its CheckpointInfo")
    detected = encoder_of(sd, str(p), info.family).name
    if detected != info.encoder:
        raise ValueError(f"{p}: the tensors are a {detected} model but info says {info.encoder}; refusing to write")
    metadata = {"format": "pt", META_ENCODER: info.encoder, META_KIND: info.kind}
    if info.max_depth is not None:
        metadata[META_MAX_DEPTH] = repr(float(info.max_depth))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(f".{p.name}."), suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
