"""The loader node's backend input: in-process (ComfyUI's model management loads and frees the engine) and
on a real ComfyUI server end to end (Load Depth Anything V2 backend=onnxruntime -> Estimate Depth -> Save)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from comfy_harness import TEST_CHECKPOINT, estimate_graph, execution_error  # noqa: E402

SIZE = 70


def estimate(comfy, model, image):
    return comfy.node("Estimate Depth").execute(
        model,
        image,
        input_size=SIZE,
        resolution="keep_aspect",
        max_side=1932,
        normalization="per_image",
        invert=False,
        chunk_size=1,
    )


def test_loader_lists_installed_backends_with_requirements(comfy_inprocess):
    schema = comfy_inprocess.node("Load Depth Anything V2").GET_SCHEMA()
    (backend,) = [i for i in schema.inputs if i.id == "backend"]
    assert backend.options[:2] == ["auto", "torch"] and "onnxruntime" in backend.options
    assert backend.default == "torch"
    assert "pip install comfyui-depth-anything-v2-pro[onnx]" in backend.tooltip and "tensorrt" in backend.tooltip


def test_onnxruntime_engine_is_loaded_and_freed_by_comfyui(comfy_inprocess):
    mm = comfy_inprocess.model_management
    loader = comfy_inprocess.node("Load Depth Anything V2")
    torch_model = loader.execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]
    depth_model = loader.execute(TEST_CHECKPOINT, "fp32", "auto", "auto", backend="onnxruntime").args[0]
    assert (depth_model.backend, depth_model.dtype, depth_model.encoder) == ("onnxruntime", "fp32", "vits")
    engine = depth_model.patcher.model
    images = torch.rand(3, 50, 64, 3, generator=torch.Generator().manual_seed(0))
    got = estimate(comfy_inprocess, depth_model, images)
    want = estimate(comfy_inprocess, torch_model, images)
    values, reference = got.args[1].values, want.args[1].values
    assert float((values - reference).abs().max() / (reference.max() - reference.min())) <= 1e-4
    assert torch.allclose(got.args[0], want.args[0], atol=1e-3)
    assert any(m is depth_model.patcher for m in mm.loaded_models())  # registered with ComfyUI
    assert engine._sessions and depth_model.patcher.loaded_size() > 0
    mm.unload_all_models()  # what "Free model and node cache" does (the CPU is the torch device here)
    assert not engine._sessions and depth_model.patcher.loaded_size() == 0
    assert not any(m is depth_model.patcher for m in mm.loaded_models())
    again = estimate(comfy_inprocess, depth_model, images[:1])  # reopens from the engine cache
    assert torch.allclose(again.args[1].values, values[:1], atol=1e-6)
    engines = comfy_inprocess.model_dir / "engines"
    assert any(p.name.startswith("onnx-vits-dynamic-fp32") for p in engines.iterdir())


def test_int8_on_torch_backend_is_refused_clearly(comfy_inprocess):
    loader = comfy_inprocess.node("Load Depth Anything V2")
    with pytest.raises(ValueError, match="int8 is offered by backends openvino and onnxruntime only"):
        loader.execute(TEST_CHECKPOINT, "int8", "auto", "auto", backend="torch")


@pytest.mark.server
def test_server_runs_the_onnxruntime_backend_end_to_end(comfy_server):
    x = np.linspace(0, 255, 96, dtype=np.float32)[None, :, None]
    image = np.broadcast_to(x, (64, 96, 3)).astype(np.uint8).copy()
    image[16:40, 20:50] = 200
    Image.fromarray(image).save(comfy_server.input_dir / "backend_example.png")

    def graph(backend: str, prefix: str) -> dict:
        graph, _, depth = estimate_graph("backend_example.png", backend=backend, input_size=SIZE)
        graph.add("SaveImage", images=depth["depth_image"], filename_prefix=prefix)
        return graph.to_api()

    info = comfy_server.object_info("DAV2ModelLoader")["input"]["optional"]["backend"]
    assert "onnxruntime" in (info[1].get("options") or info[0])
    results = {}
    for backend in ("onnxruntime", "torch"):
        entry = comfy_server.run(graph(backend, f"backend_{backend}"))
        assert entry["status"]["status_str"] == "success", str(execution_error(entry)) + comfy_server.log_tail(3000)
        (path,) = comfy_server.output_files(entry, "4")
        results[backend] = np.asarray(Image.open(path).convert("L"), dtype=np.int16)
    assert results["onnxruntime"].shape == (64, 96)
    assert np.abs(results["onnxruntime"] - results["torch"]).max() <= 1  # same depth, 8-bit rounding at most
    assert results["torch"].max() - results["torch"].min() > 100  # a real map, not a constant


def test_auto_on_a_gpu_follows_the_engines_rule(comfy_inprocess, monkeypatch):
    """The node's auto = dav2_core's auto for ComfyUI's device: on CUDA TensorRT if installed, else torch (never
    a CPU engine because onnxruntime here lacks CUDA); int8 runs on the CPU engines."""
    from comfy_harness import load_nodes_module
    from dav2_core.engines import registry

    engine_loader = load_nodes_module("engine_loader")
    cuda = torch.device("cuda")
    monkeypatch.setattr(registry, "is_installed", lambda b: b in ("torch", "onnxruntime", "openvino"))
    assert engine_loader.resolve("auto", "auto", cuda) == "torch"
    assert engine_loader.resolve("auto", "fp16", cuda) == "torch"
    assert engine_loader.resolve("auto", "int8", cuda) == "openvino"
    assert engine_loader.engine_device("openvino", None, cuda) == torch.device("cpu")
    monkeypatch.setattr(registry, "is_installed", lambda b: True)
    assert engine_loader.resolve("auto", "auto", cuda) == "tensorrt"
