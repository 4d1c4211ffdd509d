"""The ComfyUI API the pack is written against, imported in this one place.

Every node file takes ``io``, ``ui``, ``InputImpl`` and ``ComfyExtension`` from here. They come from the pinned, versioned
``comfy_api.v0_0_2`` (ComfyUI keeps a versioned API stable while ``comfy_api.latest`` moves on), or from
``latest`` on a ComfyUI that does not have that version. What newer ComfyUI versions add is detected here,
once, so the nodes keep the old behaviour on ComfyUI 0.3.75:

* :data:`HAS_INTERMEDIATE_OUTPUT`: ``io.Schema(has_intermediate_output=True)`` makes ComfyUI resend a node's
  UI output (our depth preview) when the node's result comes from its cache.
* :data:`HAS_DYNAMIC_COMBO`: ``io.DynamicCombo`` shows an option's own inputs only while it is selected.
* :data:`HAS_ADVANCED_INPUTS` / :func:`advanced`: an input marked ``advanced`` is folded away by newer frontends
  (ComfyUI 0.3x of 2026 marks its rarely changed inputs so); older ComfyUI shows it as before.
* :func:`intermediate_dtype` / :func:`image_output`: where IMAGE and MASK tensors between nodes live
  (``comfy.model_management.intermediate_device()`` and, where it exists, ``intermediate_dtype()``).
"""

from __future__ import annotations

import inspect

import comfy.model_management as mm
import torch

try:
    from comfy_api.v0_0_2 import ComfyExtension, InputImpl, io, ui

    API_VERSION = "v0_0_2"
except ImportError:  # a ComfyUI without the pinned version: the moving one
    from comfy_api.latest import ComfyExtension, InputImpl, io, ui

    API_VERSION = "latest"

#: Fields ``io.Schema`` accepts on the running ComfyUI.
SCHEMA_FIELDS: frozenset[str] = frozenset(getattr(io.Schema, "__dataclass_fields__", {}))
HAS_INTERMEDIATE_OUTPUT = "has_intermediate_output" in SCHEMA_FIELDS
HAS_DYNAMIC_COMBO = hasattr(io, "DynamicCombo")
HAS_ADVANCED_INPUTS = "advanced" in inspect.signature(io.Input.__init__).parameters

__all__ = [
    "API_VERSION",
    "ComfyExtension",
    "InputImpl",
    "HAS_ADVANCED_INPUTS",
    "HAS_DYNAMIC_COMBO",
    "HAS_INTERMEDIATE_OUTPUT",
    "SCHEMA_FIELDS",
    "advanced",
    "image_output",
    "intermediate_dtype",
    "io",
    "ui",
]


def intermediate_dtype() -> torch.dtype:
    """The dtype ComfyUI keeps IMAGE/MASK tensors in between nodes (float32 where it does not say)."""
    get = getattr(mm, "intermediate_dtype", None)
    return get() if callable(get) else torch.float32


def image_output(x: torch.Tensor) -> torch.Tensor:
    """An IMAGE [B,H,W,C] or MASK [B,H,W] result on ComfyUI's intermediate device and dtype."""
    return x.to(device=mm.intermediate_device(), dtype=intermediate_dtype())


def advanced(spec: io.Input) -> io.Input:
    """``spec`` marked as a rarely changed input (folded under "advanced" by frontends that know the flag);
    unchanged on a ComfyUI without it. Position, name and default stay, so saved workflows load as before."""
    if HAS_ADVANCED_INPUTS:
        spec.advanced = True
    return spec
