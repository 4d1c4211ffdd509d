"""Optional fast path: ``torch.compile`` (Inductor, weights frozen) with an honest label and a safe eager fallback.

* Freezing: under inference mode, parameters become constants of the compiled graph, so convolution and
  linear weights are pre-packed and activations fused into them (mostly a CPU gain). Call :func:`optimize`
  after the model has its final device, dtype and weights, and :func:`unoptimize` before changing them.
* One cache per model: Dynamo keeps compiled entries per *code object*, and every instance of a class
  shares its ``forward`` code. Each optimized model therefore compiles its own copy of that code: its
  entries (and the ``torch._dynamo.config.recompile_limit`` budget of shapes, 8 by default) belong to it
  alone, so no model can ever run a graph compiled for another model's frozen weights.
* Honest label: every call records whether it ran a compiled graph (:func:`compile_stats`). A new input
  shape compiles a new graph (logged; on CUDA ``mode="reduce-overhead"`` also captures a CUDA graph per
  shape); past the recompile limit new shapes run eagerly, counted and warned about once.
* Freezing needs Inductor's *global* ``freezing`` flag while Dynamo traces (per-call options reach Inductor only,
  after parameters were already lifted to graph inputs), so each compiled call sets it for its duration: a
  thread compiling something else at that very moment would see it too.
* Failures: out-of-memory errors pass through untouched (the caller halves its chunk; compilation stays
  on). Any other failure (no compiler toolchain, Triton missing...) turns the model back to eager for good
  and tells the user once.
"""

from __future__ import annotations

import contextlib
import logging
import types
import warnings
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import torch

from .memory import is_out_of_memory

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class CompileStats:
    """What the compiled forward of one model has done (counts since :func:`optimize`)."""

    compiles: int = 0  #: graphs compiled: the first plus every recompile (new shape, dtype or device)
    compiled_calls: int = 0  #: forward calls that ran a compiled graph
    eager_calls: int = 0  #: forward calls that ran eagerly (after a fallback, or past the recompile limit)
    last_call_compiled: bool | None = None  #: None before the first call
    failure: str | None = None  #: why compilation was turned off for good, if it was

    @property
    def recompiles(self) -> int:
        return max(0, self.compiles - 1)


def _fall_back(exc: BaseException) -> str:
    """Tell the user (log + one RuntimeWarning) that compilation is off; returns the short reason."""
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    message = f"torch.compile is unavailable or failed ({reason}); running Depth Anything V2 without it"
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return reason


def _out_of_memory_in(exc: BaseException) -> BaseException | None:
    """The out-of-memory error ``exc`` is or wraps (Dynamo wraps errors raised while compiling), else None."""
    seen = 0
    while exc is not None and seen < 8:
        if is_out_of_memory(exc):
            return exc
        exc = exc.__cause__ or getattr(exc, "inner_exception", None) or exc.__context__
        seen += 1
    return None


def _is_recompile_limit(exc: BaseException) -> bool:
    """Dynamo refused a new graph because this code object has used up ``recompile_limit`` (fullgraph mode;
    ``FailOnRecompileLimitHit`` in recent torch, an ``Unsupported`` naming the limit in older ones)."""
    text = str(exc)
    return (
        type(exc).__name__ in ("FailOnRecompileLimitHit", "RecompileLimitExceeded", "CacheLimitExceeded")
        or "recompile_limit" in text
        or "cache_size_limit" in text
    )


class _CountingBackend:
    """Inductor with this model's options; counts compilations and compiled-graph calls into ``stats``."""

    def __init__(self, mode: str, stats: CompileStats) -> None:
        import torch._inductor

        self.options: dict[str, Any] = {**torch._inductor.list_mode_options(mode), "freezing": True}
        self.inductor = torch._TorchCompileInductorWrapper(None, self.options, False)
        self.stats = stats

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        compiled = self.inductor(graph, example_inputs)
        stats = self.stats
        stats.compiles += 1
        shapes = [tuple(x.shape) for x in example_inputs if isinstance(x, torch.Tensor) and x.dim() == 4]
        log.info(
            "torch.compile: graph %d of this model compiled (input %s)%s",
            stats.compiles,
            shapes[:1],
            " - a recompile" if stats.compiles > 1 else "",
        )

        def run(*args: Any) -> Any:
            stats.compiled_calls += 1
            return compiled(*args)

        return run


