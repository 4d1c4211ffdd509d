"""Node faces on a ComfyUI that knows ``advanced`` inputs (0.33): in Nodes 2.0 both tested frontends (0.33's
pinned 1.49.6 and 1.58.1) show Estimate Depth with the few inputs most users change and fold the rest behind
"Show advanced inputs"; a workflow saved before keeps its values (positions did not move). On 0.3.75 there is no
such flag (tests/comfy/test_nodes_api.py checks the schemas on both)."""

from __future__ import annotations

from typing import Any

import pytest

import browser_helpers as bh
from comfy_harness import comfyui_version

VUE = [pytest.param(u, id=u.id) for u in bh.UIS if u.vue]
SHOWN = ["input_size", "resolution", "normalization", "invert"]
FOLDED = ["max_side", "chunk_size", "flip_tta", "refine", "temporal_consistency", "tile_size", "max_tiles"]

pytestmark = pytest.mark.skipif(comfyui_version() < (0, 33), reason="advanced inputs need ComfyUI 0.33")


def _node_text(page: Any, node: int) -> list[str]:
    return page.evaluate(
        "(id) => document.querySelector(`[data-node-id='${id}']`).innerText.split('\\n').map((s) => s.trim())", node
    )


@pytest.mark.parametrize("ui", VUE, indirect=True)
def test_estimate_depth_folds_its_advanced_inputs(page: Any, ui: bh.UI, ui_server: Any) -> None:
    node = bh.make_node(page, "DAV2EstimateDepth", (300, 200))
    page.locator(f"[data-node-id='{node}']").get_by_text("Show advanced inputs").wait_for(timeout=30_000)
    page.wait_for_function(  # the widgets render after the node's frame
        "([id, names]) => { const t = document.querySelector(`[data-node-id='${id}']`).innerText.split('\\n')"
        ".map((s) => s.trim()); return names.every((n) => t.includes(n)); }",
        arg=[node, SHOWN],
        timeout=30_000,
    )
    text = _node_text(page, node)
    assert all(name in text for name in SHOWN), text
    assert not [name for name in FOLDED if name in text], text
    page.locator(f"[data-node-id='{node}']").get_by_text("Show advanced inputs").click()
    page.wait_for_function(
        "(id) => document.querySelector(`[data-node-id='${id}']`).innerText.includes('max_tiles')", arg=node
    )
    text = _node_text(page, node)
    assert all(name in text for name in SHOWN + FOLDED), text
    # An old saved workflow's values land on the same widgets (advanced changes no position).
    values = page.evaluate(
        """(id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            const saved = [700, "tiled", 1400, "percentile", true, 2, true, 0.5, true, 0.75, 364, 64, 9];
            node.configure({ ...node.serialize(), widgets_values: saved });
            return Object.fromEntries(node.widgets.map((w) => [w.name, w.value]));
        }""",
        node,
    )
    assert values["input_size"] == 700 and values["resolution"] == "tiled" and values["max_side"] == 1400, values
    assert values["tile_size"] == 364 and values["tile_overlap"] == 64 and values["max_tiles"] == 9, values
