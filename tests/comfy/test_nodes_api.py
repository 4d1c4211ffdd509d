"""The ComfyUI API the nodes are written against (nodes/api.py), in-process with ComfyUI's real modules:
one pinned import for every node file, the old behaviour on ComfyUI 0.3.75, the newer shapes (DynamicCombo
values, intermediate dtype, advanced inputs) where a newer ComfyUI (0.33) has them. The comfy tier runs on both
(tools/run_tests.sh); the tests below check what the ComfyUI under test (comfy_harness.comfyui_version) offers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from comfy_harness import comfyui_version, run_coroutine
from dav2_core.depth import DepthMap

ROOT = Path(__file__).resolve().parents[2]
NODE_NAMES = [
    "Load Depth Anything V2",
    "Estimate Depth",
    "Colorize Depth",
    "Depth Stats",
    "Depth Bokeh",
    "Depth Parallax",
    "Calibrate Depth to Metric",
    "Save Depth",
    "Depth to Normals",
    "Evaluate Depth",
    "Video Depth",
]


@pytest.fixture(scope="module")
def api(comfy_inprocess):
    return sys.modules[f"{comfy_inprocess.module.__name__}.nodes.api"]


def test_every_node_file_takes_the_comfyui_api_from_one_module() -> None:
    for path in sorted((ROOT / "nodes").glob("*.py")):
        if path.name == "api.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) comfy_api", text, re.M), f"{path.name} imports comfy_api itself"
    assert "from comfy_api.v0_0_2 import" in (ROOT / "nodes" / "api.py").read_text(encoding="utf-8")


def test_the_pinned_version_is_used_where_comfyui_has_it(api, comfy_inprocess) -> None:
    import comfy_api.latest
    import comfy_api.v0_0_2  # noqa: F401 - both tested ComfyUI versions (0.3.75, 0.33) ship it

    assert api.API_VERSION == "v0_0_2"
    assert api.io is comfy_api.v0_0_2.io and api.ui is comfy_api.v0_0_2.ui
    assert api.ComfyExtension is comfy_api.v0_0_2.ComfyExtension
    assert isinstance(run_coroutine(comfy_inprocess.module.comfy_entrypoint()), api.ComfyExtension)


#: Inputs the nodes mark advanced where ComfyUI knows the flag (the rest is what most users change).
ADVANCED = {
    "Load Depth Anything V2": {"checkpoint_type", "device", "backend"},
    "Estimate Depth": {
        "max_side",
        "chunk_size",
        "flip_tta",
        "refine",
        "temporal_consistency",
        "temporal_smoothing",
        "tile_size",
        "tile_overlap",
        "max_tiles",
        "tta",
    },
    "Depth Bokeh": {"layers"},
    "Calibrate Depth to Metric": {"max_depth_m"},
    "Depth to Normals": {"ply_stride"},
    "Evaluate Depth": {"min_depth", "max_depth", "focal_baseline", "doffs"},
    "Video Depth": {
        "max_side",
        "range_statistic",
        "chunk_size",
        "flip_tta",
        "refine",
        "temporal_smoothing",
        "tile_size",
        "tile_overlap",
        "max_tiles",
        "tta",
    },
}


def _input_specs(comfy_inprocess, name: str) -> dict[str, list]:
    """The node's inputs as /object_info lists them: {input name: [type, options]}."""
    info = comfy_inprocess.node(name).GET_NODE_INFO_V1()
    return {k: v for section in ("required", "optional") for k, v in info["input"].get(section, {}).items()}


@pytest.mark.skipif(comfyui_version() >= (0, 33), reason="ComfyUI 0.3.75 only (the old schema)")
def test_old_schema_on_comfyui_0_3_75(api, comfy_inprocess) -> None:
    """0.3.75 has neither has_intermediate_output, DynamicCombo nor advanced inputs: the plain schema."""
    assert not api.HAS_INTERMEDIATE_OUTPUT and not api.HAS_DYNAMIC_COMBO and not api.HAS_ADVANCED_INPUTS
    colorize = comfy_inprocess.node("Colorize Depth").GET_SCHEMA()
    assert [i.id for i in colorize.inputs] == ["depth", "colormap", "invert", "range_mode", "manual_min", "manual_max"]
    for name in ("Estimate Depth", "Colorize Depth"):
        assert "has_intermediate_output" not in comfy_inprocess.node(name).GET_SCHEMA().__dict__
    for name in ADVANCED:
        assert not [k for k, v in _input_specs(comfy_inprocess, name).items() if v[1].get("advanced")], name


