"""Core geometry graphs on a real ComfyUI server (main.py --cpu), the pack plus a test-only node pack
(tests/support/core_geometry_nodes) that emits DA3_GEOMETRY / MOGE_GEOMETRY exactly as core's DA3 and MoGe nodes
build them, from a known synthetic depth (1 m where the image is white .. 3 m where black).

* DA3/MoGe geometry -> our Bokeh, Save Depth and Stats: runs where the ComfyUI has core's geometry types
  (0.33+); on 0.3.75 the same graph is refused at validation (our inputs take DEPTH only there), checked too.
* Estimate Depth -> Depth to Mesh -> core SaveGLB: a GLB that trimesh reads back with the expected vertex count
  (textured on 0.33, untextured on 0.3.75).

Run on 0.33 by pointing COMFYUI_DIR at it with its own interpreter (tools/run_tests.sh does both passes).
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from PIL import Image

from checkpoint_factory import write_checkpoint
from comfy_harness import (
    MODEL_FOLDER,
    OFFICIAL_VITS,
    PromptError,
    ROOT,
    TEST_CHECKPOINT,
    comfyui_dir,
    execution_error,
    make_base_dir,
    start_server,
    estimate_graph,
)
from tools.graphs import Graph, NodeSpec, specs_of
from tools.graphs.specs import prepare_comfyui

pytestmark = pytest.mark.server

H, W = 24, 32
IMAGE = "geometry_input.png"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfyui_dir()
    base = tmp_path_factory.mktemp("geometry_server")
    ckpt = write_checkpoint(tmp_path_factory.mktemp("ckpt_geometry") / TEST_CHECKPOINT, "vits")
    make_base_dir(base, ckpt)
    (base / "models" / MODEL_FOLDER / OFFICIAL_VITS).symlink_to(TEST_CHECKPOINT)
    (base / "custom_nodes" / "dav2_core_geometry_test_nodes").symlink_to(
        ROOT / "tests" / "support" / "core_geometry_nodes", target_is_directory=True
    )
    srv = start_server(base, env={"HF_HUB_OFFLINE": "1"})
    try:
        Image.fromarray(input_image()).save(srv.input_dir / IMAGE)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    return server.object_info()


def has_core_geometry(object_info) -> bool:
    return "DA3Inference" in object_info and "MoGeInference" in object_info


@functools.cache
def geometry_node_specs() -> dict[str, NodeSpec]:
    """The test-only geometry nodes' specs, from their schemas (their module needs ComfyUI's comfy_api)."""
    prepare_comfyui()
    import core_geometry_nodes

    return specs_of([core_geometry_nodes.TestDA3Geometry, core_geometry_nodes.TestMoGeGeometry])


def geometry_graph(source: str) -> dict:
    """LoadImage -> test geometry node -> our Stats, Save Depth (npy) and Bokeh (focus on the near left edge)."""
    graph = Graph(geometry_node_specs())
    image = graph.add("LoadImage", image=IMAGE)
    geometry = graph.add(source, image=image["IMAGE"])
    depth = geometry[geometry.spec.outputs[0][0]]  # its only output
    graph.add("DAV2DepthStats", depth=depth)
    graph.add("DAV2SaveDepth", depth=depth, filename_prefix=f"geo/{source}", format="npy")
    blur = graph.add(
        "DAV2DepthBokeh",
        image=image["IMAGE"],
        depth=depth,
        focus_x=0.0,
        max_blur_radius=4.0,
        focus_range=0.05,
        layers=5,
    )
    graph.add("SaveImage", images=blur["image"], filename_prefix="geo/bokeh")
    return graph.to_api()


def ramp() -> np.ndarray:
    """[W] uint8 grey levels, light (near) on the left to dark (far) on the right."""
    return np.round(np.linspace(215, 40, W)).astype(np.uint8)


def input_image() -> np.ndarray:
    """[H,W,3] uint8: the ramp, with a +-20 red/green checker that keeps each pixel's mean (so the depth the
    test nodes make from the mean stays the smooth ramp) and that a lens blur visibly smooths."""
    checker = np.where((np.arange(H)[:, None] + np.arange(W)[None, :]) % 2 == 0, 20, -20)
    grey = np.broadcast_to(ramp().astype(np.int16)[None, :], (H, W))
    return np.stack([grey + checker, grey - checker, grey], axis=-1).astype(np.uint8)


def expected_depth() -> np.ndarray:
    """[H,W] metres the test nodes make: 1 + 2 (1 - mean / 255)."""
    return np.broadcast_to(1.0 + 2.0 * (1.0 - ramp().astype(np.float32) / 255.0)[None, :], (H, W))


@pytest.mark.parametrize("source,kind", [("DAV2TestDA3Geometry", "relative"), ("DAV2TestMoGeGeometry", "metric")])
def test_core_geometry_into_stats_save_depth_and_bokeh(server, object_info, source, kind):
    graph = geometry_graph(source)
    if not has_core_geometry(object_info):
        with pytest.raises(PromptError) as refused:  # 0.3.75: DEPTH inputs only, the link is refused
            server.run(graph)
        assert "DA3_GEOMETRY" in json.dumps(refused.value.body) or "MOGE_GEOMETRY" in json.dumps(refused.value.body)
        pytest.skip("this ComfyUI has no core DA3/MoGe geometry types: graph refused at validation (checked)")
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", json.dumps(execution_error(entry))[:3000]
    (npy,) = [p for p in server.output_files(entry, "4", "depth_files") if p.suffix == ".npy"]
    saved = np.load(npy)[0]
    depth = expected_depth()
    if kind == "metric":  # MoGe-2: metres kept
        np.testing.assert_allclose(saved, depth, rtol=1e-6)
    else:  # DA3: relative depth -> our inverse depth
        np.testing.assert_allclose(saved, 1.0 / depth, rtol=1e-6)
    meta = json.loads(npy.with_name(npy.name + ".json").read_text())
    assert meta["kind"] == kind
    stats = entry["outputs"]["3"]
    assert "units: m" in json.dumps(stats) if kind == "metric" else "units: relative" in json.dumps(stats)
    (blurred,) = server.output_files(entry, "6")
    out = np.asarray(Image.open(blurred).convert("RGB")).astype(np.float32)
    contrast = lambda rgb, cols: float(np.abs(rgb[:, cols, 0] - rgb[:, cols, 1]).mean())  # the checker
    src = input_image().astype(np.float32)
    assert contrast(out, slice(0, 1)) > 0.7 * contrast(src, slice(0, 1))  # in focus: the near edge stays sharp
    assert contrast(out, slice(-8, None)) < 0.5 * contrast(src, slice(-8, None))  # far: blurred


def mesh_graph(decimation: int) -> dict:
    """LoadImage (1) -> Load Depth Anything V2 (2) -> Estimate Depth (3) -> Depth to Mesh (4) -> SaveGLB (5); every
    widget not set here at its default."""
    graph, image, estimate = estimate_graph(IMAGE, OFFICIAL_VITS, precision="auto")
    mesh = graph.add(
        "DAV2DepthToMesh",
        depth=estimate["depth"],
        image=image["IMAGE"],
        decimation=decimation,
        discontinuity_threshold=0.0,
    )
    graph.add("SaveGLB", mesh=mesh["mesh"], filename_prefix="geo/mesh")
    return graph.to_api()


def test_estimate_depth_to_mesh_to_core_save_glb(server, object_info):
    trimesh = pytest.importorskip("trimesh")
    if "DAV2DepthToMesh" not in object_info:
        assert "SaveGLB" not in object_info  # only absent where core has no MESH
        pytest.skip("no MESH type in this ComfyUI: Depth to Mesh is not offered")
    entry = server.run(mesh_graph(decimation=3))
    assert entry["status"]["status_str"] == "success", json.dumps(execution_error(entry))[:3000] + server.log_tail()
    (glb,) = server.output_files(entry, "5", "3d")
    mesh = trimesh.load(glb, force="mesh", process=False)
    assert len(mesh.vertices) == math.ceil(H / 3) * math.ceil(W / 3)
    assert len(mesh.faces) == 2 * (math.ceil(H / 3) - 1) * (math.ceil(W / 3) - 1)
    textured = getattr(getattr(mesh.visual, "material", None), "baseColorTexture", None) is not None
    assert textured == ("PreviewPointCloud" in object_info)  # 0.33's MESH carries the texture, 0.3.75's none
