"""The ComfyUI API the nodes are written against (nodes/api.py), in-process with ComfyUI's real modules:
one pinned import for every node file, the old behaviour on the test ComfyUI (0.3.75), the newer shapes
(DynamicCombo values, intermediate dtype) handled where a newer ComfyUI sends them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from comfy_harness import run_coroutine
from dav2_core.depth import DepthMap

ROOT = Path(__file__).resolve().parents[2]


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
    import comfy_api.v0_0_2  # noqa: F401 - the test ComfyUI (0.3.75) ships it

    assert api.API_VERSION == "v0_0_2"
    assert api.io is comfy_api.v0_0_2.io and api.ui is comfy_api.v0_0_2.ui
    assert api.ComfyExtension is comfy_api.v0_0_2.ComfyExtension
    assert isinstance(run_coroutine(comfy_inprocess.module.comfy_entrypoint()), api.ComfyExtension)


def test_old_schema_on_the_test_comfyui(api, comfy_inprocess) -> None:
    """0.3.75 has neither has_intermediate_output nor DynamicCombo: the nodes keep their plain schema."""
    assert not api.HAS_INTERMEDIATE_OUTPUT and not api.HAS_DYNAMIC_COMBO
    colorize = comfy_inprocess.node("Colorize Depth").GET_SCHEMA()
    assert [i.id for i in colorize.inputs] == ["depth", "colormap", "invert", "range_mode", "manual_min", "manual_max"]
    for name in ("Estimate Depth", "Colorize Depth"):
        assert "has_intermediate_output" not in comfy_inprocess.node(name).GET_SCHEMA().__dict__


def test_colorize_takes_the_dynamic_combo_shape(comfy_inprocess) -> None:
    """A newer ComfyUI hands a DynamicCombo's value over as {"range_mode": mode, <its inputs>}: same result."""
    colorize = comfy_inprocess.node("Colorize Depth")
    depth = DepthMap(torch.linspace(0.0, 2.0, 48).reshape(1, 6, 8))
    flat = colorize.execute(depth, "viridis", False, "manual", 0.5, 1.5)
    nested = colorize.execute(depth, "viridis", False, {"range_mode": "manual", "manual_min": 0.5, "manual_max": 1.5})
    assert torch.equal(flat.args[0], nested.args[0])
    assert flat.ui["dav2_depth"][0]["display_min"] == nested.ui["dav2_depth"][0]["display_min"] == 0.5
    auto = colorize.execute(depth, "viridis", False, {"range_mode": "auto"})
    assert torch.equal(auto.args[0], colorize.execute(depth, "viridis", False, "auto", 0.0, 1.0).args[0])
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
    assert colorize.execute(depth, "gray", False, "auto", 0.0, 1.0).args[0].dtype == api.intermediate_dtype()
    monkeypatch.setattr(mm, "intermediate_dtype", lambda: torch.float16, raising=False)
    assert api.image_output(torch.rand(1, 2, 2, 3)).dtype == torch.float16
    image = colorize.execute(depth, "gray", False, "auto", 0.0, 1.0).args[0]
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