@pytest.mark.skipif(comfyui_version() < (0, 33), reason="ComfyUI 0.33 only (the newer schema)")
def test_newer_schema_on_comfyui_0_33(api, comfy_inprocess) -> None:
    """0.33 has them all: the preview comes back from the cache, Colorize's bounds show only for "manual", and
    each node shows the few inputs most users change, the rest folded away as advanced."""
    assert api.HAS_INTERMEDIATE_OUTPUT and api.HAS_DYNAMIC_COMBO and api.HAS_ADVANCED_INPUTS
    colorize = _input_specs(comfy_inprocess, "Colorize Depth")
    assert colorize["range_mode"][0] == "COMFY_DYNAMICCOMBO_V3"
    options = {o["key"]: o["inputs"] for o in colorize["range_mode"][1]["options"]}
    assert set(options["manual"]["required"]) == {"manual_min", "manual_max"} and not options["min_max"].get("required")
    for name in ("Estimate Depth", "Colorize Depth"):
        assert comfy_inprocess.node(name).GET_SCHEMA().has_intermediate_output is True
    for name in NODE_NAMES:
        specs = _input_specs(comfy_inprocess, name)
        marked = {k for k, v in specs.items() if isinstance(v[1], dict) and v[1].get("advanced")}
        assert marked == ADVANCED.get(name, set()), name
    estimate = _input_specs(comfy_inprocess, "Estimate Depth")
    shown = [k for k, v in estimate.items() if not v[1].get("advanced")]
    assert shown == ["model", "image", "input_size", "resolution", "normalization", "invert"]


def test_colorize_takes_the_dynamic_combo_shape(comfy_inprocess) -> None:
    """A newer ComfyUI hands a DynamicCombo's value over as {"range_mode": mode, <its inputs>}: same result."""
    colorize = comfy_inprocess.node("Colorize Depth")
    depth = DepthMap(torch.linspace(0.0, 2.0, 48).reshape(1, 6, 8))
    flat = colorize.execute(depth, "viridis", False, "manual", 0.5, 1.5)
    nested = colorize.execute(depth, "viridis", False, {"range_mode": "manual", "manual_min": 0.5, "manual_max": 1.5})
    assert torch.equal(flat.args[0], nested.args[0])
    assert flat.ui["dav2_depth"][0]["display_min"] == nested.ui["dav2_depth"][0]["display_min"] == 0.5
    auto = colorize.execute(depth, "viridis", False, {"range_mode": "auto"})  # the older name of min_max
    assert torch.equal(auto.args[0], colorize.execute(depth, "viridis", False, "min_max", 0.0, 1.0).args[0])
    assert "smaller than manual_max" in colorize.validate_inputs(
        {"range_mode": "manual", "manual_min": 2.0, "manual_max": 1.0}
    )
    assert colorize.validate_inputs({"range_mode": "percentile"}) is True


def test_image_outputs_follow_comfyuis_intermediate_dtype(api, comfy_inprocess, monkeypatch) -> None:
    """Where ComfyUI says IMAGE/MASK tensors live in another dtype (newer model_management), they do."""
    import comfy.model_management as mm

    depth = DepthMap(torch.rand(1, 6, 8))
    colorize = comfy_inprocess.node("Colorize Depth")
    assert api.intermediate_dtype() == getattr(mm, "intermediate_dtype", lambda: torch.float32)()
    assert colorize.execute(depth, "gray", False, "min_max", 0.0, 1.0).args[0].dtype == api.intermediate_dtype()
    monkeypatch.setattr(mm, "intermediate_dtype", lambda: torch.float16, raising=False)
    assert api.image_output(torch.rand(1, 2, 2, 3)).dtype == torch.float16
    image = colorize.execute(depth, "gray", False, "min_max", 0.0, 1.0).args[0]
    assert image.dtype == torch.float16 and image.device == mm.intermediate_device()


def test_pick_targets_name_real_nodes_and_widgets(comfy_inprocess) -> None:
    """The node ids and widget names the web preview writes picks into (GET /dav2/config "pick") exist."""
    routes = sys.modules[f"{comfy_inprocess.module.__name__}.nodes.routes"]
    pick = routes.PICK_TARGETS
    classes = comfy_inprocess.nodes.NODE_CLASS_MAPPINGS
    by_id = {i: classes[i].GET_SCHEMA() for i in {pick["focus"]["node"], pick["points"]["node"], *pick["through"]}}
    focus = {i.id: i for i in by_id[pick["focus"]["node"]].inputs}
    assert {pick["focus"][k] for k in ("mode", "x", "y")} <= set(focus)
    assert pick["focus"]["point_mode"] in focus[pick["focus"]["mode"]].options
    assert (focus[pick["focus"]["x"]].min, focus[pick["focus"]["x"]].max) == (0.0, 1.0)  # fractions
    points = {i.id: i for i in by_id[pick["points"]["node"]].inputs}
    assert pick["points"]["widget"] in points and "depth" in points
    for through in pick["through"]:  # a DEPTH in, a DEPTH out: the pixel grid is kept
        assert [o.io_type for o in by_id[through].outputs][0] == "DEPTH" and "depth" in {
            i.id for i in by_id[through].inputs
        }
