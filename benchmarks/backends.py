"""Benchmark helpers for the runtime backends (bench_cpu.py / bench_gpu.py): engines built from the seeded
model, the exact-fp32 floor of this machine, and the backends' accuracy figures.

Floor: the forward pass's FLOPs (``torch.utils.flop_counter`` on our model at the network size, one image)
divided by the machine's measured fp32 matrix-multiply rate (square ``torch.mm``, the same threads, same
run). No exact fp32 implementation can beat it by much: the ViT is >90 % matrix products. A backend's
efficiency is floor time / its measured time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.accuracy import compare, worst
from benchmarks.photos import read_bgr
from dav2_core.engines import registry
from dav2_core.engines.cache import EngineCache
from dav2_core.engines.onnx_source import OnnxSource

#: (backend, precision) rows bench_cpu times when the backend is installed.
CPU_ROWS = (
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "int8"),
    ("openvino", "bf16"),
)


def cpu_rows(requested: list[str] | None) -> list[tuple[str, str]]:
    """The installed (backend, precision) rows, limited to ``requested`` backends (None: all installed)."""
    return [(b, p) for b, p in CPU_ROWS if registry.is_installed(b) and (requested is None or b in requested)]


def gpu_rows() -> list[tuple[str, str]]:
    """(backend, precision) rows bench_gpu times: TensorRT fp16 and ONNX Runtime CUDA fp16, when installed."""
    rows = []
    if registry.is_installed("tensorrt"):
        rows.append(("tensorrt", "fp16"))
    if registry.is_installed("onnxruntime"):
        from dav2_core.engines.onnxruntime import cuda_available

        if cuda_available():
            rows.append(("onnxruntime", "fp16"))
    return rows


def build_engine(
    model: torch.nn.Module, backend: str, precision: str, cache_dir: str | Path, device: str = "cpu"
) -> Any:
    """An engine of ``backend`` over ``model`` (exported into ``cache_dir``, reused across runs)."""
    source = OnnxSource(EngineCache(cache_dir), model=model)
    return registry.create_engine(backend, source, torch.device(device), precision, name=f"seeded {model.encoder}")


def forward_flops(model: torch.nn.Module, net_size: tuple[int, int]) -> int:
    """FLOPs of one forward pass of ``model`` on one [1,3,H,W] image (multiply-adds count 2).

    Counted with SDPA's math backend: the flop counter has no formula for the CPU's fused attention kernel,
    which would leave out the attention products (~60 of ~166 GFLOP for vits at 518x686); every attention
    kernel does the same products, so the count holds for all of them."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, *net_size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
        model(x)
    return int(counter.get_total_flops())


def gemm_gflops(size: int = 2048, runs: int = 5) -> float:
    """Measured fp32 matrix-multiply rate on the CPU (GFLOP/s, best of ``runs`` after one warm-up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def floor(model: torch.nn.Module, net_size: tuple[int, int]) -> dict[str, float]:
    """The exact-fp32 floor of one forward pass here: FLOPs / GEMM rate."""
    flops = forward_flops(model, net_size)
    rate = gemm_gflops()
    return {"forward_gflops": flops / 1e9, "gemm_gflops_per_s": rate, "floor_ms": flops / (rate * 1e9) * 1e3}


def accuracy(
    official: torch.nn.Module,
    ours: torch.nn.Module,
    rows: list[tuple[str, str]],
    photos: list[Path],
    input_size: int,
    cache_dir: str | Path,
) -> list[dict[str, Any]]:
    """Per backend row: infer_image vs official and vs our fp32 (for int8/bf16 rows: the approximation)."""
    # the references do not depend on the backend: computed once per photo, not once per row
    references = (
        [
            (bgr, official.infer_image(bgr, input_size), ours.infer_image(bgr, input_size))
            for bgr in map(read_bgr, photos)
        ]
        if rows
        else []
    )
    out = []
    for backend, precision in rows:
        engine = build_engine(ours, backend, precision, cache_dir)
        versus_official, versus_fp32 = [], []
        for bgr, official_depth, our_depth in references:
            got = engine.infer_image(bgr, input_size)
            versus_official.append(compare(official_depth, got))
            versus_fp32.append(compare(our_depth, got))
        engine.close()
        out.append(
            {
                "backend": backend,
                "precision": precision,
                "vs_official": worst(versus_official),
                "vs_ours_fp32": worst(versus_fp32),
            }
        )
    return out
