"""torch.compile fast path: used when it works, honest about what ran, falls back to eager (telling the user
once) when it cannot compile, and lets out-of-memory errors through so the caller can halve its chunk.

The real-compilation tests use a tiny module (Inductor on 2 CPU cores takes minutes for the real network);
one slow test compiles Depth Anything V2 itself.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
from torch import nn

from dav2_core import DepthAnythingV2, accel
from dav2_core.inference import predict_depth
from dav2_core.memory import OutOfMemoryError


@pytest.fixture()
def model() -> DepthAnythingV2:
    torch.manual_seed(0)
    return DepthAnythingV2("vits").eval()


def _image(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 28, 42, 3, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------ fallback and options (no compiling)
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
    stats = accel.compile_stats(model)
    assert "no C++ compiler" in stats.failure and stats.last_call_compiled is False and stats.compiled_calls == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second compile attempt
        second = predict_depth(model, _image(), input_size=28)
    assert torch.equal(second, expected)
    assert len(calls) == 1 and stats.eager_calls == 2


def test_compile_unavailable_at_creation(model, monkeypatch):
    def unavailable(fn, **kwargs):
        raise RuntimeError("torch.compile is not supported on Python 3.14")

    monkeypatch.setattr(torch, "compile", unavailable)
    with pytest.warns(RuntimeWarning, match="not supported"):
        accel.optimize(model)
    assert not accel.is_compiled(model) and accel.compile_stats(model) is None
    assert predict_depth(model, _image(), input_size=28).shape == (2, 28, 42)


def test_optimize_is_idempotent_and_reversible(model, monkeypatch):
    created = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: created.append(kw) or fn)
    accel.optimize(model)
    accel.optimize(model)
    assert len(created) == 1 and created[0]["dynamic"] is False and created[0]["fullgraph"] is True
    assert created[0]["backend"].options == {"freezing": True}  # CPU: default mode plus weight freezing
    assert accel.is_compiled(model)
    accel.unoptimize(model)
    assert not accel.is_compiled(model) and "forward" not in model.__dict__
    with pytest.raises(ValueError, match="compile mode"):
        accel.optimize(model, mode="fastest")


def test_cuda_mode_options_keep_cuda_graphs(model, monkeypatch):
    created = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: created.append(kw) or fn)
    accel.optimize(model, mode="reduce-overhead")
    assert created[0]["backend"].options == {"triton.cudagraphs": True, "freezing": True}


# ------------------------------------------------------------------------------ out of memory is not a compiler failure
def _compile_failing_first(exc: BaseException, shapes: list):
    """A fake torch.compile whose compiled forward raises ``exc`` on its first call, then runs eagerly."""

    def fake_compile(fn, **kwargs):
        backend = kwargs["backend"]

        def compiled(x):
            shapes.append(tuple(x.shape))
            if len(shapes) == 1:
                raise exc
            backend.stats.compiled_calls += 1  # what the real backend's graph wrapper counts
            return fn(x)

        return compiled

    return fake_compile


def test_out_of_memory_passes_through_so_the_chunk_is_halved(model, monkeypatch):
    expected = predict_depth(model, _image(4), input_size=28, chunk_size=4)
    shapes: list = []
    monkeypatch.setattr(
        torch, "compile", _compile_failing_first(OutOfMemoryError("CUDA out of memory (simulated)"), shapes)
    )
    accel.optimize(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an OOM is no reason to warn about (or give up) compilation
        got = predict_depth(model, _image(4), input_size=28, chunk_size=4)
    assert torch.equal(got, expected)
    assert [s[0] for s in shapes] == [4, 2, 2]  # the chunk was halved and retried through the compiled forward
    stats = accel.compile_stats(model)
    assert accel.is_compiled(model) and stats.failure is None
    assert (stats.compiled_calls, stats.eager_calls, stats.last_call_compiled) == (2, 0, True)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    ],
)
def test_library_allocation_failures_pass_through_untouched(model, monkeypatch, error):
    shapes: list = []
    monkeypatch.setattr(torch, "compile", _compile_failing_first(error, shapes))
    accel.optimize(model)
    x = torch.zeros(1, 3, 28, 28)
    with pytest.raises(RuntimeError) as raised:
        model(x)
    assert raised.value is error and accel.is_compiled(model)
    assert model(x).shape == (1, 28, 28) and accel.compile_stats(model).last_call_compiled


def test_out_of_memory_while_compiling_is_unwrapped(model, monkeypatch):
    """Dynamo wraps errors raised inside the backend (BackendCompilerFailed); the OOM inside is what counts."""
    oom = OutOfMemoryError("CUDA out of memory while autotuning (simulated)")
    try:
        raise RuntimeError("backend='inductor' raised: see above") from oom
    except RuntimeError as wrapped:
        error = wrapped
    monkeypatch.setattr(torch, "compile", _compile_failing_first(error, []))
    accel.optimize(model)
    with pytest.raises(OutOfMemoryError) as raised:
        model(torch.zeros(1, 3, 28, 28))
    assert raised.value is oom and accel.is_compiled(model)


# ------------------------------------------------------------------------------ real compilation (tiny module)
class Tiny(nn.Module):
    """Conv + linear: compiles in seconds, has weights to freeze."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def _tiny_input(batch: int) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(batch))


