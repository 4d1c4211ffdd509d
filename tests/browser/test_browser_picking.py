"""Picking on the depth preview (web/preview/pick_points.js, targets.js) in a real browser, on every tested
frontend and renderer: a click sets the connected Depth Bokeh's focus point, a shift-click plus typed metres adds
a reference point to the connected Calibrate Depth to Metric; markers show both where they are (read back from
the widgets); the graph then runs with those values (the server's CoC mask and calibrated depth are checked).
Bad input: clicks outside the picture, a preview without depth yet, no connected node, metres that are not a
positive number, a points string broken by hand. Also: Evaluate Depth / Calibrate show their report on the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import browser_helpers as bh
from browser_checks import INPUT_SIZE, hover, preview_state, queue_and_wait, saved_depth, test_image, truth_depth
from browser_helpers import ALL_UIS, make_node, preview_sel, send_output, set_widgets, show_node, stats_sel
from comfy_harness import NODE_IDS, estimate_graph, load_nodes_module

pytestmark = [pytest.mark.browser, pytest.mark.server]
preview = load_nodes_module("preview")
H, W = 60, 90  # the test picture: wider than high, so the preview has empty bands above and below it
#: Node ids of :func:`_picking_graph` (numbered in the order it adds them).
ESTIMATE, COLORIZE, ESTIMATE_SAVE, BOKEH, COC_SAVE, CALIBRATE, METRIC_SAVE = "3", "4", "6", "7", "9", "10", "11"
BOKEH_ARGS = dict(max_blur_radius=4.0, focus_range=0.05, layers=5)
MARK_COLOURS = {"focus": (255, 255, 255), "point": (255, 210, 63)}  # web/dav2.css


def _picking_graph(image_name: str, prefix: str, points: str) -> dict:
    """LoadImage -> Load -> Estimate Depth -> Colorize -> PreviewImage; Save Depth of the estimate; Depth Bokeh
    (image, depth) -> coc -> MaskToImage -> SaveImage; Calibrate (depth, ``points`` typed by hand) -> Save Depth."""
    graph, photo, estimate = estimate_graph(image_name, input_size=INPUT_SIZE, resolution="keep_aspect", chunk_size=0)
    depth = estimate["depth"]
    colorize = graph.add("DAV2ColorizeDepth", depth=depth, colormap="Spectral_r", invert=False, range_mode="min_max")
    graph.add("PreviewImage", images=colorize["image"])
    estimate_save = graph.add("DAV2SaveDepth", depth=depth, filename_prefix=f"{prefix}/estimate", format="npy")
    bokeh = graph.add(
        "DAV2DepthBokeh", image=photo["IMAGE"], depth=depth, focus_mode="point", focus_x=0.5, focus_y=0.5, **BOKEH_ARGS
    )
    coc_save = graph.add(
        "SaveImage", images=graph.add("MaskToImage", mask=bokeh["coc"])["IMAGE"], filename_prefix=f"{prefix}/coc"
    )
    calibrate = graph.add("DAV2CalibrateDepth", depth=depth, points=points, max_depth_m=1000.0)
    metric_save = graph.add("DAV2SaveDepth", depth=calibrate["depth"], filename_prefix=f"{prefix}/metric", format="npy")
    ids = (estimate, colorize, estimate_save, bokeh, coc_save, calibrate, metric_save)
    assert tuple(str(n.id) for n in ids) == (ESTIMATE, COLORIZE, ESTIMATE_SAVE, BOKEH, COC_SAVE, CALIBRATE, METRIC_SAVE)
    return graph.to_api()


def _widgets(page: Any, node_id: str | int) -> dict:
    return page.evaluate(
        "(id) => Object.fromEntries(window.comfyAPI.app.app.graph.getNodeById(id).widgets.map((w) => [w.name, w.value]))",
        int(node_id),
    )


def _shown_points_text(page: Any, node_id: str) -> str | None:
    """What the points box of a Calibrate node shows on screen (the textarea of its widget), None if not shown."""
    return page.evaluate(
        """(id) => {
            const vue = document.querySelector(`.lg-node[data-node-id="${id}"] textarea`);
            if (vue) return vue.value;
            const w = window.comfyAPI.app.app.graph.getNodeById(id).widgets.find((w) => w.name === "points");
            const el = w.inputEl ?? w.element;
            return el && "value" in el ? el.value : null;
        }""",
        int(node_id),
    )


def _click_pixel(page: Any, node: str | int, x: int, y: int, shift: bool = False) -> tuple[int, int]:
    """Click (or shift-click) the centre of full-resolution pixel (x, y) of the preview; returns the pixel the
    hover read-out named there (the one the click must use)."""
    r = hover(page, node, x, y, W, H)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")
    return int(r["x"]), int(r["y"])


def _marks(page: Any, node: str | int) -> list[dict]:
    """The markers on a preview: kind, pixel, node, metres, and the screen centre of the marker element and of
    its pixel on the canvas."""
    return page.evaluate(
        """([id, w, h]) => {
            const root = document.querySelector(`[data-dav2="depth-preview"][data-dav2-node="${id}"]`);
            const c = root.querySelector("canvas.dav2-depth").getBoundingClientRect();
            return [...root.querySelectorAll(".dav2-marks .dav2-mark")].map((m) => {
                const r = m.getBoundingClientRect();
                const x = Number(m.dataset.x), y = Number(m.dataset.y);
                return {kind: m.dataset.kind, x, y, node: m.dataset.node, metres: m.dataset.metres ?? null,
                        centre: [r.left + r.width / 2, r.top + r.height / 2],
                        pixel: [c.left + (x + 0.5) / w * c.width, c.top + (y + 0.5) / h * c.height]};
            });
        }""",
        [int(node), W, H],
    )


def _wait_marks(page: Any, node: str | int, count: int) -> list[dict]:
    page.wait_for_function(
        """([id, n]) => document.querySelectorAll(
            `[data-dav2="depth-preview"][data-dav2-node="${id}"] .dav2-marks .dav2-mark`).length === n""",
        arg=[int(node), count],
        timeout=5_000,
    )
    return _marks(page, node)


def _check_drawn(page: Any, mark: dict) -> None:
    """The marker is where its pixel is on screen, and its colour is really drawn there (a screenshot)."""
    assert abs(mark["centre"][0] - mark["pixel"][0]) <= 1.0 and abs(mark["centre"][1] - mark["pixel"][1]) <= 1.0, mark
    cx, cy = mark["centre"]
    png = page.screenshot(clip={"x": cx - 9, "y": cy - 9, "width": 18, "height": 18})
    from io import BytesIO

    rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    near = np.abs(rgb - np.asarray(MARK_COLOURS[mark["kind"]])).max(-1) <= 12
    assert near.sum() >= 6, f"the {mark['kind']} marker's colour is not on screen at {mark['centre']}"


def _outside_picture(page: Any, node: str | int) -> tuple[float, float]:
    """A screen point inside the preview's view but outside the picture (the wider empty band around it)."""
    view = page.locator(f"{preview_sel(node)} .dav2-view").bounding_box()
    canvas = page.locator(f"{preview_sel(node)} canvas.dav2-depth").bounding_box()
    below = view["y"] + view["height"] - (canvas["y"] + canvas["height"])
    right = view["x"] + view["width"] - (canvas["x"] + canvas["width"])
    # the classic canvas leaves wide bands (the node is taller than the picture needs); Nodes 2.0 sizes the view
    # to the picture's aspect, leaving a few pixels
    assert max(below, right) >= 3, f"the picture fills the view {view}: no empty band to click"
    if below > right:
        return view["x"] + view["width"] / 2, view["y"] + view["height"] - below / 2
    return view["x"] + view["width"] - right / 2, view["y"] + view["height"] / 2


