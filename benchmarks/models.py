"""Seeded models (the official network and ours with the same weights), compilation and TF32 switches.

Benchmarks are scripts, not tests: every number they print comes from one run on the machine named in
their JSON (``machine`` block). Nothing here is imported by the engine.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Any
from collections.abc import Callable

import torch

from dav2_core import DepthAnythingV2
from dav2_core.dtypes import PRECISION_DTYPES
from dav2_core.variants import ENCODERS

from benchmarks.timing import time_calls


DTYPES = PRECISION_DTYPES
SEED = 1234


def seeded_models(encoder: str, seed: int = SEED) -> tuple[torch.nn.Module, DepthAnythingV2]:
    """The official model built under ``torch.manual_seed(seed)`` and ours loaded strictly from it, both eval/CPU fp32.

    Random init can leave the final ReLU output all zero; the last conv's bias is set to 0.05 (on the official
    model, before copying) so the depth maps are live and error metrics mean something.
    """
    from depth_anything_v2.dpt import DepthAnythingV2 as OfficialDepthAnythingV2

    spec = ENCODERS[encoder]
    torch.manual_seed(seed)
    official = OfficialDepthAnythingV2(encoder=encoder, features=spec.features, out_channels=list(spec.out_channels))
    with torch.no_grad():
        official.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
    official.eval()
    ours = DepthAnythingV2(encoder, spec.features, list(spec.out_channels)).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    return official, ours


def official_available() -> bool:
    """Whether the official implementation (PyPI ``jkp-depth-anything-v2``) is importable here (a GPU machine
    may lack it: then the official rows and parity figures are skipped, said so in the output)."""
    import importlib.util

    try:
        return importlib.util.find_spec("depth_anything_v2") is not None
    except (ImportError, ValueError):
        return False


def seeded_ours(encoder: str, seed: int = SEED) -> DepthAnythingV2:
    """Our model, eval/CPU fp32: the weights of :func:`seeded_models` when the official package is installed,
    else our own init under ``torch.manual_seed(seed)`` (same live-output bias). Speed and precision figures
    do not depend on which."""
    if official_available():
        return seeded_models(encoder, seed)[1]
    spec = ENCODERS[encoder]
    torch.manual_seed(seed)
    ours = DepthAnythingV2(encoder, spec.features, list(spec.out_channels)).eval()
    with torch.no_grad():
        ours.depth_head.scratch.output_conv2[2].bias.fill_(0.05)
    return ours


def add_seed_argument(parser: argparse.ArgumentParser) -> None:
    """``--seed N``: the ``torch.manual_seed`` of the random-init weights (default :data:`SEED`)."""
    parser.add_argument("--seed", type=int, default=SEED)


def add_compile_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--compile [MODE]`` (bare: "auto"; absent: None), checked by :func:`load_accel` before measuring."""
    parser.add_argument("--compile", nargs="?", const="auto", default=None, metavar="MODE", help=help)


def load_accel(mode: str) -> Any:
    """The engine's fast-path module ``dav2_core.accel`` (``optimize``, ``is_compiled``) for ``--compile MODE``.

    SystemExit with a clear message when the engine has no such module or does not know ``mode``
    ("auto" = the engine's own choice).
    """
    try:
        from dav2_core import accel
    except ImportError as exc:
        raise SystemExit(f"--compile: not available - this engine has no dav2_core.accel ({exc})") from None
    modes = ("auto", *getattr(accel, "COMPILE_MODES", ()))
    if mode not in modes:
        raise SystemExit(f"--compile: unknown mode {mode!r}; choose one of {', '.join(modes)}")
    return accel


def compile_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``dav2_core.accel.optimize(model)`` with ``mode`` ("auto": the engine's default for the device)."""
    return load_accel(mode).optimize(model, mode=None if mode == "auto" else mode)


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether the engine's compiled forward is still active (False after its fallback to eager)."""
    from dav2_core.accel import is_compiled as engine_is_compiled

    return bool(engine_is_compiled(model))


def compile_counts(model: torch.nn.Module) -> dict[str, int] | None:
    """The engine's ``compile_stats`` of ``model`` as a dict (graphs compiled, calls that ran compiled / eagerly);
    None when the model is not optimized."""
    from dav2_core.accel import compile_stats

    stats = compile_stats(model)
    if stats is None:
        return None
    return {"compiles": stats.compiles, "compiled_calls": stats.compiled_calls, "eager_calls": stats.eager_calls}


def compiled_row(model: torch.nn.Module, before: dict[str, int] | None) -> dict[str, Any]:
    """Row fields saying what the timed calls really ran: ``timed_compiled_calls`` / ``timed_eager_calls``
    since the ``before`` snapshot (taken after warm-up), ``graphs_compiled`` in all, and ``ran_compiled``
    (every timed call ran a compiled graph). Empty for a model that is not optimized."""
    after = compile_counts(model)
    if after is None or before is None:
        return {}
    compiled = after["compiled_calls"] - before["compiled_calls"]
    eager = after["eager_calls"] - before["eager_calls"]
    return {
        "graphs_compiled": after["compiles"],
        "timed_compiled_calls": compiled,
        "timed_eager_calls": eager,
        "ran_compiled": compiled > 0 and eager == 0,
    }


def time_model_calls(
    model: torch.nn.Module,
    fn: Callable[[], Any],
    runs: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
    after_warmup: Callable[[], None] | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """:func:`~benchmarks.timing.time_calls` of ``fn`` (calls of ``model``), and :func:`compiled_row` of the
    timed calls (the engine's counts are taken after the warm-up, before ``after_warmup``)."""
    before: dict[str, Any] = {}

    def snapshot() -> None:
        before["counts"] = compile_counts(model)
        if after_warmup is not None:
            after_warmup()

    times = time_calls(fn, runs, warmup, sync, snapshot)
    return times, compiled_row(model, before.get("counts"))


def release_model(model: torch.nn.Module) -> None:
    """Drop the engine's compiled graphs of ``model`` (call before ``del model``, then :func:`free_memory`):
    a compiled model is not freed by ``del`` alone (its graphs, frozen weights and CUDA-graph pools live on)."""
    from dav2_core.accel import unoptimize

    unoptimize(model)


def free_memory() -> None:
    """Forget every compiled graph (Dynamo caches, CUDA-graph trees), collect garbage, return cached CUDA
    memory: the next benchmark row starts from the same state as the first."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def set_tf32(enabled: bool) -> dict[str, Any]:
    """Allow (or forbid) TF32 for float32 matmuls and cuDNN convolutions, process-wide; returns :func:`tf32_flags`.

    PyTorch's own defaults are mixed: float32 matmuls in full precision, cuDNN convolutions in TF32 on
    Ampere and newer. Reference and benchmark runs set both explicitly (off by default: "fp32" means fp32).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    return tf32_flags()


def tf32_flags() -> dict[str, Any]:
    """The TF32-related flags in force (recorded in every GPU result): legacy flags, and the newer
    ``fp32_precision`` settings where this torch has them."""
    flags: dict[str, Any] = {
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    for name, holder in (
        ("cuda_matmul_fp32_precision", torch.backends.cuda.matmul),
        ("cudnn_conv_fp32_precision", getattr(torch.backends.cudnn, "conv", None)),
    ):
        value = getattr(holder, "fp32_precision", None)
        if value is not None:
            flags[name] = value
    return flags
