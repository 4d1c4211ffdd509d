"""Node faces. On a ComfyUI that knows ``advanced`` inputs (0.33): in Nodes 2.0 both tested frontends (0.33's
pinned 1.49.6 and 1.58.1) show Estimate Depth with the few inputs most users change and fold the rest behind
"Show advanced inputs"; a workflow saved before keeps its values (positions did not move). On 0.3.75 there is no
such flag (tests/comfy/test_nodes_api.py checks the schemas on both).

On every ComfyUI, frontend and renderer (web/node_faces.js): a resolution mode's own options (max_side for
native, tile_size / tile_overlap / max_tiles for tiled) show only in that mode, and hiding them changes nothing
that is saved or queued."""

from __future__ import annotations

from typing import Any

import pytest

import browser_helpers as bh
from comfy_harness import comfyui_version

VUE = [pytest.param(u, id=u.id) for u in bh.UIS if u.vue]
MODE_WIDGETS = ["max_side", "tile_size", "tile_overlap", "max_tiles"]
TILED = ["tile_size", "tile_overlap", "max_tiles"]
SHOWN = ["input_size", "resolution", "normalization", "invert"]
FOLDED = ["chunk_size", "flip_tta", "refine", "temporal_consistency"]  # and the mode widgets: see below

needs_advanced = pytest.mark.skipif(comfyui_version() < (0, 33), reason="advanced inputs need ComfyUI 0.33")


def _node_text(page: Any, node: int) -> list[str]:
    return page.evaluate(
        "(id) => document.querySelector(`[data-node-id='${id}']`).innerText.split('\\n').map((s) => s.trim())", node
    )


@needs_advanced
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
        "(id) => document.querySelector(`[data-node-id='${id}']`).innerText.includes('chunk_size')", arg=node
    )
    text = _node_text(page, node)
    assert all(name in text for name in SHOWN + FOLDED), text
    assert not [name for name in MODE_WIDGETS if name in text], text  # keep_aspect uses none of them
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


# ----------------------------------------------------------------------------- a mode's own options

_SHOWN_JS = """([id, names]) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(id);
    const el = document.querySelector(`.lg-node[data-node-id='${id}']`);
    if (el) {  // Nodes 2.0: what the node's element shows
        const text = el.innerText.split('\\n').map((s) => s.trim());
        return names.filter((n) => text.includes(n));
    }
    return names.filter((n) => {  // classic canvas: what it draws
        const w = node.widgets.find((w) => w.name === n);
        return node.isWidgetVisible ? node.isWidgetVisible(w) : !w.hidden;
    });
}"""


def _unfold(page: Any, node: int) -> None:
    """Nodes 2.0 with advanced inputs: open the fold (the mode widgets are advanced there)."""
    button = page.locator(f"[data-node-id='{node}']").get_by_text("Show advanced inputs")
    if button.count():
        button.first.click()
        page.wait_for_timeout(300)


def _expect_shown(page: Any, node: int, names: list[str]) -> None:
    """Wait until exactly ``names`` of the mode widgets show (Nodes 2.0 renders on its next frame)."""
    try:
        page.wait_for_function(
            f"([id, all, want]) => JSON.stringify(({_SHOWN_JS})([id, all])) === JSON.stringify(want)",
            arg=[node, MODE_WIDGETS, names],
            timeout=10_000,
        )
    except Exception:  # noqa: BLE001 - report what shows instead of a bare timeout
        shown = page.evaluate(_SHOWN_JS, [node, MODE_WIDGETS])
        raise AssertionError(f"mode widgets shown: {shown}, expected {names}") from None


def _height(page: Any, node: int) -> float:
    """The node's height after the canvas drew it (the canvas lays the widgets out, and grows the node to
    hold them, while drawing)."""
    page.evaluate("() => window.comfyAPI.app.app.canvas.draw(true, true)")
    page.wait_for_timeout(100)
    return page.evaluate("(id) => window.comfyAPI.app.app.graph.getNodeById(id).size[1]", node)


def _saved(page: Any, node: int) -> dict:
    """The node's widgets_values and its API prompt inputs, as saved/queued now and with every widget unhidden
    (hiding must change neither)."""
    return page.evaluate(
        """async (id) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const now = async () => ({
                values: JSON.parse(JSON.stringify(node.serialize().widgets_values)),
                inputs: (await app.graphToPrompt()).output[String(id)]?.inputs ?? null,
            });
            const hidden = await now();
            const was = node.widgets.map((w) => [w, w.hidden, w.options?.hidden]);
            for (const [w] of was) { w.hidden = false; if (w.options) w.options.hidden = false; }
            const shown = await now();
            for (const [w, h, oh] of was) { w.hidden = h; if (w.options) w.options.hidden = oh; }
            return { hidden, shown, names: node.widgets.map((w) => w.name) };
        }""",
        node,
    )