@pytest.fixture()
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@torch.inference_mode()
def test_models_of_the_same_shape_never_share_compiled_weights(fresh_dynamo):
    first, second = Tiny(seed=1), Tiny(seed=2)
    x = _tiny_input(2)
    eager = [first(x), second(x)]
    assert not torch.allclose(eager[0], eager[1])
    for m in (first, second):
        accel.optimize(m)
    for _ in range(2):  # alternate: each model must keep hitting its own entry
        for m, expected in zip((first, second), eager):
            torch.testing.assert_close(m(x), expected)
            stats = accel.compile_stats(m)
            assert stats.last_call_compiled and stats.compiles == 1 and stats.eager_calls == 0
    # Nothing was cached on the shared class code object: each model compiled a private copy.
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    assert _debug_get_cache_entry_list(Tiny.forward.__code__) == []

    # Freezing is real (weights are constants of the graph): changed weights need unoptimize + optimize.
    first.head.bias.add_(1.0)
    torch.testing.assert_close(first(x), eager[0])
    accel.unoptimize(first)
    torch.testing.assert_close(first(x), eager[0] + 1.0)
    accel.optimize(first)
    torch.testing.assert_close(first(x), eager[0] + 1.0)
    assert accel.compile_stats(first).last_call_compiled


@torch.inference_mode()
def test_recompiles_are_counted_and_the_limit_is_reported_per_model(fresh_dynamo):
    # torch's own config patcher: monkeypatch's undo would delattr the option (config modules have no __dict__
    # entry for it), leaving recompile_limit undefined for every later compile in the process.
    with torch._dynamo.config.patch(recompile_limit=2):
        _recompiles_are_counted_per_model()


def _recompiles_are_counted_per_model() -> None:
    model = accel.optimize(Tiny(seed=1))
    stats = accel.compile_stats(model)
    for batch in (1, 2):
        torch.testing.assert_close(model(_tiny_input(batch)), Tiny(seed=1)(_tiny_input(batch)))
        assert stats.last_call_compiled and stats.compiles == batch
    assert stats.recompiles == 1
    with pytest.warns(RuntimeWarning, match=r"input \(3, 3, 8, 8\).*ran without compilation.*recompile_limit is 2"):
        out = model(_tiny_input(3))  # a third shape: past the limit, eager (and said so), still correct
    torch.testing.assert_close(out, Tiny(seed=1)(_tiny_input(3)))
    assert (stats.compiles, stats.compiled_calls, stats.eager_calls, stats.last_call_compiled) == (2, 2, 1, False)
    assert accel.is_compiled(model)  # compiled shapes stay compiled
    model(_tiny_input(1))
    assert stats.last_call_compiled and stats.compiled_calls == 3

    # Another model of the same class has its own budget (one shared code object would be exhausted).
    other = accel.optimize(Tiny(seed=2))
    other(_tiny_input(3))
    assert accel.compile_stats(other).last_call_compiled and accel.compile_stats(other).compiles == 1


@pytest.mark.slow
@torch.inference_mode()
def test_two_depth_models_compile_whole_and_keep_their_own_weights(fresh_dynamo):
    """The real network compiles as one graph (fullgraph) and each model runs its own weights."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(DepthAnythingV2("vits").eval().requires_grad_(False))
    x = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    eager = [m(x) for m in models]
    for m in models:
        accel.optimize(m)
    for m, expected in zip(models, eager):
        torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
        stats = accel.compile_stats(m)
        assert stats.failure is None and stats.last_call_compiled and stats.compiles == 1
