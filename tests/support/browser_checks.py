"""What a user sees of our web extension, read from the page: the depth preview (state, hover read-out, canvas
colours), the Depth Stats table, the 3D relief, the node layout (boxes, widgets inside their nodes); plus
the independent truth the browser tests compare with (``dav2_core`` run in this process on the same image
with the same checkpoint) and the synthetic test picture.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import browser_helpers as bh
from browser_helpers import preview_sel

INPUT_SIZE = 70  # small network input keeps the CPU runs short; the preview is at the image's own size


# ============================================================================ truth and test data


@lru_cache(maxsize=4)
def _truth_model(path: str):
    from dav2_core.loading import load_model

    return load_model(path, device="cpu", dtype=torch.float32)


def truth_depth(checkpoint: Path, image: np.ndarray, input_size: int = INPUT_SIZE) -> np.ndarray:
    """Depth [H,W] float64 of a uint8 RGB image computed in this process by dav2_core (independent of the server)."""
    from dav2_core.inference import predict_depth

    model = _truth_model(str(checkpoint))
    batch = torch.from_numpy(image.astype(np.float32) / 255.0)[None]
    with torch.inference_mode():
        out = predict_depth(model, batch, input_size=input_size, resolution="keep_aspect")
    return out[0].double().numpy()


def test_image(h: int, w: int, seed: int) -> np.ndarray:
    """A seeded uint8 RGB picture with structure (gradients, a disc, a bar) so depth is not flat."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 + 0.5 * np.sin(xx / (3 + w / 20))], -1)
    disc = (xx - w * rng.uniform(0.3, 0.7)) ** 2 + (yy - h * rng.uniform(0.3, 0.7)) ** 2 < (min(h, w) * 0.25) ** 2
    img[disc] = rng.uniform(0.0, 1.0, 3)
    img[int(h * 0.7) : int(h * 0.8) + 1, :] *= 0.3
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


test_image.__test__ = False  # a helper, not a test


def saved_depth(server: Any, entry: dict, node_id: str) -> np.ndarray:
    """The DEPTH output as the server saved it (Save Depth, .npy [B,H,W] float32): image 0 as float64 [H,W]."""
    files = [f for f in server.output_files(entry, node_id, "depth_files") if f.suffix == ".npy"]
    assert len(files) == 1, files
    return np.load(files[0])[0].astype(np.float64)


# ============================================================================ the depth preview and stats


def queue_and_wait(
    page: Any, server: Any, node_id: int | str | None, execution: int = 0, timeout_s: float = 300
) -> dict:
    """Queue the canvas graph from the UI, wait for the prompt to finish on the server (without an error) and
    the preview of ``node_id`` (unless None) to show its ``execution``-th output; returns the history entry."""
    from comfy_harness import execution_error

    with page.expect_response(
        lambda r: r.url.endswith("/prompt") and r.request.method == "POST", timeout=60_000
    ) as response:
        bh.queue_from_ui(page)
    body = response.value.json()
    assert "prompt_id" in body, f"the UI's /prompt was refused: {body}"
    entry = server.wait_history(body["prompt_id"], timeout=timeout_s)
    err = execution_error(entry)
    assert err is None, f"the graph failed: {err.get('exception_message')}\n{server.log_tail()}"
    if node_id is None:
        return entry
    page.wait_for_selector(
        f'{preview_sel(node_id)}[data-execution="{execution}"][data-ready="1"]', state="attached", timeout=60_000
    )
    return entry


def wait_core_images(page: Any, node_id: int | str, timeout_ms: int = 30_000) -> None:
    """Wait until the frontend shows a node's core image output (classic: ``node.imgs``; Nodes 2.0 and newer
    frontends: an <img> in the node)."""
    page.wait_for_function(
        """(id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            const imgs = [...(node.imgs ?? []), ...document.querySelectorAll(`.lg-node[data-node-id="${id}"] img`)];
            return imgs.some((i) => i.naturalWidth > 0);
        }""",
        arg=int(node_id),
        timeout=timeout_ms,
    )


def assert_on_top(page: Any, selector: str) -> None:
    """The element is what a user sees at its centre (not covered, not clipped away)."""
    hit = page.locator(selector).evaluate(
        """(e) => {
            const r = e.getBoundingClientRect();
            const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return r.width > 0 && r.height > 0 && e.contains(top);
        }"""
    )
    assert hit, f"{selector} is hidden or covered; see the screenshots"


