"""The web extension (web/*.js) in a real browser against a real ComfyUI: what it shows, exactly.

Browser tests drive Debian's ``/usr/bin/chromium`` with Playwright (never a downloaded browser) against the
session ``comfy_server`` (``main.py --cpu`` with this pack and a seeded random-init checkpoint). They load
a graph in the real frontend, queue it from the UI, then check what a user sees: the Depth Stats table,
the hover read-out against an independent truth (``dav2_core`` run in this process on the same image with
the same checkpoint), the canvas colours against the colormap LUTs, and the bad inputs of issue 5
(constant depth, one pixel, 4K, metric vs relative, re-execution). Screenshots and the browser console go
to ``test-artifacts/browser/``; errors or warnings from our extension's files fail the test.

These tests check our own logic, so most run once, on the stock frontend's classic canvas; the two that
exercise pointer input inside the node (hover and colormap switch; drag, wheel) also run on the newest
frontend and in Nodes 2.0. tests/browser/test_browser_frontends.py covers what depends on the frontend (layout,
restoring previews, sizing, zoom, loading old workflows) on all four.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import browser_helpers as bh
from browser_checks import (
    INPUT_SIZE,
    assert_on_top,
    canvas_pixels,
    check_colours,
    check_hover,
    check_matches_output,
    check_stats_table,
    hover,
    preview_state,
    queue_and_wait,
    relief_pixels,
    saved_depth,
    stats_cells,
    test_image,
    truth_depth,
    wait_core_images,
)
from browser_helpers import (
    ALL_UIS,
    METRIC_CHECKPOINT,
    METRIC_MAX_DEPTH,
    make_node,
    preview_sel,
    send_output,
    set_widgets,
    show_node,
    stats_sel,
)
from comfy_harness import NODE_IDS, TEST_CHECKPOINT, depth_graph, load_nodes_module

preview = load_nodes_module("preview")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser, pytest.mark.server]


def _temp_dir(server: Any) -> str:
    return str(server.base_dir / "temp")


def _graph(image_name: str, model_file: str, **kwargs: Any) -> tuple[dict, dict[str, int]]:
    return depth_graph(image_name, model_file, INPUT_SIZE, **kwargs)


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_workflow_stats_hover_and_colormap(page: Any, ui: bh.UI, ui_server: Any, checkpoints: dict) -> None:
    """Load a graph, queue it from the UI; stats table, exact hover value, colormap switch without a re-run."""
    comfy_server = ui_server
    # another picture per UI: the server would answer the same graph from its cache, with no preview message
    image = test_image(96, 136, seed=3 + bh.UIS.index(ui))
    name = comfy_server.upload_image(image, f"dav2_browser_main_{ui.id}.png")
    truth = truth_depth(checkpoints["relative"], image)
    graph, ids = _graph(name, TEST_CHECKPOINT, save_npy="dav2_browser/main")
    stats = ids["stats"]
    bh.load_api_graph(page, graph)
    entry = queue_and_wait(page, comfy_server, ids["estimate"], execution=1)
    # The server's own DEPTH output (Save Depth .npy) agrees with the independent in-process computation.
    server_depth = saved_depth(comfy_server, entry, str(ids["save"]))
    assert server_depth.shape == truth.shape == (96, 136)
    assert np.abs(server_depth - truth).max() <= 1e-5 * np.abs(truth).max()

    # Depth Stats shows its table, with the numbers of the DEPTH output (its plot is checked at the end).
    page.wait_for_selector(stats_sel(stats), state="attached", timeout=30_000)
    show_node(page, stats)
    check_stats_table(page, stats, truth, "relative (inverse depth)")
    bh.screenshot(page, "main-stats")

    # Estimate Depth: the preview, hover, colormaps.
    show_node(page, 3, 520, 560)
    state = preview_state(page, 3)
    assert state["entry"]["width"] == 136 and state["entry"]["height"] == 96
    assert state["canvas"] == [136, 96] and state["entry"]["units"] == "relative"
    points = [(0, 0), (135, 95), (67, 40), (12, 80), (100, 5)]
    check_hover(page, 3, server_depth, points, "relative")  # the DEPTH output at that pixel
    check_hover(page, 3, truth, points, "relative")  # and the independent truth
    bh.screenshot(page, "main-hover")
    check_colours(page, 3, truth, "Spectral_r", metric=False, invert=False)

    history_before = len(comfy_server.get("/history"))
    spectral = canvas_pixels(page, 3)
    page.select_option(f"{preview_sel(3)} select.dav2-colormap", "viridis")
    page.wait_for_function(f"() => document.querySelector('{preview_sel(3)}').dataset.colormap === 'viridis'")
    check_colours(page, 3, truth, "viridis", metric=False, invert=False)
    assert np.abs(canvas_pixels(page, 3)[..., :3].astype(int) - spectral[..., :3]).mean() > 20
    page.check(f"{preview_sel(3)} .dav2-invert input")
    check_colours(page, 3, truth, "viridis", metric=False, invert=True)
    bh.screenshot(page, "main-viridis-inverted")
    time.sleep(0.5)
    assert len(comfy_server.get("/history")) == history_before, "switching the colormap re-ran the graph"
    assert preview_state(page, 3)["execution"] == 1

    # The Depth Stats plot arrives as a normal "images" output and shows on the node.
    stats_out = entry["outputs"][str(stats)]
    assert stats_out.get("images"), f"Depth Stats sent no plot image in its UI output: {list(stats_out)}"
    wait_core_images(page, stats)
    show_node(page, stats)
    assert_on_top(page, f"{stats_sel(stats)} table")
    bh.screenshot(page, "main-stats-plot")


def test_reexecution_with_new_image_replaces_preview(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    first = test_image(72, 100, seed=5)
    second = test_image(110, 60, seed=6)
    name1 = comfy_server.upload_image(first, "dav2_browser_first.png")
    name2 = comfy_server.upload_image(second, "dav2_browser_second.png")
    graph, ids = _graph(name1, TEST_CHECKPOINT, colorize=False)
    bh.load_api_graph(page, graph)
    queue_and_wait(page, comfy_server, 3, execution=1)
    assert preview_state(page, 3)["canvas"] == [100, 72]

    page.evaluate(
        """(name) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(1);
            const w = node.widgets.find((w) => w.name === "image");
            w.value = name;
            w.callback?.(name);
        }""",
        name2,
    )
    queue_and_wait(page, comfy_server, 3, execution=2)
    # Our widgets are display only: not in the saved workflow's widget values, not in the queued prompt.
    saved = page.evaluate(
        """async (stats) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(3);
            const wf = app.graph.serialize().nodes.find((n) => n.id === 3);
            const prompt = (await app.graphToPrompt()).output;
            return {values: wf.widgets_values.length, real: node.widgets.filter((w) => !w.name.startsWith("dav2_")).length,
                    inputs: Object.keys(prompt["3"].inputs), stats: Object.keys(prompt[stats].inputs)};
        }""",
        str(ids["stats"]),
    )
    assert saved["values"] == saved["real"], saved
    assert not [k for k in saved["inputs"] + saved["stats"] if k.startswith("dav2_")], saved
    state = preview_state(page, 3)
    assert state["canvas"] == [60, 110] and state["entry"]["width"] == 60 and state["entry"]["height"] == 110
    assert "60x110" in state["status"]
    show_node(page, 3, 420, 620)
    truth2 = truth_depth(checkpoints["relative"], second)
    check_hover(page, 3, truth2, [(0, 0), (59, 109), (30, 55)], "relative")
    check_colours(page, 3, truth2, "Spectral_r", metric=False, invert=False)
    page.wait_for_selector(f'{stats_sel(ids["stats"])}[data-execution="2"]', state="attached")
    check_stats_table(page, ids["stats"], truth2, "relative (inverse depth)")
    bh.screenshot(page, "reexecution")


def test_metric_model_shows_metres(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(80, 120, seed=7)
    name = comfy_server.upload_image(image, "dav2_browser_metric.png")
    truth = truth_depth(checkpoints["metric"], image)
    assert 0.0 < truth.min() < truth.max() < METRIC_MAX_DEPTH  # metres from the sigmoid head
    graph, ids = _graph(name, METRIC_CHECKPOINT, colorize=False)
    bh.load_api_graph(page, graph)
    queue_and_wait(page, comfy_server, 3, execution=1)
    state = preview_state(page, 3)
    assert state["entry"]["units"] == "m" and state["entry"]["kind"] == "metric"
    show_node(page, 3, 480, 540)
    check_hover(page, 3, truth, [(3, 4), (119, 79), (60, 40)], "m")
    check_colours(page, 3, truth, "Spectral_r", metric=True, invert=False)  # near (small metres) = high end
    assert page.locator(f"{preview_sel(3)} .dav2-axis-max").text_content().endswith(" m")
    check_stats_table(page, ids["stats"], truth, "m")
    bh.screenshot(page, "metric")


def test_colorize_preview_uses_the_node_range(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    """Colorize Depth's preview colours with the node's range_mode (min_max, manual, percentile; relative and
    metric; inverted): every canvas pixel equals the node's IMAGE output; hover still reads the exact depth."""
    from dav2_core.colormaps import colorize_range
    from dav2_core.depth import DepthMap

    image = test_image(64, 90, seed=13)
    name = comfy_server.upload_image(image, "dav2_browser_range.png")
    graph, ids = _graph(name, TEST_CHECKPOINT, stats=False, save_npy="dav2_browser/range")
    preview_id, save_id = str(ids["preview"]), str(ids["save"])
    bh.load_api_graph(page, graph)
    entry = queue_and_wait(page, comfy_server, 4, execution=1)
    depth = saved_depth(comfy_server, entry, save_id)
    show_node(page, 4, 420, 480)

    # min_max: unchanged, the depth's own min..max (the independent LUT check and the node's output agree)
    check_colours(page, 4, depth, "Spectral_r", metric=False, invert=False)
    auto = check_matches_output(page, comfy_server, entry, preview_id, 4)
    assert "colours" not in preview_state(page, 4)["status"]

    # manual: a window inside the depth's range, so both ends clip
    # the frontend rounds float widgets to their 0.01 step; the random-init model's depth is only ~0.03..0.05
    lo, hi = np.ceil(depth.min() * 100) / 100, np.floor(depth.max() * 100) / 100
    assert depth.min() < lo < hi < depth.max()
    set_widgets(page, 4, range_mode="manual", manual_min=float(lo), manual_max=float(hi))
    entry = queue_and_wait(page, comfy_server, 4, execution=2)
    shown = entry["outputs"]["4"]["dav2_depth"][0]
    assert (shown["display_min"], shown["display_max"]) == pytest.approx((lo, hi), abs=1e-6)
    manual = check_matches_output(page, comfy_server, entry, preview_id, 4)
    assert np.abs(manual - auto).mean() > 10, "the manual range should change the colours"
    assert "colours" in preview_state(page, 4)["status"]
    show_node(page, 4, 420, 480)
    bh.screenshot(page, "colorize-manual")
    check_hover(page, 4, depth, [(0, 0), (89, 63), (45, 30)], "relative")  # values stay exact

    # percentile, inverted: the preview follows the node's invert too
    set_widgets(page, 4, range_mode="percentile", invert=True)
    entry = queue_and_wait(page, comfy_server, 4, execution=3)
    shown = entry["outputs"]["4"]["dav2_depth"][0]
    want = [float(v[0]) for v in colorize_range(DepthMap(torch.from_numpy(depth)[None]), "percentile")]
    assert [shown["display_min"], shown["display_max"]] == pytest.approx(want, rel=1e-5)
    assert page.locator(f"{preview_sel(4)} .dav2-invert input").is_checked()
    check_matches_output(page, comfy_server, entry, preview_id, 4)

    # metric model, manual range in metres (near = fewer metres)
    set_widgets(page, 2, model=METRIC_CHECKPOINT)
    set_widgets(page, 4, invert=False, range_mode="min_max")
    entry = queue_and_wait(page, comfy_server, 4, execution=4)
    metres = saved_depth(comfy_server, entry, save_id)
    check_colours(page, 4, metres, "Spectral_r", metric=True, invert=False)
    check_matches_output(page, comfy_server, entry, preview_id, 4)
    lo, hi = (round(float(np.quantile(metres, q)), 2) for q in (0.2, 0.7))
    assert metres.min() < lo < hi < metres.max()
    set_widgets(page, 4, range_mode="manual", manual_min=lo, manual_max=hi)
    entry = queue_and_wait(page, comfy_server, 4, execution=5)
    shown = entry["outputs"]["4"]["dav2_depth"][0]
    assert shown["units"] == "m" and (shown["display_min"], shown["display_max"]) == pytest.approx((lo, hi), abs=1e-6)
    check_matches_output(page, comfy_server, entry, preview_id, 4)
    bh.screenshot(page, "colorize-metric-manual")


