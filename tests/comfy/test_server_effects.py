"""The effect nodes end to end on the real ComfyUI server (the session ``comfy_server``): the bokeh, parallax
and temporal video example workflows as shipped (smaller network input, small image), calibration, Save
Depth and normals/PLY in one graph, and bad input reported by the server.

The random-init checkpoint gives depth without meaning, so checks are about shapes, counts, files and
consistency between outputs, not about what the depth shows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from comfy_harness import (
    NODE_IDS,
    PromptError,
    estimate_graph,
    execution_error,
    node_id_of,
    point_cloud_nodes,
    read_video,
    set_inputs,
    ui_to_api,
    write_test_video,
)
from dav2_core.effects import load_depth
from tools.graphs import Graph, Node
from test_server_e2e import (  # noqa: F401 (object_info, photo, shared_images_or_none are fixtures)
    EXAMPLE_IMAGE,
    EXAMPLE_VIDEO,
    WORKFLOWS,
    api_graph,
    assert_success,
    load_workflow,
    object_info,
    photo,
    saved_rgb,
    shared_images_or_none,
)

pytestmark = pytest.mark.server

NEW_WORKFLOWS = ["depth_bokeh", "depth_parallax", "video_depth_temporal"]


@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_new_example_workflow_is_a_valid_graph(object_info, name):
    assert (WORKFLOWS / f"{name}.jpg").is_file(), f"{name}.jpg thumbnail missing"
    workflow = load_workflow(name)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, src, slot, dst, dst_slot, type_ in workflow["links"]:
        assert object_info[nodes[src]["type"]]["output"][slot] == type_, f"link {link_id}: wrong output type"
        name_in = nodes[dst]["inputs"][dst_slot]["name"]
        spec = {
            **object_info[nodes[dst]["type"]]["input"]["required"],
            **object_info[nodes[dst]["type"]]["input"].get("optional", {}),
        }[name_in]
        assert type_ in spec[0].split(","), f"link {link_id}: {type_} into {nodes[dst]['type']}.{name_in}"
    graph = ui_to_api(workflow, object_info)  # every widget value lines up with the node definitions
    estimate = graph[node_id_of(graph, NODE_IDS["Estimate Depth"])]["inputs"]
    assert {"flip_tta", "refine", "temporal_consistency", "temporal_smoothing"} <= set(estimate)


def test_old_workflows_run_without_the_new_estimate_widgets(object_info):
    """Workflows saved before the quality options existed get their defaults (all off)."""
    graph = ui_to_api(load_workflow("depth_colorize_save"), object_info)
    estimate = graph[node_id_of(graph, NODE_IDS["Estimate Depth"])]["inputs"]
    assert (estimate["flip_tta"], estimate["refine"], estimate["temporal_consistency"]) == (False, 0.0, False)


def test_bokeh_workflow(comfy_server, object_info, photo):
    graph = api_graph("depth_bokeh", object_info)
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    (blurred,) = saved_rgb(comfy_server, entry, node_id_of(graph, "SaveImage"))
    (coc,) = saved_rgb(comfy_server, entry, node_id_of(graph, "PreviewImage"))
    assert blurred.shape == coc.shape == photo.shape
    assert np.abs(blurred.astype(int) - photo).mean() > 1.0  # the lens blur changed the photo
    assert coc.max() > 0 and (coc[..., 0] == coc[..., 1]).all()  # a grey MASK with some blur somewhere
    h, w = photo.shape[:2]
    assert coc[round(0.5 * (h - 1)), round(0.5 * (w - 1)), 0] == 0  # the picked focus point is in focus


def test_parallax_workflow(comfy_server, object_info, photo):
    graph = api_graph("depth_parallax", object_info)
    set_inputs(graph, NODE_IDS["Depth Parallax"], frames=6, strength=0.05)
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    (path,) = comfy_server.output_files(entry, node_id_of(graph, "SaveVideo"))
    clip = read_video(path)
    assert clip.shape == (6, *photo.shape), f"{clip.shape} vs 6 frames of {photo.shape}"
    changes = [np.abs(clip[k].astype(int) - clip[0]).mean() for k in range(1, 6)]
    assert max(changes) > 1.0, f"the camera did not move: {changes}"


def test_temporal_video_workflow(comfy_server, object_info, photo):
    frames = np.stack([np.roll(photo[:64, :96], 4 * i, axis=1) for i in range(6)])  # a 6-frame pan
    write_test_video(comfy_server.input_dir / EXAMPLE_VIDEO, frames)
    graph = api_graph("video_depth_temporal", object_info)
    estimate = graph[node_id_of(graph, NODE_IDS["Estimate Depth"])]["inputs"]
    assert estimate["temporal_consistency"] is True and estimate["normalization"] == "batch"
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    videos = {
        graph[i]["inputs"]["filename_prefix"]: read_video(comfy_server.output_files(entry, i)[0])
        for i, n in graph.items()
        if n["class_type"] == "SaveVideo"
    }
    assert len(videos) == 2 and all(v.shape == frames.shape for v in videos.values())
    files = comfy_server.output_files(entry, node_id_of(graph, NODE_IDS["Save Depth"]), "depth_files")
    (npy,) = [f for f in files if f.suffix == ".npy"]
    depth = load_depth(npy)
    assert depth.values.shape == frames.shape[:3] and depth.kind == "relative"
    # the grey video is the depth normalised ONCE over all frames (near = white), up to H.264 loss
    v = depth.values.numpy()
    expected = (v - v.min()) / (v.max() - v.min()) * 255.0
    grey = videos["video/dav2_depth_temporal"][..., 1].astype(float)
    assert np.abs(grey - expected).mean() < 6.0


def _estimate_graph() -> tuple[Graph, Node, Node]:
    """LoadImage (1) -> Load Depth Anything V2 (2) -> Estimate Depth (3, edge-refined) -> Save Depth (4, .npy);
    returns (graph, LoadImage, Estimate Depth)."""
    graph, photo, estimate = estimate_graph(EXAMPLE_IMAGE, refine=0.5)
    graph.add("DAV2SaveDepth", depth=estimate["depth"], filename_prefix="effects_e2e/relative", format="npy")
    return graph, photo, estimate


def _calibrated(graph: Graph, estimate: Node, points: str, prefix: str, fmt: str) -> Node:
    """Calibrate Depth to Metric (5) of ``estimate`` on ``points`` -> Save Depth (6) as ``fmt``; returns the
    calibration."""
    metric = graph.add("DAV2CalibrateDepth", depth=estimate["depth"], points=points)
    graph.add("DAV2SaveDepth", depth=metric["depth"], filename_prefix=prefix, format=fmt)
    return metric


def test_calibrate_save_exr_and_point_cloud(comfy_server, photo):
    first = comfy_server.run(_estimate_graph()[0].to_api())
    assert_success(comfy_server, first)
    (rel_path,) = [f for f in comfy_server.output_files(first, "4", "depth_files") if f.suffix == ".npy"]
    rel = load_depth(rel_path).values[0].numpy()
    # two points at different relative depths; the nearer one (larger relative value) gets the smaller distance
    (y1, x1), (y2, x2) = np.unravel_index(rel.argmax(), rel.shape), np.unravel_index(rel.argmin(), rel.shape)
    points = f"{x1},{y1},2.0; {x2},{y2},8.0"
    graph, photo_node, estimate = _estimate_graph()
    metric = _calibrated(graph, estimate, points, "effects_e2e/metric", "exr")
    normals, viewer = point_cloud_nodes(graph, metric["depth"], photo_node["IMAGE"], "effects_e2e/cloud")
    preview = graph.add("PreviewImage", images=normals["normals"])
    entry = comfy_server.run(graph.to_api())
    assert_success(comfy_server, entry)
    report = entry["outputs"]["5"]["text"][0]
    assert "scale" in report and "residual RMSE" in report and "2 samples" in report
    (exr,) = [f for f in comfy_server.output_files(entry, "6", "depth_files") if f.suffix == ".exr"]
    metric = load_depth(exr)
    assert (metric.kind, metric.units) == ("metric", "m") and metric.values.shape == (1, *photo.shape[:2])
    assert float(metric.values[0, y1, x1]) == pytest.approx(2.0, rel=1e-3)  # two points: an exact fit
    assert float(metric.values[0, y2, x2]) == pytest.approx(8.0, rel=1e-3)
    (ply,) = comfy_server.output_files(entry, str(normals.id), "ply_files")
    header = ply.read_bytes().split(b"end_header\n")[0].decode()
    h, w = photo.shape[:2]
    assert f"element vertex {((h + 1) // 2) * ((w + 1) // 2)}" in header
    assert entry["outputs"][str(viewer.id)]["result"][0] == f"effects_e2e/{ply.name}"  # what Preview 3D loads
    (normals_rgb,) = saved_rgb(comfy_server, entry, str(preview.id))
    assert normals_rgb.shape == photo.shape


def test_bad_effect_input_is_reported_and_the_server_survives(comfy_server, object_info, photo):
    graph = api_graph("depth_parallax", object_info)
    set_inputs(graph, NODE_IDS["Depth Parallax"], frames=0)
    with pytest.raises(PromptError) as err:  # N frames = 0 never reaches the node
        comfy_server.queue_prompt(graph)
    errors = [e for report in err.value.body["node_errors"].values() for e in report["errors"]]
    assert any(e["type"] == "value_smaller_than_min" and e["extra_info"]["input_name"] == "frames" for e in errors)

    graph = api_graph("depth_bokeh", object_info)
    set_inputs(graph, NODE_IDS["Depth Bokeh"], focus_mode="depth", focus_depth=1e6)
    error = execution_error(comfy_server.run(graph))
    assert error is not None and error["node_type"] == NODE_IDS["Depth Bokeh"]
    assert "outside the depth range" in error["exception_message"]

    graph, _, estimate = _estimate_graph()
    _calibrated(graph, estimate, "3,3,2.0", "effects_e2e/bad", "npy")
    error = execution_error(comfy_server.run(graph.to_api()))
    assert error is not None and "at least two" in error["exception_message"], json.dumps(error)[:500]
    assert comfy_server.alive()
