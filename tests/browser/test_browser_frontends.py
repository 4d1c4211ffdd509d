"""What depends on the frontend, on every tested one: the stock frontend of the test ComfyUI and the newest
``comfyui-frontend-package`` (tools/setup_comfyui.py), each on the classic canvas and in Nodes 2.0.

* Layout: every example workflow, after load and after a run, has no two overlapping nodes and nothing
  outside its node (node boxes from the graph or the Vue node elements, our DOM widgets' rectangles).
* Previews and stats come back after a page reload, a workflow tab switch and loading a saved workflow that
  holds them; a preview whose temp file is gone shows a placeholder, with no console error.
* Our DOM widgets get a real size in both renderers and the node grows with its preview; zoom 10 % and
  400 % keep them inside their nodes.
* Bad input: a workflow saved by an older version (missing widgets) loads with the defaults; the extension
  loaded twice does not double the widgets.

Screenshots go to ``test-artifacts/browser/``; errors from our web files fail every test (errors of a
frontend newer than its backend do not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch
from PIL import Image

import browser_helpers as bh
from browser_checks import (
    INPUT_SIZE,
    assert_layout,
    layout,
    layout_problems,
    preview_state,
    queue_and_wait,
    stats_cells,
    test_image,
    wait_core_images,
)
from browser_helpers import ALL_UIS, BOTH_FRONTENDS, make_node, preview_sel, send_output, stats_sel
from comfy_harness import (
    NODE_IDS,
    TEST_CHECKPOINT,
    estimate_graph,
    load_nodes_module,
    point_cloud_nodes,
    write_test_video,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
EXAMPLE_IMAGE = "dav2_example.jpg"
EXAMPLE_VIDEO = "dav2_example.mp4"
pytestmark = [pytest.mark.browser, pytest.mark.server]
preview = load_nodes_module("preview")


def _example_inputs(server: Any) -> None:
    """The files the example workflows load, in the server's input folder (before the page lists them)."""
    if (server.input_dir / EXAMPLE_VIDEO).is_file():
        return
    yy, xx = np.mgrid[0:96, 0:144].astype(np.float32)
    rgb = np.stack([xx / 143, yy / 95, 0.5 + 0.5 * np.sin(xx / 9)], -1)
    rgb[(xx - 60) ** 2 + (yy - 50) ** 2 < 500] = (0.9, 0.2, 0.1)
    photo = (rgb * 255).astype(np.uint8)
    Image.fromarray(photo).save(server.input_dir / EXAMPLE_IMAGE, quality=95)
    write_test_video(server.input_dir / EXAMPLE_VIDEO, np.stack([np.roll(photo, 6 * i, axis=1) for i in range(4)]))


@pytest.fixture
def example_page(browser: Any, ui: bh.UI, ui_server: Any, request: pytest.FixtureRequest):
    """Like ``page`` on a large screen (a whole example workflow fits at a zoom where Nodes 2.0 still draws
    node contents), with the example workflows' input files on the server before the page opens."""
    _example_inputs(ui_server)
    yield from bh.checked_page(browser, ui_server, ui, request, viewport=(2560, 1600))


#: Make an example workflow quick to run here: the test checkpoint, a small network input, 4 parallax frames,
#: our own output folder (its outputs would land next to the other tests').
_POINT_AT_TEST_INPUTS = """([image, video, model]) => {
    const app = window.comfyAPI.app.app;
    const set = (node, name, value) => {
        const w = node.widgets?.find((w) => w.name === name);
        if (w) { w.value = value; w.callback?.(value); }
    };
    for (const node of app.graph.nodes) {
        if (node.type === "LoadImage") set(node, "image", image);
        if (node.type === "LoadVideo") set(node, "file", video);
        if (node.type === "DAV2ModelLoader") set(node, "model", model);
        if (node.type === "DAV2EstimateDepth" || node.type === "DAV2VideoDepth") set(node, "input_size", 70);
        if (node.type === "DAV2DepthParallax") set(node, "frames", 4);
        set(node, "filename_prefix", `dav2_layout/${node.id}`);
    }
}"""


def _run_from_ui(page: Any, server: Any) -> dict:
    """Queue the canvas graph like the Run button; wait for the prompt's history entry (partial runs count:
    a graph whose other branch cannot run, like the ControlNet example without SD weights)."""
    entry = queue_and_wait(page, server, None, timeout_s=600)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return entry