@pytest.mark.parametrize("ui", bh.ALL_UIS, indirect=True)
@pytest.mark.parametrize("node_type", ["DAV2EstimateDepth", "DAV2VideoDepth"])
def test_resolution_mode_shows_its_own_options(page: Any, ui: bh.UI, ui_server: Any, node_type: str) -> None:
    node = bh.make_node(page, node_type, (300, 200))
    bh.show_node(page, node)
    _unfold(page, node)
    _expect_shown(page, node, [])
    created = _height(page, node)
    bh.set_widgets(page, node, resolution="tiled")
    _expect_shown(page, node, TILED)
    taller = _height(page, node)
    bh.set_widgets(page, node, tile_size=364, tile_overlap=64, max_tiles=9, max_side=1400)
    tiled = _saved(page, node)
    assert tiled["hidden"] == tiled["shown"], tiled
    values = dict(zip(tiled["names"], tiled["hidden"]["values"]))
    assert values["max_side"] == 1400 and values["tile_size"] == 364 and values["max_tiles"] == 9, values
    assert tiled["hidden"]["inputs"]["max_side"] == 1400, tiled  # a hidden option is still queued
    bh.set_widgets(page, node, resolution="native")
    _expect_shown(page, node, ["max_side"])
    native = _saved(page, node)
    assert native["hidden"] == native["shown"], native
    assert native["hidden"]["inputs"]["tile_size"] == 364, native
    bh.set_widgets(page, node, resolution="keep_aspect")
    _expect_shown(page, node, [])
    if not ui.vue:  # the classic node fits what it shows (Nodes 2.0 sizes nodes by their content)
        assert created < taller and _height(page, node) == created, (created, taller, _height(page, node))


@pytest.mark.parametrize("ui", bh.ALL_UIS, indirect=True)
def test_saved_tiled_workflow_shows_its_tile_options(page: Any, ui: bh.UI, ui_server: Any) -> None:
    node = bh.make_node(page, "DAV2EstimateDepth", (300, 200))
    workflow = page.evaluate(
        """(id) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const set = { resolution: "tiled", tile_size: 364, tile_overlap: 64, max_tiles: 9, max_side: 1400 };
            for (const w of node.widgets) if (w.name in set) w.value = set[w.name];  // as saved elsewhere
            const wf = JSON.parse(JSON.stringify(app.graph.serialize()));
            app.graph.clear();
            return wf;
        }""",
        node,
    )
    saved = next(n for n in workflow["nodes"] if str(n["id"]) == str(node))["widgets_values"]
    bh.load_workflow(page, workflow)
    page.wait_for_function("(id) => !!window.comfyAPI.app.app.graph.getNodeById(id)", arg=node)
    bh.show_node(page, node)
    _unfold(page, node)
    _expect_shown(page, node, TILED)
    loaded = _saved(page, node)
    assert loaded["hidden"]["values"] == saved, (loaded, saved)
    values = dict(zip(loaded["names"], loaded["hidden"]["values"]))
    assert (values["tile_size"], values["tile_overlap"], values["max_tiles"]) == (364, 64, 9), values
    assert loaded["hidden"]["inputs"]["max_side"] == 1400, loaded


@pytest.mark.parametrize("ui", bh.BOTH_FRONTENDS, indirect=True)
def test_linked_resolution_shows_every_option(page: Any, ui: bh.UI, ui_server: Any) -> None:
    node = bh.make_node(page, "DAV2EstimateDepth", (400, 200))
    _expect_shown(page, node, [])
    linked = page.evaluate(
        """(id) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const primitive = window.LiteGraph.createNode("PrimitiveNode");
            primitive.pos = [60, 200];
            app.graph.add(primitive);
            const slot = node.inputs.findIndex((i) => i.widget?.name === "resolution");
            if (slot < 0) return null;
            primitive.connect(0, node, slot);
            return node.inputs[slot].link != null ? [primitive.id, slot] : null;
        }""",
        node,
    )
    assert linked, "could not link the resolution input"
    _expect_shown(page, node, MODE_WIDGETS)  # the mode comes from the link: every option can matter
    page.evaluate(
        "([id, slot]) => window.comfyAPI.app.app.graph.getNodeById(id).disconnectInput(slot)", [node, linked[1]]
    )
    _expect_shown(page, node, [])
