"""torch.compile fast path: used when it works, falls back to eager (telling the user once) when not."""
from __future__ import annotations

import pytest
import torch

from dav2_core import DepthAnythingV2, accel
from dav2_core.inference import predict_depth


@pytest.fixture()
def model() -> DepthAnythingV2:
    torch.manual_seed(0)
    return DepthAnythingV2("vits").eval()


def _image() -> torch.Tensor:
    return torch.rand(2, 28, 42, 3, generator=torch.Generator().manual_seed(0))


def test_failing_compile_falls_back_once_and_keeps_results(model, monkeypatch):
    expected = predict_depth(model, _image(), input_size=28)
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(x):
            calls.append(x.shape)
            raise RuntimeError("inductor: no C++ compiler found")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    accel.optimize(model)
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable or failed.*no C\\+\\+ compiler"):
        first = predict_depth(model, _image(), input_size=28)
    assert torch.equal(first, expected)
    assert not accel.is_compiled(model)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second compile attempt
        second = predict_depth(model, _image(), input_size=28)
    assert torch.equal(second, expected)
    assert len(calls) == 1


def test_compile_unavailable_at_creation(model, monkeypatch):
    def unavailable(fn, **kwargs):
        raise RuntimeError("torch.compile is not supported on Python 3.14")

    monkeypatch.setattr(torch, "compile", unavailable)
    with pytest.warns(RuntimeWarning, match="not supported"):
        accel.optimize(model)
    assert not accel.is_compiled(model)
    assert predict_depth(model, _image(), input_size=28).shape == (2, 28, 42)


def test_optimize_is_idempotent_and_reversible(model, monkeypatch):
    created = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: created.append(kw) or fn)
    accel.optimize(model)
    accel.optimize(model)
    assert len(created) == 1 and created[0]["dynamic"] is False
    assert created[0]["options"] == {"freezing": True}  # CPU: default mode plus weight freezing
    assert accel.is_compiled(model)
    accel.unoptimize(model)
    assert not accel.is_compiled(model)
    with pytest.raises(ValueError, match="compile mode"):
        accel.optimize(model, mode="fastest")


def test_cuda_mode_options_keep_cuda_graphs(model, monkeypatch):
    created = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: created.append(kw) or fn)
    accel.optimize(model, mode="reduce-overhead")
    assert created[0]["options"] == {"triton.cudagraphs": True, "freezing": True}