def preview_state(page: Any, node_id: int | str) -> dict:
    """What the preview shows: current entry, canvas size, colormap, status text."""
    return page.evaluate(
        """(id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            const p = node.dav2Preview;
            return {
                entry: p.current?.entry ?? null,
                canvas: [p.canvas.width, p.canvas.height],
                colormap: p.colormap,
                status: p.status.textContent,
                execution: p.execution,
                loading: p.root.classList.contains("dav2-loading"),
            };
        }""",
        int(node_id),
    )


def hover(page: Any, node_id: int | str, x: float, y: float, width: int, height: int) -> dict:
    """Move the mouse over full-resolution pixel (x, y) of the preview; returns the read-out (text, x, y, value)."""
    canvas = page.locator(f"{preview_sel(node_id)} canvas.dav2-depth")
    box = canvas.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, "the preview canvas is not visible"
    # the pixel's centre, kept half a screen pixel inside the box (hit-testing at the very edge may miss)
    px = min(max(box["x"] + (x + 0.5) / width * box["width"], box["x"] + 0.5), box["x"] + box["width"] - 0.5)
    py = min(max(box["y"] + (y + 0.5) / height * box["height"], box["y"] + 0.5), box["y"] + box["height"] - 0.5)
    on_top = canvas.evaluate(
        """(c, [x, y]) => {
            const e = document.elementFromPoint(x, y);
            return e === c ? "" : `${e?.tagName}.${e?.className} ${JSON.stringify(c.getBoundingClientRect())}`;
        }""",
        [px, py],
    )
    assert not on_top, f"{on_top} covers the preview canvas at ({px:.1f},{py:.1f}); see the screenshots"
    page.mouse.move(px, py)
    readout = page.locator(f"{preview_sel(node_id)} .dav2-readout")
    page.wait_for_function("(e) => e.dataset.x !== undefined", arg=readout.element_handle(), timeout=5_000)
    data = readout.evaluate("(e) => ({...e.dataset, text: e.textContent})")
    data["screen_px_per_image_px"] = box["width"] / width
    return data


def check_hover(page: Any, node_id: int | str, truth: np.ndarray, points: list[tuple[int, int]], units: str) -> None:
    """Hover each (x, y): the read-out names that pixel (within one screen pixel) and shows ``truth`` there."""
    h, w = truth.shape
    lo, hi = float(truth.min()), float(truth.max())
    tol = (hi - lo) / 131070 + 1e-5 * max(1.0, abs(hi)) + 1e-9  # 16-bit quantisation + float noise server vs here
    for x, y in points:
        r = hover(page, node_id, x, y, w, h)
        rx, ry = int(r["x"]), int(r["y"])
        slack = 1 + 1 / r["screen_px_per_image_px"]  # image pixels under one screen pixel
        assert abs(rx - x) <= slack and abs(ry - y) <= slack, f"hovered ({x},{y}) but the read-out says ({rx},{ry})"
        value = float(r["value"])
        assert abs(value - truth[ry, rx]) <= tol, (
            f"read-out {value} at ({rx},{ry}) but DEPTH there is {truth[ry, rx]} (tolerance {tol})"
        )
        assert r["units"] == units
        assert f"x {rx}, y {ry}" in r["text"]
        shown = float(r["text"].split("·")[1].split()[0])
        assert abs(shown - value) <= 0.51 * 10 ** -len(r["text"].split("·")[1].split()[0].split(".")[1])
        assert r["text"].endswith(" m" if units == "m" else " (relative)"), r["text"]


def canvas_pixels(page: Any, node_id: int | str) -> np.ndarray:
    """The preview canvas as [h,w,4] uint8 RGBA."""
    data = page.evaluate(
        """(id) => {
            const c = window.comfyAPI.app.app.graph.getNodeById(id).dav2Preview.canvas;
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let s = "";
            for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
            return {w: c.width, h: c.height, b64: btoa(s)};  // base64: a JSON number array is far too slow
        }""",
        int(node_id),
    )
    raw = np.frombuffer(base64.b64decode(data["b64"]), dtype=np.uint8)
    return raw.reshape(data["h"], data["w"], 4)


