"""Read, recognise and write Depth Anything V2 checkpoints, whatever their on-disk format.

Formats read: official ``.pth`` (a pickled state dict, loaded with ``torch.load(weights_only=True)``:
nothing in a checkpoint is ever executed), safetensors with official keys (ours, and kijai's
``depth_anything_v2_vit?_fp16/fp32.safetensors``), HF-transformers ``model.safetensors`` /
``pytorch_model.bin`` (keys converted by :mod:`dav2_core.hf_convert`). Everything is returned with the
official keys (``pretrained.*`` / ``depth_head.*``), ready for ``DepthAnythingV2.load_state_dict(strict=True)``.

One module per job:

* :mod:`.read`: find the file, recognise the container from its bytes, tensors, metadata, sidecar config.json;
* :mod:`.layout`: official vs HF-transformers keys, the official key/shape contract;
* :mod:`.detect`: the encoder from tensor shapes; relative vs metric (the one precedence rule, for every caller);
* :mod:`.load`: :func:`load_checkpoint`, a whole load with one path resolution, one sniff and one read;
* :mod:`.write`: :func:`save_checkpoint`;
* :mod:`.random_init`: seeded random-init checkpoints for trying the pipeline without downloads.
"""

from __future__ import annotations

from .detect import CheckpointInfo, KindSource, detect_variant, encoder_of, resolve_kind, variant_for_file_name
from .layout import Layout, expected_shapes, to_official_keys
from .load import load_checkpoint
from .read import (
    META_DATASET,
    META_ENCODER,
    META_KIND,
    META_MAX_DEPTH,
    CheckpointError,
    CheckpointFile,
    read_metadata,
    read_sidecar_config,
    read_state_dict,
)
from .write import save_checkpoint

__all__ = [
    "META_DATASET",
    "META_ENCODER",
    "META_KIND",
    "META_MAX_DEPTH",
    "CheckpointError",
    "CheckpointFile",
    "CheckpointInfo",
    "KindSource",
    "Layout",
    "detect_variant",
    "encoder_of",
    "expected_shapes",
    "load_checkpoint",
    "read_metadata",
    "read_sidecar_config",
    "read_state_dict",
    "resolve_kind",
    "save_checkpoint",
    "to_official_keys",
    "variant_for_file_name",
]
