"""Seeded random-init Depth Anything V2 checkpoints for the tests (the Hub is unreachable in tests).

The weights and every on-disk format come from :mod:`dav2_core.checkpoints.random_init` (also behind
``tools/make_random_checkpoint.py``); this module only gives them the names the tests use and adds the
official implementation holding the same weights, the parity oracle. Formats (``FORMATS``):
``official-pth``, ``official-safetensors`` (our metadata), ``kijai-fp32`` / ``kijai-fp16`` (no metadata),
``hf-safetensors`` (HF-transformers layout + ``config.json``).
"""

from __future__ import annotations

import torch

from dav2_core.checkpoints.random_init import FORMATS, random_state_dict, write_random_checkpoint
from dav2_core.hf_convert import hf_config, official_to_hf
from dav2_core.variants import ENCODERS

__all__ = ["FORMATS", "hf_config", "make_state_dict", "official_model", "official_to_hf", "write_checkpoint"]

#: Official-key fp32 state dict of a seeded random model (cached; do not modify the tensors).
make_state_dict = random_state_dict
#: ``write_checkpoint(path, encoder, fmt, seed=0, kind="relative", max_depth=None) -> path``.
write_checkpoint = write_random_checkpoint


def official_model(encoder: str, seed: int = 0) -> torch.nn.Module:
    """The official model (PyPI jkp-depth-anything-v2) in eval mode holding ``make_state_dict(encoder, seed)``."""
    from depth_anything_v2.dpt import DepthAnythingV2

    spec = ENCODERS[encoder]
    model = DepthAnythingV2(encoder, spec.features, list(spec.out_channels))
    model.load_state_dict(make_state_dict(encoder, seed), strict=True)
    return model.eval()
