"""End to end on a real ComfyUI server (main.py --cpu on a free 127.0.0.1 port, pack in custom_nodes).

One session server (the ``comfy_server`` fixture) runs every test here. The example workflows are
converted from their UI format with the server's own /object_info and queued as shipped, except for a
smaller network input size and a small input image (2 CPU cores). The random-init checkpoint has no
meaningful depth order, so "near = white" is checked as consistency: the pixels the grey depth shows
white/black are exactly where the colorized depth shows the colormap's near/far end colours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_harness import (
    NODE_IDS,
    OFFICIAL_VITS,
    TEST_CHECKPOINT,
    comfyui_version,
    PromptError,
    assert_success,
    estimate_graph,
    execution_error,
    has_message,
    node_id_of,
    offered_nodes,
    read_video,
    set_inputs,
    ui_to_api,
    write_test_video,
)
from dav2_core.colormaps import lut
from tools.graphs import Graph

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "example_workflows"
EXAMPLE_IMAGE = "dav2_example.jpg"
EXAMPLE_VIDEO = "dav2_example.mp4"
SIZE = 70  # network input size used here instead of 518
IMAGE_WH = (120, 80)


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.object_info()


@pytest.fixture(scope="module")
def photo(comfy_server, shared_images_or_none) -> np.ndarray:
    """The example input (a shared photo scaled to 120x80, or a synthetic scene) in the server's input dir."""
    if shared_images_or_none:
        image = Image.open(shared_images_or_none[0]).convert("RGB").resize(IMAGE_WH, Image.BICUBIC)
    else:
        x = np.linspace(0, 255, IMAGE_WH[0], dtype=np.float32)[None, :, None]
        image = Image.fromarray(np.broadcast_to(x, (IMAGE_WH[1], IMAGE_WH[0], 3)).astype(np.uint8))
    image.save(comfy_server.input_dir / EXAMPLE_IMAGE, quality=95)
    return np.asarray(Image.open(comfy_server.input_dir / EXAMPLE_IMAGE).convert("RGB"))


@pytest.fixture(scope="module")
def shared_images_or_none(request) -> list[Path] | None:
    try:
        return request.getfixturevalue("shared_images")
    except pytest.skip.Exception:
        return None


def api_graph(name: str, object_info: dict, **estimate) -> dict:
    graph = ui_to_api(load_workflow(name), object_info)
    return set_inputs(graph, NODE_IDS["Estimate Depth"], input_size=SIZE, **estimate)


def saved_rgb(server, entry: dict, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in server.output_files(entry, node_id)]


# ------------------------------------------------------------------------------------ node definitions

EXPECTED = {
    "DAV2ModelLoader": (["model", "precision", "checkpoint_type", "device"], ["DAV2_MODEL"]),
    "DAV2EstimateDepth": (
        ["model", "image", "input_size", "resolution", "max_side", "normalization", "invert", "chunk_size"],
        ["IMAGE", "DEPTH", "MASK"],
    ),
    "DAV2ColorizeDepth": (["depth", "colormap", "invert", "range_mode", "manual_min", "manual_max"], ["IMAGE"]),
    "DAV2DepthStats": (["depth", "plot_index"], ["STRING", "IMAGE"]),
    "DAV2DepthBokeh": (
        [
            "image",
            "depth",
            "focus_mode",
            "focus_x",
            "focus_y",
            "focus_depth",
            "max_blur_radius",
            "focus_range",
            "layers",
        ],
        ["IMAGE", "MASK"],
    ),
    "DAV2DepthParallax": (["image", "depth", "frames", "motion", "strength"], ["IMAGE"]),
    "DAV2CalibrateDepth": (["depth", "points", "max_depth_m"], ["DEPTH", "STRING"]),
    "DAV2SaveDepth": (["depth", "filename_prefix", "format"], []),
    "DAV2DepthToNormals": (["depth", "fov_degrees", "save_ply", "filename_prefix", "ply_stride"], ["IMAGE", "STRING"]),
    "DAV2DepthToMesh": (
        ["depth", "batch_index", "fov_degrees", "use_depth_camera", "decimation", "discontinuity_threshold"],
        ["MESH"],
    ),
    "DAV2CameraFromExif": (["photo", "fallback_fov"], ["FLOAT", "STRING"]),
    "DAV2GeometryToDepth": (["geometry", "units"], ["DEPTH", "IMAGE", "FLOAT"]),
    "DAV2EvaluateDepth": (
        ["depth", "gt_file", "gt_kind", "gt_scale", "align", "min_depth", "max_depth"],
        ["STRING", "STRING", "FLOAT", "FLOAT"],
    ),
    "DAV2VideoDepth": (
        [
            "model",
            "video",
            "input_size",
            "resolution",
            "max_side",
            "normalization",
            "range_statistic",
            "invert",
            "colormap",
            "start_frame",
            "frame_count",
            "frame_stride",
            "chunk_size",
            "image_sequence",
            "filename_prefix",
        ],
        ["VIDEO"],
    ),
}