def _wait_outputs_shown(page: Any, entry: dict) -> None:
    """Wait until every output of the run is on screen: our previews and tables, core image previews."""
    for node_id, out in entry["outputs"].items():
        if "dav2_depth" in out:
            page.wait_for_selector(f'{preview_sel(node_id)}[data-ready="1"]', state="attached", timeout=60_000)
        if "dav2_stats" in out:
            page.wait_for_selector(f"{stats_sel(node_id)} table", state="attached", timeout=60_000)
        if any(i["filename"].endswith((".png", ".jpg", ".webp")) for i in out.get("images", [])):
            wait_core_images(page, node_id)
    page.wait_for_timeout(600)  # Nodes 2.0 lays out the new content, nodes grow


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_example_workflows_do_not_overlap_after_load_and_run(example_page: Any, ui: bh.UI, ui_server: Any) -> None:
    page = example_page
    for name in EXAMPLES:
        workflow = json.loads((ROOT / "example_workflows" / f"{name}.json").read_text(encoding="utf-8"))
        bh.load_workflow(page, workflow, name)
        page.wait_for_timeout(500)
        bh.fit_view(page)
        assert_layout(page, f"{ui.id}-{name}-loaded")
        page.evaluate(_POINT_AT_TEST_INPUTS, [EXAMPLE_IMAGE, EXAMPLE_VIDEO, TEST_CHECKPOINT])
        entry = _run_from_ui(page, ui_server)
        videos = [
            i["filename"]
            for out in entry["outputs"].values()
            for i in out.get("images", [])
            if i["filename"].endswith(".mp4")
        ]
        if any(n["type"] == "DAV2VideoDepth" for n in workflow["nodes"]):
            assert videos, f"{name}: no depth video was saved: {json.dumps(entry['outputs'])[:1000]}"
        else:
            assert any("dav2_depth" in out for out in entry["outputs"].values()), f"{name}: no depth preview ran"
        _wait_outputs_shown(page, entry)
        bh.fit_view(page)
        assert_layout(page, f"{ui.id}-{name}-run")


# ----------------------------------------------------------------------------- restoring what was shown


def _show_synthetic_outputs(page: Any, server: Any) -> tuple[int, int, list[dict], dict]:
    """An Estimate Depth node with a preview (one 60x40 map) and a Depth Stats node with its table, from
    outputs written into the server's temp folder; returns (preview node, stats node, entries, stats)."""
    from dav2_core.depth import DepthMap
    from dav2_core.stats import depth_stats, format_stats

    yy, xx = np.mgrid[0:40, 0:60].astype(np.float32)
    depth = DepthMap(torch.from_numpy(np.sin(xx / 7) + yy / 40)[None], model="restore-test")
    entries = preview.write_preview_entries(depth, str(server.base_dir / "temp"))
    stats = depth_stats(depth)
    node = make_node(page, NODE_IDS["Estimate Depth"], (100, 100))
    stats_node = make_node(page, NODE_IDS["Depth Stats"], (600, 100))
    send_output(page, node, {"dav2_depth": entries})
    send_output(page, stats_node, {"text": [format_stats(stats)], "dav2_stats": [stats]})
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached")
    page.wait_for_selector(f"{stats_sel(stats_node)} table", state="attached")
    page.wait_for_function(  # kept in the node (after the config request)
        "(id) => !!window.comfyAPI.app.app.graph.getNodeById(id).properties.dav2_output", arg=stats_node
    )
    return node, stats_node, entries, stats