def _own_forward(model: torch.nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], types.CodeType]:
    """``model.forward`` bound to a private copy of its code object (Dynamo's cache key), and that code."""
    function = type(model).forward
    code = function.__code__.replace()  # an equal but distinct code object: its own Dynamo cache
    private = types.FunctionType(
        code, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    private.__kwdefaults__ = function.__kwdefaults__
    return types.MethodType(private, model), code


class _GuardedForward:
    """Calls the compiled forward and records what ran; on a compiler failure switches to eager for good."""

    def __init__(self, model: torch.nn.Module, mode: str) -> None:
        self.eager = model.forward
        self.stats = CompileStats()
        own, self.code = _own_forward(model)
        self.backend = _CountingBackend(mode, self.stats)
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = torch.compile(
            own, backend=self.backend, dynamic=False, fullgraph=True
        )
        self._warned_limit = False

    @property
    def failure(self) -> str | None:
        return self.stats.failure

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            before = self.stats.compiled_calls
            try:
                with _freezing():
                    out = self.compiled(images)
            except Exception as exc:  # noqa: BLE001 - sorted below
                oom = _out_of_memory_in(exc)
                if oom is exc:
                    raise  # untouched: the caller halves its chunk, compilation stays on
                if oom is not None:
                    raise oom from None  # out of memory while compiling: same treatment
                if _is_recompile_limit(exc):
                    self._limit_reached(images)
                else:
                    self.compiled = None
                    self.stats.failure = _fall_back(exc)
            else:
                ran = self.stats.compiled_calls > before
                self._record(ran)
                if not ran:
                    self._limit_reached(images)
                return out
        self._record(False)
        return self.eager(images)

    def _record(self, compiled: bool) -> None:
        self.stats.last_call_compiled = compiled
        if not compiled:
            self.stats.eager_calls += 1

    def _limit_reached(self, images: torch.Tensor) -> None:
        if self._warned_limit:
            return
        self._warned_limit = True
        message = (
            f"torch.compile: input {tuple(images.shape)} {images.dtype} ran without compilation (this model "
            f"has {self.stats.compiles} compiled graphs; torch._dynamo.config.recompile_limit is "
            f"{_recompile_limit()}): new shapes run eagerly, compiled shapes stay compiled"
        )
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _recompile_limit() -> int | None:
    import torch._dynamo.config as dynamo_config

    return getattr(dynamo_config, "recompile_limit", getattr(dynamo_config, "cache_size_limit", None))


def _freezing() -> contextlib.AbstractContextManager[Any]:
    """Inductor's global ``freezing`` flag on while our frame may be traced: Dynamo reads it (not the per-call
    options) to make parameters graph constants, guarded by identity."""
    import torch._inductor.config

    return torch._inductor.config.patch(freezing=True)


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
    try:
        guarded = _GuardedForward(model, mode)
    except Exception as exc:  # noqa: BLE001 - e.g. torch.compile not supported on this Python
        _fall_back(exc)
        return model
    model.forward = guarded
    return model


def _guarded(model: torch.nn.Module) -> _GuardedForward | None:
    forward = model.__dict__.get("forward")
    return forward if isinstance(forward, _GuardedForward) else None


def is_compiled(model: torch.nn.Module) -> bool:
    """True while ``model`` has an active compiled forward (False after a fallback to eager).

    Whether a given call really ran compiled: ``compile_stats(model).last_call_compiled``.
    """
    guarded = _guarded(model)
    return guarded is not None and guarded.compiled is not None


def compile_stats(model: torch.nn.Module) -> CompileStats | None:
    """Counts of compilations and of compiled vs eager calls since :func:`optimize`; None if not optimized."""
    guarded = _guarded(model)
    return guarded.stats if guarded is not None else None


def unoptimize(model: torch.nn.Module) -> torch.nn.Module:
    """Back to the plain eager forward, dropping this model's compiled graphs (and their frozen weights)."""
    guarded = _guarded(model)
    model.__dict__.pop("forward", None)
    if guarded is not None:
        import torch._dynamo

        reset_code = getattr(torch._dynamo, "reset_code", None)
        if reset_code is not None:
            reset_code(guarded.code)
        guarded.compiled = None
    return model