#: Inputs that a ComfyUI with DynamicCombo (0.33+) lists inside a combo's option, not at the top level.
DYNAMIC_INPUTS = {"DAV2ColorizeDepth": ("manual_min", "manual_max")} if comfyui_version() >= (0, 33) else {}


def test_object_info_lists_every_node(object_info):
    """Every node of the pack (NODE_IDS) with its inputs, outputs, tooltips and category."""
    assert set(EXPECTED) == set(NODE_IDS.values())
    for display, node_id in offered_nodes(object_info).items():
        info = object_info[node_id]
        inputs, outputs = EXPECTED[node_id]
        if node_id == "DAV2DepthToNormals" and "PreviewPointCloud" in object_info:
            outputs = [*outputs, "FILE_3D_PLY"]  # core's point-cloud type where it exists (0.33+)
        assert info["display_name"] == display
        assert info["category"] == "depth/Depth Anything V2"
        assert info["description"]
        # ComfyUI 0.33: Colorize's manual bounds live inside the range_mode DynamicCombo (test_nodes_api.py)
        assert info["input_order"]["required"] == [i for i in inputs if i not in DYNAMIC_INPUTS.get(node_id, ())]
        assert info["output"] == outputs
        assert all(info["output_tooltips"]), f"{node_id}: an output has no tooltip"
        for name, spec in info["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    estimate = object_info["DAV2EstimateDepth"]["input"]["required"]
    assert estimate["image"][0] == "IMAGE" and estimate["model"][0] == "DAV2_MODEL"
    assert estimate["input_size"][1]["default"] == 518 and estimate["input_size"][1]["step"] == 14
    # ComfyUI 0.33+ has core's DA3 / MoGe geometry types, which every depth input also takes
    geometry = ",DA3_GEOMETRY,MOGE_GEOMETRY" if comfyui_version() >= (0, 33) else ""
    assert object_info["DAV2ColorizeDepth"]["input"]["required"]["depth"][0] == "DEPTH,IMAGE" + geometry
    assert object_info["DAV2ColorizeDepth"]["input"]["required"]["colormap"][1]["default"] == "Spectral_r"
    models = object_info["DAV2ModelLoader"]["input"]["required"]["model"][1]["options"]
    assert OFFICIAL_VITS in models and TEST_CHECKPOINT in models
    assert object_info["DAV2DepthStats"]["output_node"] is True


# ------------------------------------------------------------------------------------ example workflows


@pytest.mark.parametrize(
    "name", ["depth_colorize_save", "depth_stats", "controlnet_depth", "video_batch_depth", "video_depth_streaming"]
)
def test_example_workflow_is_a_valid_graph(object_info, name):
    """Shipped with a thumbnail; every link joins an output to an input of the same type."""
    assert (WORKFLOWS / f"{name}.jpg").is_file(), f"{name}.jpg thumbnail missing"
    workflow = load_workflow(name)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, src, slot, dst, dst_slot, type_ in workflow["links"]:
        src_info = object_info[nodes[src]["type"]]
        assert src_info["output"][slot] == type_, f"link {link_id}: {nodes[src]['type']} output {slot} is not {type_}"
        name_in = nodes[dst]["inputs"][dst_slot]["name"]
        spec = {
            **object_info[nodes[dst]["type"]]["input"]["required"],
            **object_info[nodes[dst]["type"]]["input"].get("optional", {}),
        }[name_in]
        accepted = spec[0].split(",") if isinstance(spec[0], str) else []
        assert type_ in accepted, f"link {link_id}: {type_} into {nodes[dst]['type']}.{name_in} ({spec[0]})"
    assert ui_to_api(workflow, object_info)  # every widget value lines up with the node definitions


def test_depth_colorize_save_workflow(comfy_server, object_info, photo):
    graph = api_graph("depth_colorize_save", object_info)
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    saves = [i for i, n in graph.items() if n["class_type"] == "SaveImage"]
    grey_id = next(i for i in saves if graph[i]["inputs"]["images"][0] == node_id_of(graph, "DAV2EstimateDepth"))
    color_id = next(i for i in saves if i != grey_id)
    (grey,) = saved_rgb(comfy_server, entry, grey_id)
    (color,) = saved_rgb(comfy_server, entry, color_id)
    assert grey.shape == color.shape == photo.shape  # same H x W as the input
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 0] == grey[..., 2]).all()
    assert grey.max() == 255 and grey.min() == 0
    table = np.clip(lut("Spectral_r").numpy() * 255.0, 0, 255).astype(np.uint8)  # SaveImage truncates
    # 255 in the 8-bit grey is exactly 1.0 (near end); 0 is anything below 1/255, i.e. between the first
    # two LUT entries, so the far side allows one LUT step
    near, far = grey[..., 0] == 255, grey[..., 0] == 0
    far_step = np.abs(table[1].astype(int) - table[0]) + 1
    assert (np.abs(color[near].astype(int) - table[-1]) <= 1).all(), "nearest pixels must get Spectral_r's near end"
    assert (np.abs(color[far].astype(int) - table[0]) <= far_step).all(), (
        "farthest pixels must get Spectral_r's far end"
    )
    assert not (np.abs(color[far].astype(int) - table[-1]) <= 1).all(axis=-1).any()


