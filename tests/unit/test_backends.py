"""Runtime backends behind load_model(backend=...): the same predict_depth / infer_image / estimate contract
as the PyTorch model (non-square, batches, chunking, cancel), int8, the engine cache, and bad input."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from checkpoint_factory import write_checkpoint  # noqa: E402
from dav2_core.engines import export as export_module  # noqa: E402
from dav2_core.engines import registry  # noqa: E402
from dav2_core.engines.cache import MANIFEST  # noqa: E402
from dav2_core.engines.export import export_onnx  # noqa: E402
from dav2_core.inference import predict_depth  # noqa: E402
from dav2_core.loading import load_model  # noqa: E402
from dav2_core.pipeline import EstimateOptions, estimate  # noqa: E402

BACKENDS = [b for b in ("onnxruntime", "openvino") if registry.is_installed(b)]
SIZE = 70  # network short side: small grids keep 2 CPU cores busy for seconds, not minutes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "vits.safetensors", "vits", "official-safetensors")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def reference(checkpoint):
    return load_model(checkpoint, device="cpu")


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, checkpoint, cache_dir):
    engine = load_model(checkpoint, device="cpu", backend=request.param, cache_dir=cache_dir)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Three non-square frames [3,H,W,3] float 0..1 with some structure."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 90)[None, None, :, None].expand(3, 60, 90, 3)
    return (0.6 * ramp + 0.4 * torch.rand(3, 60, 90, 3, generator=g)).contiguous()


def over_range(got: torch.Tensor | np.ndarray, want: torch.Tensor | np.ndarray) -> float:
    got, want = np.asarray(got), np.asarray(want)
    return float(np.abs(got - want).max() / (want.max() - want.min()))


def test_engine_describes_itself(engine, checkpoint):
    assert engine.backend in BACKENDS and engine.device == torch.device("cpu")
    assert engine.input_dtype == torch.float32 and engine.source == str(checkpoint)
    assert engine.checkpoint_info.encoder == "vits" and engine.checkpoint_info.kind == "relative"
    assert engine.bytes_per_image((70, 98), (60, 90)) > 0


def test_predict_depth_matches_torch_in_chunks(engine, reference, images):
    want = predict_depth(reference, images, input_size=SIZE)
    done = []
    got = predict_depth(engine, images, input_size=SIZE, chunk_size=2, progress=lambda d, t: done.append((d, t)))
    assert got.shape == want.shape == (3, 60, 90) and got.dtype == torch.float32
    assert over_range(got, want) <= 1e-4
    assert done == [(2, 3), (3, 3)]


def test_infer_image_matches_torch(engine, reference):
    bgr = (np.random.default_rng(0).random((50, 80, 3)) * 255).astype(np.uint8)
    want = reference.infer_image(bgr, SIZE)
    got = engine.infer_image(bgr, SIZE)
    assert got.shape == (50, 80) and got.dtype == np.float32
    assert over_range(got, want) <= 1e-4


def test_estimate_pipeline_with_flip_tta_and_cancel(engine, reference, images):
    options = EstimateOptions(input_size=SIZE, flip_tta=True, chunk_size=1)
    want = estimate(reference, images, options)
    got = estimate(engine, images, options)
    assert got.depth.kind == "relative" and got.depth.model == "vits.safetensors"
    assert over_range(got.depth.values, want.depth.values) <= 1e-4

    class Stop(Exception):
        pass

    calls = []

    def cancel() -> None:
        calls.append(1)
        raise Stop

    with pytest.raises(Stop):
        estimate(engine, images, options, check_cancel=cancel)
    assert calls == [1]  # stopped after the first chunk


def test_close_frees_sessions_and_the_next_call_reopens(engine, reference, images):
    engine.close()
    assert (
        over_range(
            predict_depth(engine, images[:1], input_size=SIZE), predict_depth(reference, images[:1], input_size=SIZE)
        )
        <= 1e-4
    )


@pytest.mark.parametrize("backend", [b for b in registry.INT8_BACKENDS if b in BACKENDS])
def test_int8_is_approximate_and_close(checkpoint, cache_dir, reference, images, backend):
    engine = load_model(checkpoint, device="cpu", backend=backend, dtype="int8", cache_dir=cache_dir)
    assert engine.precision == "int8" and engine.backend == backend
    want = predict_depth(reference, images, input_size=SIZE).flatten()
    got = predict_depth(engine, images, input_size=SIZE).flatten()
    assert float(np.corrcoef(got.numpy(), want.numpy())[0, 1]) > 0.99
    assert 0 < over_range(got, want) < 0.1  # approximate, not exact
    assert any(p.name.startswith(f"{backend}-int8-vits-dynamic") for p in cache_dir.iterdir())


def test_openvino_int8_file_holds_int8_weights_and_runs_them_as_int8(checkpoint, cache_dir, images):
    pytest.importorskip("openvino")
    import onnx

    from dav2_core.engines.quantize import OPENVINO_GROUP_SIZE, weight_matmuls

    engine = load_model(checkpoint, device="cpu", backend="openvino", dtype="int8", cache_dir=cache_dir)
    fp32_file, int8_file = engine.onnx.onnx(None, "fp32"), engine.model_file()
    linear = weight_matmuls(fp32_file)
    graph = onnx.load(str(int8_file)).graph
    dequantise = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2}
    assert len(linear) == 48 == len(dequantise) == len(int8)  # vits: 12 blocks x (qkv, proj, fc1, fc2)
    assert not weight_matmuls(int8_file)  # no float weight left behind a MatMul
    assert int8_file.stat().st_size < 0.5 * fp32_file.stat().st_size
    compiled = engine._compile((70, 98))
    assert int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == OPENVINO_GROUP_SIZE


def test_int8_needs_an_int8_backend(checkpoint, monkeypatch):
    with pytest.raises(ValueError, match="int8 is offered by backends openvino and onnxruntime only"):
        load_model(checkpoint, device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="int8 is offered by backends openvino and onnxruntime only"):
        registry.resolve_backend("tensorrt", torch.device("cpu"), "int8")
    assert registry.auto_backend(torch.device("cpu"), "int8") == (
        "openvino" if "openvino" in BACKENDS else "onnxruntime"
    )
    monkeypatch.setattr(registry, "is_installed", lambda b: b in ("torch", "onnxruntime"))
    assert registry.auto_backend(torch.device("cpu"), "int8") == "onnxruntime"
    monkeypatch.setattr(registry, "is_installed", lambda b: b == "torch")
    with pytest.raises(ImportError, match=r"needs backend openvino or onnxruntime.*pip install"):
        registry.auto_backend(torch.device("cpu"), "int8")


def test_auto_picks_the_fastest_installed_backend(checkpoint, cache_dir, monkeypatch):
    engine = load_model(checkpoint, device="cpu", backend="auto", cache_dir=cache_dir)
    assert engine.backend == ("openvino" if "openvino" in BACKENDS else "onnxruntime")
    monkeypatch.setattr(registry, "is_installed", lambda b: b == "torch")
    assert registry.auto_backend(torch.device("cpu"), "fp32") == "torch"
    assert load_model(checkpoint, device="cpu", backend="auto").__class__.__name__ == "DepthAnythingV2"


@pytest.mark.parametrize("backend,extra", [("openvino", "openvino"), ("onnxruntime", "onnx")])
def test_backend_not_installed_names_the_pip_extra(checkpoint, monkeypatch, backend, extra):
    module = "openvino" if backend == "openvino" else "onnxruntime"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(ImportError, match=rf"pip install comfyui-depth-anything-v2-pro\[{extra}\]"):
        load_model(checkpoint, device="cpu", backend=backend)
    assert backend not in registry.installed_backends()


def test_tensorrt_without_cuda_is_refused(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="TensorRT requested without CUDA"):
        load_model(checkpoint, device="cpu", backend="tensorrt", cache_dir=tmp_path)
    assert "tensorrt" not in registry.installed_backends() or torch.cuda.is_available()


def test_unknown_backend_lists_the_choices(checkpoint):
    with pytest.raises(ValueError, match="auto, torch, onnxruntime, openvino, tensorrt"):
        load_model(checkpoint, device="cpu", backend="tflite")


def test_fixed_shape_file_refuses_other_sizes_clearly(reference, tmp_path):
    path = export_onnx(reference, tmp_path / "fixed.onnx", height=70, width=98)
    engine = load_model(path, device="cpu", backend="onnxruntime", cache_dir=tmp_path / "cache")
    frames = torch.rand(2, 60, 84, 3)  # keep_aspect at 70 -> 70x98: the exported size
    assert (
        over_range(predict_depth(engine, frames, input_size=SIZE), predict_depth(reference, frames, input_size=SIZE))
        <= 1e-4
    )
    with pytest.raises(ValueError, match=r"exported for 70x98 only.*needs the network at 70x70.*--dynamic"):
        predict_depth(engine, torch.rand(1, 60, 60, 3), input_size=SIZE)
    with pytest.raises(ValueError, match="exported for 70x98 only"):
        engine.infer_image(np.zeros((60, 60, 3), np.uint8), SIZE)


# ------------------------------------------------------------------------------------ the engine cache


def entries(folder: Path, prefix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix))


def count_exports(monkeypatch) -> list[int]:
    calls = []
    real = export_module.export_onnx

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("dav2_core.engines.onnx_source.export_onnx", counting)
    return calls


def test_cache_hit_stale_and_corrupt_entries(checkpoint, tmp_path, monkeypatch, caplog, images):
    calls = count_exports(monkeypatch)
    first = load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=tmp_path)
    (entry,) = entries(tmp_path, "onnx-vits-dynamic-fp32")
    assert calls == [1] and (entry / "model.onnx").is_file() and (entry / MANIFEST).is_file()
    want = predict_depth(first, images[:1], input_size=SIZE)

    load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=tmp_path)
    assert calls == [1]  # hit: no second export

    data = (entry / "model.onnx").read_bytes()
    (entry / "model.onnx").write_bytes(data[: len(data) // 2])  # truncated
    with caplog.at_level(logging.WARNING):
        engine = load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=tmp_path)
    assert calls == [1, 1] and "stale or corrupt" in caplog.text
    assert torch.equal(predict_depth(engine, images[:1], input_size=SIZE), want)

    (entry / "model.onnx").write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])  # same size, one byte off
    load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=tmp_path)
    assert calls == [1, 1, 1]

    manifest = (entry / MANIFEST).read_text()
    (entry / MANIFEST).write_text(manifest.replace('"export_version": "1"', '"export_version": "0"'))  # stale
    load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=tmp_path)
    assert calls == [1, 1, 1, 1]
    assert entries(tmp_path, "onnx-vits") == [entry] and not entries(tmp_path, ".build-")


def test_unwritable_cache_folder_runs_uncached_with_one_warning(checkpoint, tmp_path, caplog, images, reference):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        first = load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=blocker / "engines")
        load_model(checkpoint, device="cpu", backend="onnxruntime", cache_dir=blocker / "engines")
    warnings = [r for r in caplog.records if "not writable" in r.getMessage()]
    assert len(warnings) == 1 and "running without a cache" in warnings[0].getMessage()
    assert (
        over_range(
            predict_depth(first, images[:1], input_size=SIZE), predict_depth(reference, images[:1], input_size=SIZE)
        )
        <= 1e-4
    )


def test_cli_backend_and_cache_dir(checkpoint, tmp_path, capsys):
    """`dav2 --backend onnxruntime --cache-dir DIR` writes the same raw depth as the torch backend."""
    import cv2

    from dav2_core.cli import main as cli_main

    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(photo), (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    common = [str(photo), "--checkpoint", str(checkpoint), "--input-size", str(SIZE), "--npy", "-q", "--device", "cpu"]
    assert cli_main([*common, "-o", str(tmp_path / "torch")]) == 0
    assert (
        cli_main(
            [*common, "-o", str(tmp_path / "ort"), "--backend", "onnxruntime", "--cache-dir", str(tmp_path / "cache")]
        )
        == 0
    )
    assert any(p.name.startswith("onnx-vits-dynamic") for p in (tmp_path / "cache").iterdir())
    want, got = (np.load(tmp_path / d / "photo_depth.npy") for d in ("torch", "ort"))
    assert over_range(got, want) <= 1e-4
    assert (
        cli_main([*common, "-o", str(tmp_path / "x"), "--backend", "tensorrt", "--cache-dir", str(tmp_path / "c")]) == 2
    )
    assert "TensorRT requested without CUDA" in capsys.readouterr().err
    assert cli_main([*common, "-o", str(tmp_path / "y"), "--dtype", "int8"]) == 2
    assert "int8 is offered by backends openvino and onnxruntime only" in capsys.readouterr().err


def test_tensorrt_check_needs_no_onnxruntime_import(monkeypatch, tmp_path):
    """is_installed('tensorrt') reads ONNX Runtime's provider library from its package folder (the loader's
    backend list is built at ComfyUI's start; importing onnxruntime there cost ~30 MB resident)."""
    import importlib.util
    from types import SimpleNamespace

    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        assert registry._ort_has_tensorrt() == ("TensorrtExecutionProvider" in onnxruntime.get_available_providers())
    (tmp_path / "capi").mkdir()
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake if name == "onnxruntime" else object())
    assert not registry._ort_has_tensorrt()
    (tmp_path / "capi" / "libonnxruntime_providers_tensorrt.so").write_bytes(b"")
    assert registry._ort_has_tensorrt() and registry.is_installed("tensorrt")