def expected_colours(truth: np.ndarray, pw: int, ph: int, colormap: str, metric: bool, invert: bool) -> np.ndarray:
    """What the preview must show: Colorize Depth's colours (dav2_core LUT) of ``truth`` at the display samples."""
    from dav2_core.colormaps import colorize

    h, w = truth.shape
    xs = np.minimum(w - 1, ((np.arange(pw) + 0.5) * w / pw).astype(np.int64))
    ys = np.minimum(h - 1, ((np.arange(ph) + 0.5) * h / ph).astype(np.int64))
    d = truth[np.ix_(ys, xs)]
    lo, hi = truth.min(), truth.max()
    t = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    if hi > lo and metric != invert:
        t = 1.0 - t
    rgb = colorize(torch.from_numpy(t).float()[None], colormap)[0].numpy()
    return np.rint(rgb * 255.0).astype(np.int16)


def check_colours(page: Any, node_id: int | str, truth: np.ndarray, colormap: str, metric: bool, invert: bool) -> None:
    px = canvas_pixels(page, node_id)
    exp = expected_colours(truth, px.shape[1], px.shape[0], colormap, metric, invert)
    diff = np.abs(px[..., :3].astype(np.int16) - exp)
    assert (px[..., 3] == 255).all()
    assert diff.max() <= 2, f"{colormap}: canvas differs from the LUT colours by up to {diff.max()} levels"


def stats_cells(page: Any, node_id: int | str) -> dict:
    """The Depth Stats table as shown: summary line, column heads, and {stat: [cell per column]}."""
    return page.evaluate(
        """(id) => {
            const root = document.querySelector(`[data-dav2="depth-stats"][data-dav2-node="${id}"]`);
            const heads = [...root.querySelectorAll("thead th")].slice(1).map((t) => t.textContent);
            const rows = {};
            for (const tr of root.querySelectorAll("tbody tr")) {
                rows[tr.dataset.stat] = [...tr.children].slice(1).map((td) => td.textContent);
            }
            return {head: root.querySelector(".dav2-stats-head").textContent, heads, rows};
        }""",
        int(node_id),
    )


def check_stats_table(page: Any, node_id: int | str, truth: np.ndarray, units_label: str) -> None:
    """The Depth Stats node shows a table whose numbers are the statistics of the independent truth."""
    table = stats_cells(page, node_id)
    h, w = truth.shape
    assert f"1 image of {w}x{h}" in table["head"] and f"units: {units_label}" in table["head"], table["head"]
    assert table["heads"] == ["value"]
    rows = table["rows"]
    assert list(rows) == ["min", "max", "range", "mean", "median", "std", "p1", "p5", "p95", "p99", "valid"]
    lo, hi = truth.min(), truth.max()
    expect = {
        "min": lo,
        "max": hi,
        "range": hi - lo,
        "mean": truth.mean(),
        "median": np.median(truth),
        "std": truth.std(),
        "p5": np.percentile(truth, 5),
        "p95": np.percentile(truth, 95),
    }
    scale = max(abs(lo), abs(hi), 1e-6)
    for key, value in expect.items():
        shown = float(rows[key][0])
        assert abs(shown - value) <= 1e-3 * scale + 5e-4 * abs(value), (key, shown, value)
    assert rows["valid"] == ["100%"]


def check_matches_output(page: Any, server: Any, entry: dict, node_id: str, preview_node: str) -> np.ndarray:
    """The preview canvas of ``preview_node`` shows the colours of the IMAGE that PreviewImage ``node_id``
    received (within 2 levels per channel, 8-bit file vs LUT rounding); returns the output's pixels."""
    from PIL import Image

    (path,) = server.output_files(entry, node_id)
    output = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    px = canvas_pixels(page, preview_node)
    assert px.shape[:2] == output.shape[:2], "the preview must show this small image at full size"
    assert (px[..., 3] == 255).all()
    diff = np.abs(px[..., :3].astype(np.int16) - output)
    assert diff.max() <= 2, (
        f"preview differs from Colorize Depth's IMAGE by up to {diff.max()} levels (mean {diff.mean():.2f})"
    )
    return output


def relief_pixels(page: Any, node_id: int) -> np.ndarray:
    data = page.evaluate(
        """(id) => {
            const c = window.comfyAPI.app.app.graph.getNodeById(id).dav2Preview.relief.canvas;
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let s = "";
            for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
            return {w: c.width, h: c.height, b64: btoa(s)};
        }""",
        node_id,
    )
    return np.frombuffer(base64.b64decode(data["b64"]), dtype=np.uint8).reshape(data["h"], data["w"], 4)


# ============================================================================ layout