def test_depth_stats_workflow(comfy_server, object_info, photo):
    graph = api_graph("depth_stats", object_info)
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    ui = entry["outputs"][node_id_of(graph, "DAV2DepthStats")]
    assert "Depth stats" in ui["text"][0]
    stats = ui["dav2_stats"][0]
    assert (stats["width"], stats["height"], stats["batch_size"]) == (photo.shape[1], photo.shape[0], 1)
    assert stats["images"][0]["valid_pixels"] == photo.shape[0] * photo.shape[1]
    (plot,) = saved_rgb(comfy_server, entry, node_id_of(graph, "SaveImage"))
    assert plot.shape == (900, 1200, 3)


def test_controlnet_workflow_only_lacks_its_weights(comfy_server, object_info):
    """It cannot run here (no SD/ControlNet weights): ComfyUI's own validator must find nothing else wrong."""
    graph = ui_to_api(load_workflow("controlnet_depth"), object_info)
    with pytest.raises(PromptError) as err:
        comfy_server.queue_prompt(graph)
    problems = {
        (graph[node]["class_type"], e["type"], e.get("extra_info", {}).get("input_name"))
        for node, report in err.value.body["node_errors"].items()
        for e in report["errors"]
    }
    assert problems == {
        ("CheckpointLoaderSimple", "value_not_in_list", "ckpt_name"),
        ("ControlNetLoader", "value_not_in_list", "control_net_name"),
    }


def test_video_workflow_batch_normalised(comfy_server, object_info, photo):
    frames = np.stack([np.roll(photo[:64, :96], 4 * i, axis=1) for i in range(6)])  # a 6-frame pan
    write_test_video(comfy_server.input_dir / EXAMPLE_VIDEO, frames)
    graph = api_graph("video_batch_depth", object_info)
    assert graph[node_id_of(graph, "DAV2EstimateDepth")]["inputs"]["normalization"] == "batch"
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    for save_id in [i for i, n in graph.items() if n["class_type"] == "SaveVideo"]:
        (path,) = comfy_server.output_files(entry, save_id)
        video = read_video(path)
        assert video.shape[:3] == frames.shape[:3], f"{path.name}: {video.shape} frames vs input {frames.shape}"


# ------------------------------------------------------------------------------------ cancel


def batch_graph(amount: int, chunk_size: int) -> dict:
    """The example image ``amount`` times -> Estimate Depth (4) in chunks of ``chunk_size`` -> PreviewImage (5)."""
    graph, _, estimate = estimate_graph(
        EXAMPLE_IMAGE, repeat=amount, input_size=140, normalization="batch", chunk_size=chunk_size
    )
    graph.add("PreviewImage", images=estimate["depth_image"])
    return graph.to_api()