def test_single_pixel_image(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(1, 1, seed=8)
    name = comfy_server.upload_image(image, "dav2_browser_1px.png")
    truth = truth_depth(checkpoints["relative"], image)
    assert truth.shape == (1, 1)
    graph, ids = _graph(name, TEST_CHECKPOINT, colorize=False)
    bh.load_api_graph(page, graph)
    queue_and_wait(page, comfy_server, 3, execution=1)
    state = preview_state(page, 3)
    assert state["canvas"] == [1, 1] and state["entry"]["min"] == state["entry"]["max"]
    assert "constant depth" in state["status"]
    show_node(page, 3, 360, 420)
    r = hover(page, 3, 0, 0, 1, 1)
    assert (r["x"], r["y"]) == ("0", "0")
    assert float(r["value"]) == pytest.approx(truth[0, 0], rel=1e-5, abs=1e-6)
    check_colours(page, 3, truth, "Spectral_r", metric=False, invert=False)  # zero range: first LUT colour
    table = stats_cells(page, ids["stats"])
    assert table["rows"]["range"] == ["0"] and table["rows"]["std"] == ["0"]
    bh.screenshot(page, "single-pixel")


def test_4k_image_downsampled_display_exact_hover(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(2160, 3840, seed=9)
    name = comfy_server.upload_image(image, "dav2_browser_4k.png")
    truth = truth_depth(checkpoints["relative"], image)
    bh.load_api_graph(page, _graph(name, TEST_CHECKPOINT, colorize=False, stats=False)[0])
    queue_and_wait(page, comfy_server, 3, execution=1, timeout_s=600)
    state = preview_state(page, 3)
    assert (state["entry"]["width"], state["entry"]["height"]) == (3840, 2160)
    assert state["canvas"] == [1024, 576], "a 4K depth must be displayed downsampled"
    show_node(page, 3, 1100, 800)
    check_hover(page, 3, truth, [(0, 0), (3839, 2159), (1921, 1033), (3001, 211)], "relative")
    check_colours(page, 3, truth, "Spectral_r", metric=False, invert=False)
    bh.screenshot(page, "4k")


def test_synthetic_outputs_exact_full_res_nan_constant_and_late_load(page: Any, comfy_server: Any) -> None:
    """Previews of known depth maps sent through the node's real onExecuted: every full-resolution pixel of
    a 4K map differs from its neighbours, so reading the wrong pixel shows; NaN pixels read "no value";
    a constant map shows zero range; a slow older load never replaces a newer output."""
    from dav2_core.depth import DepthMap

    h, w = 2160, 3840
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = ((xx * 7919 + yy * 104729) % 1000).astype(np.float32) / 100.0 + 0.5  # metres 0.5..10.49
    pattern[100:300, 200:500] = np.nan
    big = preview.write_preview_entries(
        DepthMap(torch.from_numpy(pattern)[None], kind="metric"), _temp_dir(comfy_server)
    )
    flat = preview.write_preview_entries(DepthMap(torch.full((1, 48, 64), 3.5), kind="metric"), _temp_dir(comfy_server))
    node = make_node(page, NODE_IDS["Estimate Depth"])

    # Late load: the 4K output arrives first, the small one right after; the small one must win.
    send_output(page, node, {"dav2_depth": big})
    send_output(page, node, {"dav2_depth": flat})
    page.wait_for_selector(f'{preview_sel(node)}[data-execution="2"][data-ready="1"]', state="attached")
    page.wait_for_timeout(3000)  # time for the 4K decode to finish and (wrongly) land
    state = preview_state(page, node)
    assert state["canvas"] == [64, 48] and state["entry"]["filename"] == flat[0]["filename"]
    assert not state["loading"]
    assert "constant depth" in state["status"]
    show_node(page, node, 420, 420)
    r = hover(page, node, 10, 20, 64, 48)
    assert float(r["value"]) == 3.5 and r["text"].endswith(" m"), r
    px = canvas_pixels(page, node)
    lut0 = np.asarray(comfy_server.get("/dav2/colormaps")["Spectral_r"][:3])
    assert (px[..., :3] == lut0).all() and (px[..., 3] == 255).all()
    bh.screenshot(page, "synthetic-constant")

    send_output(page, node, {"dav2_depth": big})
    page.wait_for_selector(f'{preview_sel(node)}[data-execution="3"][data-ready="1"]', state="attached", timeout=60_000)
    state = preview_state(page, node)
    assert state["canvas"] == [1024, 576] and "px without value" in state["status"]
    show_node(page, node, 1100, 800)
    lo, hi = np.nanmin(pattern), np.nanmax(pattern)
    for x, y in [(0, 0), (3839, 2159), (1777, 999), (2500, 1500), (640, 2000), (3000, 50)]:
        r = hover(page, node, x, y, w, h)
        rx, ry = int(r["x"]), int(r["y"])
        assert abs(rx - x) <= 5 and abs(ry - y) <= 5
        assert abs(float(r["value"]) - pattern[ry, rx]) <= (hi - lo) / 131070 + 1e-6, (rx, ry, r)
    r = hover(page, node, 350, 200, w, h)
    assert "no value" in r["text"] and r["value"] == ""
    px = canvas_pixels(page, node)
    assert px[int(200 / h * 576), int(350 / w * 1024), 3] == 0  # NaN pixels are transparent
    bh.screenshot(page, "synthetic-4k")


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_relief_view_drag_recolour_and_wheel_zoom(page: Any, ui: bh.UI, ui_server: Any) -> None:
    """The 3D relief draws the depth, turns when dragged, follows the colormap; the wheel still zooms the canvas."""
    from dav2_core.depth import DepthMap

    comfy_server = ui_server
    yy, xx = np.mgrid[0:90, 0:150].astype(np.float32)
    bumps = np.exp(-((xx - 45) ** 2 + (yy - 45) ** 2) / 300.0) + 0.6 * np.exp(
        -((xx - 110) ** 2 + (yy - 50) ** 2) / 150.0
    )
    entries = preview.write_preview_entries(DepthMap(torch.from_numpy(bumps)[None]), _temp_dir(comfy_server))
    node = make_node(page, NODE_IDS["Colorize Depth"])
    send_output(page, node, {"dav2_depth": entries})
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached")
    show_node(page, node, 560, 560)

    page.check(f"{preview_sel(node)} .dav2-relief-toggle input")
    relief = page.locator(f"{preview_sel(node)} canvas.dav2-relief")
    relief.wait_for(state="visible")
    assert not page.locator(f"{preview_sel(node)} canvas.dav2-depth").is_visible()
    page.wait_for_timeout(300)
    before = relief_pixels(page, node)
    assert (before[..., 3] > 0).mean() > 0.15, "the relief drew almost nothing"
    bh.screenshot(page, "relief")

    box = relief.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy - 50, steps=4)
    page.mouse.up()
    page.wait_for_timeout(300)
    turned = relief_pixels(page, node)
    assert np.abs(turned.astype(int) - before).mean() > 5, "dragging did not turn the relief"
    bh.screenshot(page, "relief-turned")

    page.select_option(f"{preview_sel(node)} select.dav2-colormap", "gray")
    page.wait_for_timeout(300)
    grey = relief_pixels(page, node)
    drawn = grey[..., 3] == 255
    spread = np.abs(grey[..., 0].astype(int) - grey[..., 1]) + np.abs(grey[..., 1].astype(int) - grey[..., 2])
    assert drawn.any() and spread[drawn].max() <= 3, "the relief did not follow the gray colormap"

    page.uncheck(f"{preview_sel(node)} .dav2-relief-toggle input")
    assert not relief.is_visible()
    check_hover(page, node, bumps.astype(np.float64), [(45, 45), (110, 50)], "relative")
    check_colours(page, node, bumps.astype(np.float64), "gray", metric=False, invert=False)

    scale_before = page.evaluate("() => window.comfyAPI.app.app.canvas.ds.scale")
    canvas_box = page.locator(f"{preview_sel(node)} canvas.dav2-depth").bounding_box()
    page.mouse.move(canvas_box["x"] + 20, canvas_box["y"] + 20)
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(300)
    scale_after = page.evaluate("() => window.comfyAPI.app.app.canvas.ds.scale")
    assert scale_after != scale_before, "the mouse wheel over the preview no longer zooms the canvas"


@pytest.mark.parametrize("example", ["depth_stats", "depth_colorize_save"])
def test_example_workflow_from_the_ui(page: Any, comfy_server: Any, checkpoints: dict, example: str) -> None:
    """An example workflow loaded like a user does (app.loadGraphData), pointed at the test checkpoint and image."""
    workflow = json.loads((ROOT / "example_workflows" / f"{example}.json").read_text(encoding="utf-8"))
    image = test_image(64, 100, seed=12)
    name = comfy_server.upload_image(image, f"dav2_browser_{example}.png")
    truth = truth_depth(checkpoints["relative"], image)
    ids = page.evaluate(
        """async ([wf, image, model, size, types]) => {
            const app = window.comfyAPI.app.app;
            await app.loadGraphData(wf, true, true, "example");
            const set = (node, name, value) => {
                const w = node.widgets.find((w) => w.name === name);
                if (!w) throw new Error(`${node.type} has no widget ${name}`);
                w.value = value;
                w.callback?.(value);
            };
            const ids = {};
            for (const node of app.graph.nodes) {
                ids[node.type] = node.id;
                // the official weights cannot be downloaded in tests: the seeded checkpoint, a small input size
                if (node.type === "LoadImage") set(node, "image", image);
                if (node.type === types.loader) set(node, "model", model);
                if (node.type === types.estimate) set(node, "input_size", size);
                // our own output folder on the shared server
                if (node.type === "SaveImage") set(node, "filename_prefix", `dav2_browser/${node.id}`);
            }
            return ids;
        }""",
        [
            workflow,
            name,
            TEST_CHECKPOINT,
            INPUT_SIZE,
            {"loader": NODE_IDS["Load Depth Anything V2"], "estimate": NODE_IDS["Estimate Depth"]},
        ],
    )
    estimate = ids[NODE_IDS["Estimate Depth"]]
    queue_and_wait(page, comfy_server, estimate, execution=1)
    show_node(page, estimate, 420, 480)
    check_hover(page, estimate, truth, [(0, 0), (99, 63), (50, 30)], "relative")
    if NODE_IDS["Depth Stats"] in ids:
        stats = ids[NODE_IDS["Depth Stats"]]
        page.wait_for_selector(stats_sel(stats), state="attached")
        check_stats_table(page, stats, truth, "relative (inverse depth)")
    if NODE_IDS["Colorize Depth"] in ids:
        colorize = ids[NODE_IDS["Colorize Depth"]]
        page.wait_for_selector(f'{preview_sel(colorize)}[data-ready="1"]', state="attached", timeout=30_000)
        show_node(page, colorize, 420, 480)
        check_colours(page, colorize, truth, "Spectral_r", metric=False, invert=False)
        check_hover(page, colorize, truth, [(10, 10), (80, 40)], "relative")
    bh.screenshot(page, f"example-{example}")


def test_batch_preview_image_choice_and_stats_columns(page: Any, comfy_server: Any) -> None:
    """A batch: the preview offers each image (up to 16 of 20) and reads the chosen one; stats get a column per image."""
    from dav2_core.depth import DepthMap
    from dav2_core.stats import depth_stats, format_stats

    rng = np.random.default_rng(4)
    values = torch.from_numpy(rng.uniform(0.0, 1.0, (20, 30, 40)).astype(np.float32))
    values[2] *= 10.0  # image 3 has a range of its own
    depth = DepthMap(values, model="batch-test")
    entries = preview.write_preview_entries(depth, _temp_dir(comfy_server))
    stats = depth_stats(depth[:3])
    node = make_node(page, NODE_IDS["Estimate Depth"], (100, 100))
    stats_node = make_node(page, NODE_IDS["Depth Stats"], (100, 900))
    send_output(page, node, {"dav2_depth": entries})
    send_output(page, stats_node, {"text": [format_stats(stats)], "dav2_stats": [stats]})
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached")
    options = page.locator(f"{preview_sel(node)} select.dav2-image option").all_text_contents()
    assert options == [f"image {i + 1}/20" for i in range(16)]

    page.select_option(f"{preview_sel(node)} select.dav2-image", "2")
    page.wait_for_function(
        f"() => window.comfyAPI.app.app.graph.getNodeById({node}).dav2Preview.current?.index === 2"
        f" && document.querySelector('{preview_sel(node)}').dataset.ready === '1'"
    )
    show_node(page, node, 420, 440)
    check_hover(page, node, values[2].double().numpy(), [(0, 0), (39, 29), (17, 11)], "relative")
    check_colours(page, node, values[2].double().numpy(), "Spectral_r", metric=False, invert=False)

    table = stats_cells(page, stats_node)
    assert table["heads"] == ["image 1", "image 2", "image 3", "batch"]
    assert "3 images of 40x30" in table["head"]
    for i in range(3):
        assert float(table["rows"]["max"][i]) == pytest.approx(float(values[i].max()), rel=1e-3)
    assert float(table["rows"]["max"][3]) == pytest.approx(float(values[:3].max()), rel=1e-3)
    show_node(page, stats_node)
    bh.screenshot(page, "batch")


def test_unreadable_preview_file_reports_an_error_on_the_node(page: Any, comfy_server: Any, console: Any) -> None:
    """A preview file that does not hold what its entry says (here: another size) says so on the node."""
    from dav2_core.depth import DepthMap

    (entry,) = preview.write_preview_entries(DepthMap(torch.rand(1, 8, 8)), _temp_dir(comfy_server))
    console.expect("is 8x8, expected 9x8")
    node = make_node(page, NODE_IDS["Estimate Depth"])
    send_output(page, node, {"dav2_depth": [{**entry, "width": 9}]})
    status = page.locator(f"{preview_sel(node)} .dav2-status.dav2-error")
    status.wait_for(state="attached")
    assert "preview failed" in status.text_content() and "is 8x8, expected 9x8" in status.text_content()
    assert page.locator(f"{preview_sel(node)}").get_attribute("data-ready") == "0"
    state = preview_state(page, node)
    assert state["entry"] is None and not state["loading"]