#: Screen boxes [left, top, right, bottom] of every node (Nodes 2.0: the Vue node's element; classic: title bar +
#: body from pos/size through the canvas transform); on the classic canvas, where each widget ends (canvas
#: units below the title) and the boxes of DOM widgets; in Nodes 2.0 the boxes of the widget rows; the boxes of
#: our DOM widgets (with their shown height).
_LAYOUT_JS = """() => {
    const app = window.comfyAPI.app.app;
    const c = app.canvas, ds = c.ds;
    const cr = c.canvas.getBoundingClientRect();
    const title = window.LiteGraph.NODE_TITLE_HEIGHT;
    const box = (r) => [r.left, r.top, r.right, r.bottom];
    const shown = (e) => !!e && e.isConnected && e.offsetParent !== null && e.getBoundingClientRect().height > 0;
    return app.graph.nodes.filter((n) => !n.flags?.collapsed).map((n) => {
        const el = document.querySelector(`.lg-node[data-node-id="${n.id}"]`);
        const sx = (x) => cr.left + (x + ds.offset[0]) * ds.scale, sy = (y) => cr.top + (y + ds.offset[1]) * ds.scale;
        const classic = [sx(n.pos[0]), sy(n.pos[1] - title), sx(n.pos[0] + n.size[0]), sy(n.pos[1] + n.size[1])];
        const widgets = el ? [] : (n.widgets ?? []).filter((w) => !w.hidden && !w.options?.hidden && w.type !== "hidden").map((w) => {
            const y = w.last_y ?? w.y ?? 0;
            const h = w.computedHeight ?? w.computeSize?.(n.size[0])?.[1] ?? window.LiteGraph.NODE_WIDGET_HEIGHT;
            return {name: w.name, bottom: y + h, dom: shown(w.element) ? box(w.element.getBoundingClientRect()) : null};
        });
        const ours = [...document.querySelectorAll(`[data-dav2][data-dav2-node="${n.id}"]`)].map((e) => ({
            kind: e.dataset.dav2, box: box(e.getBoundingClientRect()), shown: e.offsetParent !== null,
            height: e.clientHeight,
        }));
        return {
            id: n.id, name: `${n.id} ${n.title || n.type}`, vue: !!el, box: el ? box(el.getBoundingClientRect()) : classic,
            height: n.size[1], widgets,
            rows: el ? [...el.querySelectorAll(".lg-node-widget")].map((w) => box(w.getBoundingClientRect())) : [],
            ours,
        };
    });
}"""


def layout(page: Any) -> list[dict]:
    """The node and widget boxes on screen (see :data:`_LAYOUT_JS`)."""
    return page.evaluate(_LAYOUT_JS)


def _inside(inner: list[float], outer: list[float], tol: float) -> bool:
    return (
        inner[0] >= outer[0] - tol
        and inner[1] >= outer[1] - tol
        and inner[2] <= outer[2] + tol
        and inner[3] <= outer[3] + tol
    )


def layout_problems(nodes: list[dict], tol: float = 1.0) -> list[str]:
    """What is wrong with a layout: overlapping node boxes, widgets (canvas-drawn, DOM, Nodes 2.0 rows, ours)
    outside their node, our widgets shown with (almost) no height."""
    problems = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            w = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
            h = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
            if w > tol and h > tol:
                problems.append(f"nodes {a['name']!r} and {b['name']!r} overlap by {w:.0f}x{h:.0f} px")
        for w in a["widgets"]:
            if w["bottom"] > a["height"] + tol:
                problems.append(
                    f"widget {w['name']!r} of {a['name']!r} ends at {w['bottom']:.0f}, below the node "
                    f"({a['height']:.0f})"
                )
            if w["dom"] and not _inside(w["dom"], a["box"], tol):
                problems.append(f"widget {w['name']!r} of {a['name']!r} is outside its node: {w['dom']} vs {a['box']}")
        for row in a["rows"]:
            if not _inside(row, a["box"], tol):
                problems.append(f"a widget row of {a['name']!r} sticks out of the node: {row} vs {a['box']}")
        for w in a["ours"]:
            if not w["shown"]:
                continue
            if w["height"] < 20:
                problems.append(f"the {w['kind']} of {a['name']!r} is only {w['height']} px high")
            if not _inside(w["box"], a["box"], tol):
                problems.append(f"the {w['kind']} of {a['name']!r} is outside its node: {w['box']} vs {a['box']}")
    return problems


def assert_layout(page: Any, what: str) -> list[dict]:
    """No layout problem (see :func:`layout_problems`); screenshot ``what`` either way. Returns the layout."""
    nodes = layout(page)
    bh.screenshot(page, f"layout-{what}")
    problems = layout_problems(nodes)
    assert not problems, f"{what}: " + "; ".join(problems)
    return nodes