def _assert_restored(page: Any, node: int, stats_node: int, entries: list[dict], what: str) -> None:
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached", timeout=60_000)
    state = preview_state(page, node)
    assert state["entry"]["filename"] == entries[0]["filename"], f"{what}: {state}"
    assert state["canvas"] == [60, 40] and "60x40" in state["status"], f"{what}: {state}"
    page.wait_for_selector(f"{stats_sel(stats_node)} table", state="attached", timeout=30_000)
    table = stats_cells(page, stats_node)
    assert "1 image of 60x40" in table["head"] and table["rows"]["valid"] == ["100%"], f"{what}: {table}"
    bh.fit_view(page)
    assert not layout_problems(layout(page)), what
    bh.screenshot(page, f"restored-{what}")


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_previews_and_stats_come_back(page: Any, ui: bh.UI, ui_server: Any) -> None:
    """After a page reload, a tab switch and loading the saved workflow; a gone temp file shows a placeholder."""
    node, stats_node, entries, _ = _show_synthetic_outputs(page, ui_server)
    page.wait_for_timeout(500)

    page.reload(wait_until="domcontentloaded")
    bh.open_comfy(page, ui_server.url, node_type=NODE_IDS["Estimate Depth"])
    _assert_restored(page, node, stats_node, entries, f"{ui.id}-reload")

    page.evaluate("() => window.comfyAPI.app.app.extensionManager.command.execute('Comfy.NewBlankWorkflow')")
    page.wait_for_function("() => window.comfyAPI.app.app.graph.nodes.length === 0")
    assert page.locator(preview_sel(node)).count() == 0
    page.evaluate("() => window.comfyAPI.app.app.extensionManager.command.execute('Workspace.PreviousOpenedWorkflow')")
    page.wait_for_function("(id) => !!window.comfyAPI.app.app.graph.getNodeById(id)", arg=node)
    _assert_restored(page, node, stats_node, entries, f"{ui.id}-tab-switch")

    saved = page.evaluate("() => window.comfyAPI.app.app.graph.serialize()")
    assert saved["nodes"] and all(n.get("properties", {}).get("dav2_output") for n in saved["nodes"])
    json.dumps(saved)  # a saved file holds plain JSON
    page.evaluate("() => window.comfyAPI.app.app.graph.clear()")
    bh.load_workflow(page, saved, "saved-with-outputs")
    _assert_restored(page, node, stats_node, entries, f"{ui.id}-saved-workflow")

    # A frontend that restores outputs itself (e.g. a job opened from the queue) sets app.nodeOutputs, which
    # calls onNodeOutputsUpdated: the preview shows them although the workflow holds none.
    bare = json.loads(json.dumps(saved))
    for n in bare["nodes"]:
        n["properties"].pop("dav2_output", None)
    bh.load_workflow(page, bare, "outputs-from-the-frontend")
    page.wait_for_timeout(300)
    assert page.locator(preview_sel(node)).count() == 0
    page.evaluate(
        "([id, out]) => { window.comfyAPI.app.app.nodeOutputs = {[String(id)]: out}; }", [node, {"dav2_depth": entries}]
    )
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached", timeout=30_000)
    assert preview_state(page, node)["entry"]["filename"] == entries[0]["filename"]

    # The server restarted since (temp folder emptied): a clear placeholder, no failed request, no error.
    (ui_server.base_dir / "temp" / entries[0]["subfolder"] / entries[0]["filename"]).unlink()
    page.evaluate("() => { window.comfyAPI.app.app.nodeOutputs = {}; }")
    bh.load_workflow(page, saved, "saved-file-gone")
    page.wait_for_selector(f'{preview_sel(node)}[data-missing="1"]', state="attached", timeout=30_000)
    placeholder = page.locator(f"{preview_sel(node)} .dav2-placeholder")
    assert placeholder.is_visible() and "no longer on the server" in placeholder.text_content()
    assert "run again" in page.locator(f"{preview_sel(node)} .dav2-status").text_content()
    box = placeholder.bounding_box()
    assert box["width"] > 100 and box["height"] > 40, box
    bh.fit_view(page)
    assert not layout_problems(layout(page))
    bh.screenshot(page, f"restored-{ui.id}-file-gone")


@pytest.mark.parametrize("ui", BOTH_FRONTENDS, indirect=True)
def test_fresh_output_whose_file_is_gone_shows_the_placeholder(
    page: Any, ui: bh.UI, ui_server: Any, console: bh.ConsoleLog
) -> None:
    from dav2_core.depth import DepthMap

    (entry,) = preview.write_preview_entries(DepthMap(torch.rand(1, 8, 8)), str(ui_server.base_dir / "temp"))
    (ui_server.base_dir / "temp" / entry["subfolder"] / entry["filename"]).unlink()
    node = make_node(page, NODE_IDS["Estimate Depth"])
    send_output(page, node, {"dav2_depth": [entry]})
    page.wait_for_selector(f'{preview_sel(node)}[data-missing="1"]', state="attached")
    assert page.locator(f"{preview_sel(node)} .dav2-placeholder").is_visible()
    assert preview_state(page, node)["entry"] is None
    assert not [m for m in console.messages if m["type"] == "error" and "/view?" in m["url"] + m["text"]]


# ----------------------------------------------------------------------------- sizes, zoom


