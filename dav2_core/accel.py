"""Optional fast path: ``torch.compile`` (kernels cached on disk by Inductor) with a safe eager fallback.

The model is compiled for inference with Inductor's weight *freezing*: parameters become constants,
so convolution/linear weights are pre-packed and activations fused into them (about 1.5x on CPU).
Call :func:`optimize` after the model has its final device, dtype and weights (and :func:`unoptimize`
before changing them). On CUDA, ``mode="reduce-overhead"`` also captures CUDA graphs per static input
shape, which removes the launch overhead that dominates small batches. Compilation happens on the first forward of each
new shape; if it fails (no compiler toolchain, unsupported platform, Triton missing...), the model
goes back to eager for good and the user is told once.
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def _fall_back(exc: Exception) -> str:
    """Tell the user (log + one RuntimeWarning) that compilation is off; returns the short reason."""
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    message = f"torch.compile is unavailable or failed ({reason}); running Depth Anything V2 without it"
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return reason


class _GuardedForward:
    """Calls the compiled forward; on the first failure switches to eager permanently and warns once."""

    def __init__(self, eager: Callable[[torch.Tensor], torch.Tensor], compiled: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.eager = eager
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = compiled
        self.failure: str | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(images)
            except Exception as exc:  # noqa: BLE001 - any compiler failure means "use eager"
                self.compiled = None
                self.failure = _fall_back(exc)
        return self.eager(images)


def optimize(model: torch.nn.Module, mode: str | None = None) -> torch.nn.Module:
    """Compile ``model.forward`` in place (idempotent) and return the model.

    mode: one of COMPILE_MODES; None picks "reduce-overhead" (CUDA graphs) on CUDA, "default" elsewhere.
    """
    if isinstance(model.__dict__.get("forward"), _GuardedForward):
        return model
    device = next(model.parameters()).device
    mode = mode or ("reduce-overhead" if device.type == "cuda" else "default")
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    eager = model.forward
    try:
        import torch._inductor

        # Per-call options (not the global Inductor config, which other compiled code in the process shares).
        options = {**torch._inductor.list_mode_options(mode), "freezing": True}
        compiled = torch.compile(eager, options=options, dynamic=False)
    except Exception as exc:  # noqa: BLE001 - e.g. torch.compile not supported on this Python
        _fall_back(exc)
        return model
    model.forward = _GuardedForward(eager, compiled)
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    """True while ``model`` runs a compiled forward (False after a fallback to eager)."""
    guarded = model.__dict__.get("forward")
    return isinstance(guarded, _GuardedForward) and guarded.compiled is not None


def unoptimize(model: torch.nn.Module) -> torch.nn.Module:
    """Back to the plain eager forward."""
    model.__dict__.pop("forward", None)
    return model