def _note(page: Any, node: str | int) -> dict:
    """The short message over the preview: text, kind, and whether it is on screen now."""
    note = page.locator(f"{preview_sel(node)} .dav2-pick-note")
    return {"text": note.text_content(), "kind": note.get_attribute("data-kind"), "shown": note.is_visible()}


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_click_sets_bokeh_focus_shift_click_adds_calibrate_point(
    page: Any, ui: bh.UI, ui_server: Any, checkpoints: dict
) -> None:
    server = ui_server
    image = test_image(H, W, seed=40 + bh.UIS.index(ui))  # another picture per UI: no cached run
    name = server.upload_image(image, f"dav2_pick_{ui.id}.png")
    prefix = f"dav2_pick/{ui.id}"
    # reference points must agree with the depth order (nearer = larger relative value): the nearest and the
    # farthest pixel of the independent truth
    truth = truth_depth(checkpoints["relative"], image)
    near = tuple(int(v) for v in np.unravel_index(np.argmax(truth), truth.shape)[::-1])
    far = tuple(int(v) for v in np.unravel_index(np.argmin(truth), truth.shape)[::-1])
    hand = f"{near[0]},{near[1]},1; {far[0]},{far[1]},4"
    bh.load_api_graph(page, _picking_graph(name, prefix, hand))
    queue_and_wait(page, server, ESTIMATE, execution=1)
    page.wait_for_selector(f'{preview_sel(COLORIZE)}[data-ready="1"]', state="attached", timeout=60_000)
    first_report = page.locator(f"{stats_sel(CALIBRATE)} .dav2-stats-text").text_content()
    assert "over 2 samples" in first_report  # the hand-typed points' fit, shown on the node
    show_node(page, ESTIMATE, 520, 560)

    # What the connected nodes hold is shown: Bokeh's focus (0.5, 0.5) and Calibrate's two typed points.
    marks = _wait_marks(page, ESTIMATE, 3)
    assert {(m["kind"], m["x"], m["y"], m["metres"]) for m in marks} == {
        ("focus", round(0.5 * (W - 1)), round(0.5 * (H - 1)), None),
        ("point", *near, "1"),
        ("point", *far, "4"),
    }
    for m in marks:
        _check_drawn(page, m)
    bh.screenshot(page, f"pick-{ui.id}-start")

    # Click: Bokeh (in depth mode until now) focuses on the clicked pixel, as a fraction Bokeh maps back to it.
    set_widgets(page, int(BOKEH), focus_mode="depth")
    _wait_marks(page, ESTIMATE, 2)  # depth mode: no focus point to show
    x, y = _click_pixel(page, ESTIMATE, 71, 17)
    bokeh = _widgets(page, BOKEH)
    assert bokeh["focus_mode"] == "point"
    assert bokeh["focus_x"] == pytest.approx(x / (W - 1), abs=1e-6) and round(bokeh["focus_x"] * (W - 1)) == x
    assert bokeh["focus_y"] == pytest.approx(y / (H - 1), abs=1e-6) and round(bokeh["focus_y"] * (H - 1)) == y
    assert _note(page, ESTIMATE)["kind"] == "done" and _note(page, ESTIMATE)["shown"]
    (focus,) = [m for m in _wait_marks(page, ESTIMATE, 3) if m["kind"] == "focus"]
    assert (focus["x"], focus["y"], focus["node"]) == (x, y, BOKEH)
    _check_drawn(page, focus)

    # Clicks outside the picture (the empty band beside or under it, the histogram) change nothing.
    before = (_widgets(page, BOKEH), _widgets(page, CALIBRATE), _note(page, ESTIMATE)["text"])
    outside = _outside_picture(page, ESTIMATE)
    page.mouse.click(*outside)
    page.keyboard.down("Shift")
    page.mouse.click(*outside)
    page.keyboard.up("Shift")
    page.locator(f"{preview_sel(ESTIMATE)} canvas.dav2-hist").click()
    assert (_widgets(page, BOKEH), _widgets(page, CALIBRATE), _note(page, ESTIMATE)["text"]) == before
    assert page.locator(f"{preview_sel(ESTIMATE)} .dav2-pick-form").get_attribute("data-open") == "0"

    # Shift-click + metres: a reference point in full-resolution pixels; what is not a positive number is refused.
    set_widgets(page, int(CALIBRATE), points="")
    _wait_marks(page, ESTIMATE, 1)
    form = f"{preview_sel(ESTIMATE)} .dav2-pick-form"
    p1 = _click_pixel(page, ESTIMATE, *near, shift=True)
    assert p1 == near
    page.wait_for_selector(f'{form}[data-open="1"]', state="attached")
    assert {m["kind"] for m in _marks(page, ESTIMATE)} == {"focus", "pending"}
    for bad in ["abc", "-2", "0", "", "1e999", "2.5.1"]:
        page.fill(f"{form} input", bad)
        page.press(f"{form} input", "Enter")
        page.wait_for_selector(f'{form}[data-error="1"]', state="attached")
        assert "greater than 0" in page.locator(f"{form} .dav2-pick-error").text_content()
        assert _widgets(page, CALIBRATE)["points"] == "", f"{bad!r} was written"
    bh.screenshot(page, f"pick-{ui.id}-refused")
    page.fill(f"{form} input", "2.5")
    page.press(f"{form} input", "Enter")
    page.wait_for_selector(f'{form}[data-open="0"]', state="attached")
    assert _widgets(page, CALIBRATE)["points"] == f"{p1[0]},{p1[1]},2.5"
    p2 = _click_pixel(page, ESTIMATE, *far, shift=True)
    assert p2 == far
    page.fill(f"{form} input", "7 m")
    page.locator(f"{form} button.dav2-pick-add").click()
    points = f"{p1[0]},{p1[1]},2.5; {p2[0]},{p2[1]},7"
    page.wait_for_function(
        "([id, v]) => window.comfyAPI.app.app.graph.getNodeById(id).widgets.find((w) => w.name === 'points').value === v",
        arg=[int(CALIBRATE), points],
        timeout=5_000,
    )
    page.wait_for_timeout(300)
    assert _shown_points_text(page, CALIBRATE) in (points, None)  # the box on screen follows (where it is a DOM box)
    marks = _wait_marks(page, ESTIMATE, 3)
    assert sorted((m["x"], m["y"], m["metres"]) for m in marks if m["kind"] == "point") == sorted(
        [(p1[0], p1[1], "2.5"), (p2[0], p2[1], "7")]
    )
    for m in marks:
        _check_drawn(page, m)
    bh.screenshot(page, f"pick-{ui.id}-picked")

    # The Colorize Depth preview of the same depth reaches the same nodes and shows the same markers.
    show_node(page, COLORIZE, 520, 560)
    assert sorted((m["kind"], m["x"], m["y"]) for m in _wait_marks(page, COLORIZE, 3)) == sorted(
        (m["kind"], m["x"], m["y"]) for m in marks
    )

    # The graph runs with the picked values: CoC 0 at the focus pixel and the server's CoC equals the one
    # computed here with that focus; the calibrated depth is the typed metres at the two points.
    entry = queue_and_wait(page, server, None)  # Estimate Depth is cached: no new preview
    prompt_inputs = entry["prompt"][2]
    assert prompt_inputs[BOKEH]["inputs"]["focus_x"] == bokeh["focus_x"]
    assert prompt_inputs[CALIBRATE]["inputs"]["points"] == points
    (coc_file,) = server.output_files(entry, COC_SAVE)
    coc = np.asarray(Image.open(coc_file).convert("L")).astype(np.float64) / 255.0
    assert coc[y, x] == 0.0
    from dav2_core.depth import DepthMap
    from dav2_core.effects import lens_blur

    depth = saved_depth(server, entry, ESTIMATE_SAVE)
    _, want = lens_blur(
        torch.from_numpy(image.astype(np.float32) / 255.0)[None],
        DepthMap(torch.from_numpy(depth).float()[None]),
        focus_point=(bokeh["focus_x"], bokeh["focus_y"]),
        **BOKEH_ARGS,
    )
    assert np.abs(coc - want[0].numpy()).max() <= 1.5 / 255
    metric = saved_depth(server, entry, METRIC_SAVE)
    assert metric[p1[1], p1[0]] == pytest.approx(2.5, rel=1e-4)
    assert metric[p2[1], p2[0]] == pytest.approx(7.0, rel=1e-4)
    # Calibrate shows the report of this fit on the node
    report = entry["outputs"][CALIBRATE]["text"][0]
    assert "over 2 samples" in report and report != first_report
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel)?.textContent === text",
        arg=[f"{stats_sel(CALIBRATE)} .dav2-stats-text", report],
        timeout=30_000,
    )

    # A hand edit moves the marker; entries broken by hand are skipped, with no console error.
    set_widgets(page, int(BOKEH), focus_x=0.0, focus_y=1.0)
    set_widgets(page, int(CALIBRATE), points=f"{points}; garbage; 1,2; 5,5,-1; 9999,0,3; 4,x,2;;")
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{preview_sel(COLORIZE)} .dav2-mark-focus')]
                 .some((m) => m.dataset.x === "0" && m.dataset.y === "{H - 1}")""",
        timeout=5_000,
    )
    assert sorted((m["x"], m["y"]) for m in _wait_marks(page, COLORIZE, 3) if m["kind"] == "point") == sorted([p1, p2])
    bh.screenshot(page, f"pick-{ui.id}-hand-edit")


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_picking_bad_input(page: Any, ui: bh.UI, ui_server: Any) -> None:
    """No depth yet: no preview to pick on, then a hint; no connected node: a hint and nothing written;
    several connected nodes all get the pick; a points string broken by hand shows only its good points."""
    from dav2_core.depth import DepthMap

    temp = str(ui_server.base_dir / "temp")
    estimate = make_node(page, NODE_IDS["Estimate Depth"], (100, 100))
    assert page.locator(preview_sel(estimate)).count() == 0  # not run yet: no preview widget at all

    # An output whose depth file is gone (e.g. after a server restart): the placeholder, a click gives a hint.
    (gone,) = preview.write_preview_entries(DepthMap(torch.rand(1, 8, 8)), temp)
    (ui_server.base_dir / "temp" / gone["subfolder"] / gone["filename"]).unlink()
    send_output(page, estimate, {"dav2_depth": [gone]})
    page.wait_for_selector(f'{preview_sel(estimate)}[data-missing="1"]', state="attached")
    show_node(page, estimate, 420, 440)
    page.locator(f"{preview_sel(estimate)} .dav2-view").click()
    note = _note(page, estimate)
    assert note["shown"] and "run the graph" in note["text"]

    # A real depth, nothing connected: hints, nothing written anywhere.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    entries = preview.write_preview_entries(DepthMap(torch.from_numpy(1.0 + xx / W + yy / H)[None]), temp)
    send_output(page, estimate, {"dav2_depth": entries})
    page.wait_for_selector(f'{preview_sel(estimate)}[data-ready="1"]', state="attached")
    show_node(page, estimate, 420, 440)
    _click_pixel(page, estimate, 10, 10)
    note = _note(page, estimate)
    assert note["shown"] and "none is connected" in note["text"] and "Bokeh" in note["text"]
    _click_pixel(page, estimate, 10, 10, shift=True)
    note = _note(page, estimate)
    assert note["shown"] and "none is connected" in note["text"] and "Calibrate" in note["text"]
    assert page.locator(f"{preview_sel(estimate)} .dav2-pick-form").get_attribute("data-open") == "0"

    # Two Bokeh nodes and a Calibrate behind a Reroute: all get the pick (documented: every connected node).
    ids = page.evaluate(
        """([estimate, bokehType, calType]) => {
            const app = window.comfyAPI.app.app, LG = window.LiteGraph;
            const src = app.graph.getNodeById(estimate);
            const add = (type, x, y) => { const n = LG.createNode(type); n.pos = [x, y]; app.graph.add(n); return n; };
            const b1 = add(bokehType, 700, 100), b2 = add(bokehType, 700, 600);
            const depthSlot = src.outputs.findIndex((o) => o.type === "DEPTH");
            src.connect(depthSlot, b1, b1.inputs.findIndex((i) => i.name === "depth"));
            src.connect(depthSlot, b2, b2.inputs.findIndex((i) => i.name === "depth"));
            const cal = add(calType, 700, 1100);
            const reroute = LG.registered_node_types["Reroute"] ? add("Reroute", 600, 1100) : null;
            if (reroute) { src.connect(depthSlot, reroute, 0); reroute.connect(0, cal, cal.inputs.findIndex((i) => i.name === "depth")); }
            else src.connect(depthSlot, cal, cal.inputs.findIndex((i) => i.name === "depth"));
            cal.widgets.find((w) => w.name === "points").value = "3,4,2; broken; 1,2,0; 1e3,1,1; 7 8 9";
            return [b1.id, b2.id, cal.id];
        }""",
        [estimate, NODE_IDS["Depth Bokeh"], NODE_IDS["Calibrate Depth to Metric"]],
    )
    b1, b2, cal = ids
    show_node(page, estimate, 420, 440)
    marks = _wait_marks(page, estimate, 4)  # two focus points (0.5, 0.5), the two good reference points
    assert sorted((m["kind"], m["x"], m["y"]) for m in marks) == sorted(
        [("focus", 44, 30), ("focus", 44, 30), ("point", 3, 4), ("point", 7, 8)]
    )
    x, y = _click_pixel(page, estimate, 20, 50)
    for b in (b1, b2):
        got = _widgets(page, b)
        assert (round(got["focus_x"] * (W - 1)), round(got["focus_y"] * (H - 1))) == (x, y)
    px, py = _click_pixel(page, estimate, 60, 5, shift=True)
    form = f"{preview_sel(estimate)} .dav2-pick-form"
    page.fill(f"{form} input", "3,5")  # a decimal comma
    page.press(f"{form} input", "Enter")
    assert _widgets(page, cal)["points"] == f"3,4,2; broken; 1,2,0; 1e3,1,1; 7 8 9; {px},{py},3.5"
    # Escape closes the prompt without writing
    _click_pixel(page, estimate, 30, 30, shift=True)
    page.press(f"{form} input", "Escape")
    assert page.locator(form).get_attribute("data-open") == "0"
    assert _widgets(page, cal)["points"].endswith(f"{px},{py},3.5")
    assert len(_wait_marks(page, estimate, 5)) == 5
    bh.screenshot(page, f"pick-bad-{ui.id}")
    # In the 3D relief a click turns the view and picks nothing.
    page.check(f"{preview_sel(estimate)} .dav2-relief-toggle input")
    assert not page.locator(f"{preview_sel(estimate)} .dav2-marks").is_visible()
    assert preview_state(page, estimate)["entry"] is not None


@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)
def test_evaluate_depth_shows_its_report(page: Any, ui: bh.UI, ui_server: Any) -> None:
    """Evaluate Depth's report (its ui output, as nodes/evaluate.py sends it) is shown on the node, wide enough
    for its table rows."""
    from dav2_core.depth import DepthMap
    from dav2_core.evaluate import evaluate_depth, format_evaluation
    from dav2_core.ground_truth import from_depth_map

    gen = torch.Generator().manual_seed(5)
    truth = from_depth_map(DepthMap(1.0 + torch.rand(2, 20, 30, generator=gen), kind="metric"), "ground_truth DEPTH")
    report = format_evaluation(
        evaluate_depth(DepthMap(torch.rand(2, 20, 30, generator=gen)), truth, None, "auto", None, None)
    )
    node = make_node(page, NODE_IDS["Evaluate Depth"], (100, 100))
    send_output(page, node, preview.report_ui(report))
    text = page.locator(f"{stats_sel(node)} .dav2-stats-text")
    text.wait_for(state="attached")
    show_node(page, node)
    assert text.text_content() == report and text.is_visible()
    table_row = next(line for line in report.splitlines() if "AbsRel" in line)
    fits = text.evaluate(
        """(e, row) => {
            const probe = document.createElement("span");
            probe.textContent = row;
            e.append(probe);
            const width = probe.getBoundingClientRect().width;
            probe.remove();
            return width <= e.getBoundingClientRect().width + 1;
        }""",
        table_row,
    )
    if ui == bh.UI("stock", "vue"):
        # frontend 1.32's Nodes 2.0 does not follow a node's new width: the report scrolls sideways in its box
        assert text.evaluate("(e) => getComputedStyle(e).overflowX === 'auto' && e.scrollWidth > e.clientWidth")
    else:
        assert fits, "the report's table is wider than the node"
    bh.screenshot(page, f"evaluate-report-{ui.id}")


def test_points_and_metres_parsing_in_the_browser(page: Any) -> None:
    """The browser's reading of Calibrate's points string (markers) and of typed metres, on its own."""
    got = page.evaluate(
        """async (url) => {
            const t = await import(url);
            const text = "3,4,2; 7 8 9\\n 2.5,1.5,1; bad; 1,2; 5,5,-1; 90,0,3; 4,x,2; 0.5,0.5,1e1;;";
            return {
                points: t.parsePoints(text, 90, 60),
                metres: ["2.5", " 2,5 ", "7 m", "1e2", ".5", "abc", "-2", "0", "", "1e999", "2.5.1", "NaN", "inf"]
                    .map(t.parseMetres),
                halfEven: [0.5, 1.5, 2.5, 44.5, 44.49, 44.51].map(t.roundHalfEven),
                fractions: [[0, 90], [89, 90], [44, 90], [0, 1]].map(([p, n]) => t.pixelFraction(p, n)),
            };
        }""",
        f"{bh.WEB_URL}preview/targets.js",
    )
    # rounding half to even, like Calibrate's torch.round(); (90, 0) is outside a 90-wide map
    assert got["points"] == [
        {"x": 3, "y": 4, "metres": 2},
        {"x": 7, "y": 8, "metres": 9},
        {"x": 2, "y": 2, "metres": 1},
        {"x": 0, "y": 0, "metres": 10},
    ]
    assert got["metres"] == [2.5, 2.5, 7, 100, 0.5, None, None, None, None, None, None, None, None]
    assert got["halfEven"] == [round(v) for v in [0.5, 1.5, 2.5, 44.5, 44.49, 44.51]]  # Python's rule
    assert got["fractions"] == [0, 1, pytest.approx(44 / 89, abs=1e-6), 0]