def _widget_boxes(page: Any, node: int) -> dict:
    return page.evaluate(
        """(id) => {
            const q = (s) => document.querySelector(s);
            const r = (e) => { if (!e) return null; const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
            const root = q(`[data-dav2="depth-preview"][data-dav2-node="${id}"]`);
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            return {root: r(root), view: r(root.querySelector(".dav2-view")), canvas: r(root.querySelector("canvas.dav2-depth")),
                    relief: r(root.querySelector("canvas.dav2-relief")), rootH: root.clientHeight,
                    viewH: root.querySelector(".dav2-view").clientHeight, size: [...node.size]};
        }""",
        node,
    )


def _inside(a: list[float], b: list[float], tol: float = 1.0) -> bool:
    return a[0] >= b[0] - tol and a[1] >= b[1] - tol and a[2] <= b[2] + tol and a[3] <= b[3] + tol


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_widgets_get_their_size_and_the_node_grows_with_the_preview(page: Any, ui: bh.UI, ui_server: Any) -> None:
    from dav2_core.depth import DepthMap

    temp = str(ui_server.base_dir / "temp")
    wide = preview.write_preview_entries(DepthMap(torch.rand(1, 60, 160)), temp)
    tall = preview.write_preview_entries(DepthMap(torch.rand(1, 200, 100)), temp)
    node = make_node(page, NODE_IDS["Colorize Depth"], (100, 100))
    # a node below: the preview may grow down to it, never over it (the portrait image would want more)
    blocker = make_node(page, "PreviewImage", (100, 650))
    send_output(page, node, {"dav2_depth": wide})
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached")
    bh.set_view(page, 1.0, (0, 0))
    page.wait_for_timeout(500)
    first = _widget_boxes(page, node)
    assert first["rootH"] >= 180 and first["viewH"] >= 60, first  # controls + a real view, not squashed
    assert _inside(first["canvas"], first["view"]) and _inside(first["view"], first["root"]), first
    canvas_w, canvas_h = first["canvas"][2] - first["canvas"][0], first["canvas"][3] - first["canvas"][1]
    assert abs(canvas_w / canvas_h - 160 / 60) < 0.1, first  # the picture keeps its aspect
    assert not layout_problems(layout(page))
    bh.screenshot(page, f"sizes-{ui.id}-wide")

    send_output(page, node, {"dav2_depth": tall})
    page.wait_for_selector(f'{preview_sel(node)}[data-execution="2"][data-ready="1"]', state="attached")
    page.wait_for_timeout(600)
    second = _widget_boxes(page, node)
    assert second["size"][1] > first["size"][1] + 50, (first, second)  # the node grew with the portrait preview
    assert second["viewH"] > first["viewH"] + 50, (first, second)
    canvas_w, canvas_h = second["canvas"][2] - second["canvas"][0], second["canvas"][3] - second["canvas"][1]
    assert abs(canvas_w / canvas_h - 100 / 200) < 0.05 and canvas_h > 150, second
    boxes = {n["id"]: n["box"] for n in layout(page)}
    assert boxes[node][3] <= boxes[blocker][1], (boxes, "the preview node grew over the node below it")
    assert not layout_problems(layout(page))
    bh.screenshot(page, f"sizes-{ui.id}-tall")

    page.check(f"{preview_sel(node)} .dav2-relief-toggle input")
    page.wait_for_timeout(400)
    relief = _widget_boxes(page, node)
    assert relief["relief"] and relief["relief"][3] - relief["relief"][1] > 100, relief
    assert _inside(relief["relief"], relief["view"]) and _inside(relief["view"], relief["root"]), relief
    assert not layout_problems(layout(page))
    bh.screenshot(page, f"sizes-{ui.id}-relief")


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_previews_stay_inside_their_nodes_at_10_and_400_percent(page: Any, ui: bh.UI, ui_server: Any) -> None:
    node, stats_node, _, _ = _show_synthetic_outputs(page, ui_server)
    for scale, offset in [(0.1, (2000, 2000)), (4.0, (-90, -60)), (4.0, (-200, -400))]:
        bh.set_view(page, scale, offset)
        page.wait_for_timeout(500)
        nodes = layout(page)
        problems = layout_problems(nodes)
        bh.screenshot(page, f"zoom-{ui.id}-{scale}-{offset[1]}")
        assert not problems, f"zoom {scale}: {problems}"
        shown = [w for n in nodes for w in n["ours"] if w["shown"]]
        assert shown, f"zoom {scale}: none of our widgets is shown"


# ----------------------------------------------------------------------------- bad input


