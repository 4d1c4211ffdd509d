"""The one precision table and the one ``auto`` rule (dav2_core.dtypes), used by load_model, the engine
registry, the CLI and the loader node."""

from __future__ import annotations

import pytest
import torch

from dav2_core.dtypes import PRECISION_BYTES, PRECISIONS, auto_precision, dtype_name, precision_name, resolve_dtype

CPU, CUDA, MPS, XPU = (torch.device(t) for t in ("cpu", "cuda", "mps", "xpu"))


def test_auto_is_fp32_on_the_cpu_and_fp16_on_a_gpu():
    assert auto_precision(CPU) == "fp32"
    assert auto_precision(CPU, fp16=True, bf16=True) == "fp32"  # a host's answer never puts fp16 on the CPU
    assert auto_precision(CUDA) == auto_precision(MPS) == "fp16"
    assert auto_precision(XPU) == "fp32"  # unknown devices: only what the host says runs


def test_auto_follows_the_hosts_answers():
    assert auto_precision(CUDA, fp16=False, bf16=True) == "bf16"
    assert auto_precision(CUDA, fp16=False, bf16=False) == "fp32"
    assert auto_precision(XPU, fp16=True) == "fp16"


def test_names_and_dtypes_agree_everywhere():
    assert precision_name(None, CUDA) == precision_name("auto", CUDA) == "fp16"
    assert precision_name("auto", CPU) == "fp32"
    assert [precision_name(n, CPU) for n in PRECISIONS] == list(PRECISIONS)
    assert precision_name(torch.bfloat16, CPU) == precision_name("bfloat16", CPU) == "bf16"
    assert resolve_dtype("auto", CPU) == torch.float32 and resolve_dtype(None, CUDA) == torch.float16
    assert resolve_dtype("float16", CUDA) == torch.float16 and resolve_dtype("bf16", CPU) == torch.bfloat16
    assert dtype_name(resolve_dtype("fp16", CUDA)) == "fp16"
    assert set(PRECISION_BYTES) == set(PRECISIONS)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: precision_name("fp8", CPU), "unknown precision 'fp8'"),
        (lambda: resolve_dtype("int8", CPU), "unknown precision 'int8'; use auto, fp32, fp16 or bf16"),
        (lambda: resolve_dtype("fp16", CPU), "fp16 is not supported on the CPU"),
        (lambda: resolve_dtype(torch.int8, CPU), "unsupported precision"),
    ],
)
def test_bad_precisions_are_refused_naming_the_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()