def test_cancel_mid_batch_stops_within_one_chunk(comfy_server, photo):
    total = 8
    result = comfy_server.run_and_interrupt(batch_graph(total, chunk_size=1), node_id="4", after=2)
    assert result["end"] == "execution_interrupted", result
    # ComfyUI 0.33+ throttles progress messages (100 ms), so the first value seen at or past 2 may be later
    assert 2 <= result["at_interrupt"] < total - 1, result
    assert max(result["progress"]) <= result["at_interrupt"] + 1 < total  # at most the chunk already running
    entry = comfy_server.wait_history(result["prompt_id"], timeout=60)
    assert has_message(entry, "execution_interrupted")
    # the server is still fine: the next prompt runs to the end
    after = comfy_server.run(batch_graph(3, chunk_size=2))
    assert_success(comfy_server, after)
    assert len(after["outputs"]["5"]["images"]) == 3


# ------------------------------------------------------------------------------------ bad input


def small_graph(model: str = TEST_CHECKPOINT) -> Graph:
    """LoadImage (1) -> Load Depth Anything V2 (2, ``model``) -> Estimate Depth (3) -> Colorize Depth (4) -> SaveImage
    (5)."""
    graph, _, estimate = estimate_graph(EXAMPLE_IMAGE, model, precision="auto")
    color = graph.add("DAV2ColorizeDepth", depth=estimate["depth"], colormap="turbo")
    graph.add("SaveImage", images=color["image"], filename_prefix="bad_input/ok")
    return graph


def refused(server, graph: dict) -> list[dict]:
    with pytest.raises(PromptError) as err:
        server.queue_prompt(graph)
    return [e for report in err.value.body["node_errors"].values() for e in report["errors"]]


def test_wrong_wires_are_refused_at_queue_time(comfy_server, photo):
    mask_into_colorize = small_graph().to_api()
    mask_into_colorize["4"]["inputs"]["depth"] = ["1", 1]  # LoadImage MASK -> Colorize depth
    (error,) = refused(comfy_server, mask_into_colorize)
    assert error["type"] == "return_type_mismatch" and "MASK" in error["details"]
    image_into_stats = small_graph()
    image_into_stats.add("DAV2DepthStats", depth=image_into_stats.nodes[0]["IMAGE"])
    (error,) = refused(comfy_server, image_into_stats.to_api())
    assert error["type"] == "return_type_mismatch" and "IMAGE" in error["details"]


def test_manual_range_min_not_below_max_is_refused(comfy_server, photo):
    graph = small_graph().to_api()
    graph["4"]["inputs"].update(range_mode="manual", manual_min=3.0, manual_max=1.0)
    errors = refused(comfy_server, graph)
    assert any(e["type"] == "custom_validation_failed" and "manual_min" in e["details"] for e in errors), errors


@pytest.mark.parametrize("case", ["offline_missing", "corrupted", "other_model"])
def test_model_file_errors_explain_and_server_survives(comfy_server, photo, case):
    if case == "offline_missing":
        name = "depth_anything_v2_vitb.pth"
        expect = ["HF_HUB_OFFLINE", name, str(comfy_server.models_dir)]
    elif case == "corrupted":
        name = "broken_dav2.safetensors"
        (comfy_server.models_dir / name).write_bytes(b"not a checkpoint" * 64)
        expect = [name]
    else:
        from safetensors.torch import save_file
        import torch

        name = "other_model.safetensors"
        save_file(
            {"first_stage_model.encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(comfy_server.models_dir / name)
        )
        expect = [name]
    try:
        entry = comfy_server.run(small_graph(name).to_api())
    finally:
        (comfy_server.models_dir / name).unlink(missing_ok=True)  # the session server is shared
    error = execution_error(entry)
    assert error is not None and error["node_type"] == "DAV2ModelLoader", entry["status"]
    for text in expect:
        assert text in error["exception_message"], error["exception_message"]
    assert comfy_server.alive()
    ok = comfy_server.run(small_graph().to_api())
    assert_success(comfy_server, ok)


def test_tiny_image_keeps_its_size(comfy_server, photo):
    Image.new("RGB", (1, 1), (200, 30, 30)).save(comfy_server.input_dir / "one_pixel.png")
    graph = small_graph().to_api()
    graph["1"]["inputs"]["image"] = "one_pixel.png"
    entry = comfy_server.run(graph)
    assert_success(comfy_server, entry)
    (image,) = saved_rgb(comfy_server, entry, "5")
    assert image.shape == (1, 1, 3)