def _old_workflow() -> dict:
    """depth_colorize_save as an older version of the pack saved it: Estimate Depth without the quality
    widgets (flip_tta, refine, temporal_*), Colorize Depth from before the range options."""
    workflow = json.loads((ROOT / "example_workflows" / "depth_colorize_save.json").read_text(encoding="utf-8"))
    for node in workflow["nodes"]:
        if node["type"] == NODE_IDS["Estimate Depth"]:
            node["widgets_values"] = node["widgets_values"][:6]
        if node["type"] == NODE_IDS["Colorize Depth"]:
            node["widgets_values"] = node["widgets_values"][:2]
    return workflow


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_workflow_of_an_older_version_loads_with_defaults(page: Any, ui: bh.UI, ui_server: Any) -> None:
    bh.load_workflow(page, _old_workflow(), "old-version")
    values = page.evaluate(
        """async (types) => {
            const app = window.comfyAPI.app.app;
            const out = {};
            for (const node of app.graph.nodes) {
                if (types.includes(node.type)) out[node.type] = Object.fromEntries(node.widgets.filter((w) => !w.name.startsWith("dav2_")).map((w) => [w.name, w.value]));
            }
            out.prompt = (await app.graphToPrompt()).output;
            return out;
        }""",
        [NODE_IDS["Estimate Depth"], NODE_IDS["Colorize Depth"]],
    )
    estimate, colorize = values[NODE_IDS["Estimate Depth"]], values[NODE_IDS["Colorize Depth"]]
    assert (estimate["flip_tta"], estimate["refine"], estimate["temporal_consistency"]) == (False, 0, False), estimate
    assert estimate["temporal_smoothing"] == 1 and estimate["input_size"] == 518, estimate
    assert (colorize["colormap"], colorize["invert"]) == ("Spectral_r", False), colorize
    assert colorize["range_mode"] == "min_max" and (colorize["manual_min"], colorize["manual_max"]) == (0, 1), colorize
    queued = next(n for n in values["prompt"].values() if n["class_type"] == NODE_IDS["Colorize Depth"])
    assert queued["inputs"]["range_mode"] == "min_max", queued
    bh.fit_view(page)
    assert_layout(page, f"{ui.id}-old-version")


#: A range value of each node as the example workflows hold it now -> the older name of the same choice
#: (dav2_core/ranges.py LEGACY_NAMES), for a workflow saved by an earlier version.
_OLDER_VALUES = {
    NODE_IDS["Estimate Depth"]: ("normalization", "min_max", "per_image"),
    NODE_IDS["Colorize Depth"]: ("range_mode", "min_max", "auto"),
    NODE_IDS["Video Depth"]: ("normalization", "clip", "two_pass"),
}


def _older_names_workflow(name: str) -> dict:
    """Example workflow ``name`` as an earlier version saved it: the range widgets hold the older names."""
    workflow = json.loads((ROOT / "example_workflows" / f"{name}.json").read_text(encoding="utf-8"))
    changed = 0
    for node in workflow["nodes"]:
        if node["type"] in _OLDER_VALUES:
            _, current, older = _OLDER_VALUES[node["type"]]
            values = node["widgets_values"]
            assert values.count(current) == 1, (name, node["type"], values)
            values[values.index(current)] = older
            changed += 1
    assert changed, name
    return workflow


_RANGE_WIDGETS = """(types) => {
    const app = window.comfyAPI.app.app;
    const out = {};
    for (const node of app.graph.nodes) {
        const name = types[node.type];
        if (!name) continue;
        const element = document.querySelector(`.lg-node[data-node-id="${node.id}"]`);
        out[node.id] = {
            type: node.type,
            value: node.widgets.find((w) => w.name === name)?.value,
            saved: node.serialize().widgets_values,
            text: element ? element.innerText : null,
        };
    }
    return out;
}"""


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_workflow_with_older_range_names_loads_with_the_current_ones(
    example_page: Any, ui: bh.UI, ui_server: Any
) -> None:
    """A workflow saved with the older range names (per_image, auto, two_pass) shows, saves and queues the current
    names of the same choices (min_max, min_max, clip): renamed by web/range_names.js from the table the server
    sends; the image workflow then runs."""
    page = example_page
    types = {node_type: widget for node_type, (widget, _, _) in _OLDER_VALUES.items()}
    for name in ("video_depth_anything", "depth_colorize_save"):
        bh.load_workflow(page, _older_names_workflow(name), f"older-names-{name}")
        page.wait_for_timeout(500)
        shown = page.evaluate(_RANGE_WIDGETS, types)
        assert shown, name
        for node in shown.values():
            _, current, older = _OLDER_VALUES[node["type"]]
            assert node["value"] == current and current in node["saved"] and older not in node["saved"], node
            if ui.vue:  # Nodes 2.0 shows the widget's value on the node element
                assert node["text"] is not None and current in node["text"] and older not in node["text"], node
        prompt = page.evaluate("async () => (await window.comfyAPI.app.app.graphToPrompt()).output")
        queued = {n["class_type"]: n["inputs"] for n in prompt.values()}
        for node_type, (widget, current, _) in _OLDER_VALUES.items():
            if node_type in queued:
                assert queued[node_type][widget] == current, (name, node_type, queued[node_type])
    bh.fit_view(page)
    bh.screenshot(page, f"older-names-{ui.id}")
    page.evaluate(_POINT_AT_TEST_INPUTS, [EXAMPLE_IMAGE, EXAMPLE_VIDEO, TEST_CHECKPOINT])
    entry = _run_from_ui(page, ui_server)  # queued with the current names, validated and run (success)
    saved = [i for out in entry["outputs"].values() for i in out.get("images", []) if i.get("type") == "output"]
    assert saved, json.dumps(entry["outputs"])[:1000]  # (the estimate may come from the cache of an earlier UI's run)


@pytest.mark.parametrize("ui", BOTH_FRONTENDS, indirect=True)
def test_extension_loaded_twice_adds_its_widgets_once(
    page: Any, ui: bh.UI, ui_server: Any, console: bh.ConsoleLog
) -> None:
    from dav2_core.depth import DepthMap

    loaded = page.evaluate(
        """async (url) => {
            await import(url + "?second-copy");
            const app = window.comfyAPI.app.app;
            return app.extensions.filter((e) => e.name === "dav2.DepthAnythingV2").length;
        }""",
        f"{ui_server.url}{bh.WEB_URL}dav2.js",
    )
    assert loaded == 1
    assert any("already registered" in m["text"] for m in console.messages), console.messages[-5:]
    entries = preview.write_preview_entries(DepthMap(torch.rand(1, 30, 40)), str(ui_server.base_dir / "temp"))
    node = make_node(page, NODE_IDS["Estimate Depth"])
    for execution in (1, 2):
        send_output(page, node, {"dav2_depth": entries})
        page.wait_for_selector(f'{preview_sel(node)}[data-execution="{execution}"][data-ready="1"]', state="attached")
    counts = page.evaluate(
        """(id) => ({
            widgets: window.comfyAPI.app.app.graph.getNodeById(id).widgets.filter((w) => w.name.startsWith("dav2_")).length,
            elements: document.querySelectorAll(`[data-dav2][data-dav2-node="${id}"]`).length,
            stylesheets: document.querySelectorAll("link#dav2-style").length,
        })""",
        node,
    )
    assert counts == {"widgets": 1, "elements": 1, "stylesheets": 1}, counts


# ----------------------------------------------------------------------------- the point cloud in 3D


@pytest.mark.parametrize("ui", [pytest.param(u, id=u.id) for u in bh.UIS if u.frontend == "newest"], indirect=True)
def test_point_cloud_opens_in_core_preview_3d(page: Any, ui: bh.UI, ui_server: Any) -> None:
    """Depth to Normals' ``ply_file`` into core's Preview 3D: the newest frontend's 3D viewer fetches our PLY
    from the output folder (the stock 1.32 frontend has no PLY loader; README says so)."""
    Image.fromarray(test_image(40, 60, 1)).save(ui_server.input_dir / "dav2_ply.png")
    graph, photo, estimate = estimate_graph("dav2_ply.png", input_size=INPUT_SIZE)
    normals, viewer = point_cloud_nodes(graph, estimate["depth"], photo["IMAGE"], "dav2_3d/cloud")
    normals_id, viewer_id = str(normals.id), str(viewer.id)
    bh.load_api_graph(page, graph.to_api())
    bh.show_node(page, viewer_id)  # Nodes 2.0 mounts (and so loads) only the nodes on screen
    with page.expect_response(lambda r: ".ply" in r.url, timeout=120_000) as response:
        entry = queue_and_wait(page, ui_server, None)
    (ply,) = ui_server.output_files(entry, normals_id, "ply_files")
    assert entry["outputs"][viewer_id]["result"][0] == f"dav2_3d/{ply.name}"
    query = parse_qs(urlparse(response.value.url).query)
    assert (query["filename"], query.get("subfolder"), query.get("type")) == ([ply.name], ["dav2_3d"], ["output"])
    assert response.value.status == 200 and response.value.body() == ply.read_bytes()
