"""The web extension (web/*.js) in a real browser against a real ComfyUI, plus the preview data contract.

Browser tests drive Debian's ``/usr/bin/chromium`` with Playwright (never a downloaded browser) against the
session ``comfy_server`` (``main.py --cpu`` with this pack and a seeded random-init checkpoint). They load
a graph in the real frontend, queue it from the UI, then check what a user sees: the Depth Stats table,
the hover read-out against an independent truth (``dav2_core`` run in this process on the same image with
the same checkpoint), the canvas colours against the colormap LUTs, and the bad inputs of issue 5
(constant depth, one pixel, 4K, metric vs relative, re-execution). Screenshots and the browser console go
to ``test-artifacts/browser/``; errors or warnings from our extension's files fail the test.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import struct
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import browser_helpers as bh
from comfy_harness import NODE_IDS, TEST_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
METRIC_CHECKPOINT = "dav2_random_vits_metric_hypersim.safetensors"
METRIC_MAX_DEPTH = 20.0
INPUT_SIZE = 70  # small network input keeps the CPU runs short; the preview is at the image's own size
Q_STEP = 1.0 / 65535


def _load_preview_module():
    # nodes/ must not be imported as a top-level "nodes" package (ComfyUI owns that name): load the file.
    spec = importlib.util.spec_from_file_location("dav2_nodes_preview_under_test", ROOT / "nodes" / "preview.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preview = _load_preview_module()


# ============================================================================ data contract (no browser)

def _png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        chunks.append(kind.decode())
        i += 12 + n
    return chunks


def test_pack_roundtrip_error_within_half_step() -> None:
    rng = np.random.default_rng(1)
    d = (rng.normal(size=(61, 83)) * 4.0 + 7.0).astype(np.float32)
    d[5, 6] = np.nan
    d[7, 8] = np.inf
    rgb, lo, hi = preview.pack_depth_u16(d)
    finite = np.isfinite(d)
    assert lo == pytest.approx(float(d[finite].min())) and hi == pytest.approx(float(d[finite].max()))
    assert rgb.dtype == np.uint8 and rgb.shape == (61, 83, 3)
    back = preview.unpack_depth_u16(rgb, lo, hi)
    err = np.abs(back[finite] - d[finite].astype(np.float64))
    assert err.max() <= (hi - lo) / 131070 * (1 + 1e-9)
    assert np.isnan(back[5, 6]) and np.isnan(back[7, 8])
    assert (rgb[..., 2][finite] == 0).all() and rgb[5, 6, 2] == 255 and rgb[7, 8, 2] == 255
    q = rgb[..., 0].astype(int) * 256 + rgb[..., 1]
    assert q[finite].min() == 0 and q[finite].max() == 65535


@pytest.mark.parametrize("shape", [(1, 1), (48, 64)])
def test_pack_constant_depth_has_zero_range(shape: tuple[int, int]) -> None:
    d = np.full(shape, 3.25, dtype=np.float32)
    rgb, lo, hi = preview.pack_depth_u16(d)
    assert lo == hi == 3.25
    assert not rgb.any()
    assert np.array_equal(preview.unpack_depth_u16(rgb, lo, hi), d.astype(np.float64))


def test_preview_png_is_plain_8bit_rgb(tmp_path: Path) -> None:
    import cv2
    from dav2_core.depth import DepthMap

    values = torch.linspace(0.0, 1.0, 30 * 40).reshape(1, 30, 40)
    (entry,) = preview.write_preview_entries(DepthMap(values), str(tmp_path))
    path = tmp_path / entry["subfolder"] / entry["filename"]
    data = path.read_bytes()
    # No gAMA/sRGB/iCCP/cHRM chunk: a canvas returns the stored bytes without colour conversion.
    assert _png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    assert data[24] == 8 and data[25] == 2  # bit depth 8, colour type 2 (RGB, no alpha)
    rgb = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    back = preview.unpack_depth_u16(rgb, entry["min"], entry["max"])
    assert np.abs(back - values[0].numpy()).max() <= 1.0 / 131070 + 1e-7
    assert not list((tmp_path / entry["subfolder"]).glob("*.part*"))


def test_preview_entries_fields_cap_and_sizes(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    depth = DepthMap(torch.rand(20, 9, 16) * 5, kind="metric", model="m.safetensors")
    entries = preview.write_preview_entries(depth, str(tmp_path), max_preview_side=8)
    assert len(entries) == preview.MAX_PREVIEW_IMAGES == 16
    assert [e["index"] for e in entries] == list(range(16))
    assert {e["batch"] for e in entries} == {20}
    e = entries[3]
    assert (e["width"], e["height"], e["preview_width"], e["preview_height"]) == (16, 9, 8, 4)
    assert (e["units"], e["kind"], e["type"], e["model"]) == ("m", "metric", "temp", "m.safetensors")
    assert e["min"] == pytest.approx(float(depth.values[3].min())) and e["max"] == pytest.approx(float(depth.values[3].max()))
    assert len({x["filename"] for x in entries}) == 16
    assert preview.preview_size(3840, 2160, 1024) == (1024, 576)
    assert preview.preview_size(1, 1, 1024) == (1, 1)
    assert preview.preview_size(5000, 3, 1024) == (1024, 1)


def test_preview_pixel_budget_keeps_at_least_one_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dav2_core.depth import DepthMap

    monkeypatch.setattr(preview, "MAX_PREVIEW_PIXELS", 1300)
    entries = preview.write_preview_entries(DepthMap(torch.rand(5, 20, 30)), str(tmp_path))
    assert [e["index"] for e in entries] == [0, 1] and {e["batch"] for e in entries} == {5}
    big = preview.write_preview_entries(DepthMap(torch.rand(3, 40, 50)), str(tmp_path))
    assert [e["index"] for e in big] == [0]
    for e in entries + big:
        assert (tmp_path / e["subfolder"] / e["filename"]).is_file()


def test_preview_rejects_bad_input(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    with pytest.raises(ValueError, match="DepthMap"):
        preview.write_preview_entries(torch.zeros(1, 4, 4), str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        preview.write_preview_entries(DepthMap(torch.zeros(1, 0, 4)), str(tmp_path))
    with pytest.raises(ValueError, match="max_preview_side"):
        preview.preview_size(10, 10, 0)


def test_preview_entries_carry_the_display_range(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    depth = DepthMap(torch.rand(3, 6, 7) * 5, kind="metric")
    plain = preview.write_preview_entries(depth, str(tmp_path))
    assert not any("display_min" in e or "display_max" in e for e in plain)  # no range given: as before
    lo, hi = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.5, 1.0, 4.25])
    entries = preview.write_preview_entries(depth, str(tmp_path), display_range=(lo, hi))
    assert [(e["display_min"], e["display_max"]) for e in entries] == [(0.5, 1.5), (1.0, 1.0), (2.0, 4.25)]
    assert all(isinstance(e["display_min"], float) for e in entries)
    listed = preview.write_preview_entries(depth, str(tmp_path), display_range=([0, 0, 0], [1, 2, 3]))
    assert [e["display_max"] for e in listed] == [1.0, 2.0, 3.0]
    for bad, match in [((lo[:2], hi[:2]), "one value per image"), ((hi, lo), "must not exceed"),
                       ((lo, torch.tensor([1.0, float("nan"), 2.0])), "finite"), (lo, "pair")]:
        with pytest.raises(ValueError, match=match):
            preview.write_preview_entries(depth, str(tmp_path), display_range=bad)


# ============================================================================ truth and graph helpers

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
    img[int(h * 0.7):int(h * 0.8) + 1, :] *= 0.3
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


test_image.__test__ = False  # a helper, not a test


def upload_image(server: Any, image: np.ndarray, name: str) -> str:
    """Upload a uint8 RGB image through ComfyUI's own /upload/image; returns the name LoadImage uses."""
    import requests
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    r = requests.post(
        server.url + "/upload/image",
        files={"image": (name, buf.getvalue(), "image/png")},
        data={"overwrite": "true", "type": "input"},
        timeout=120,
    )
    r.raise_for_status()
    body = r.json()
    return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]


def api_node(info: dict, class_type: str, **inputs: Any) -> dict:
    """An API-format node with every widget input at its default from /object_info, then ``inputs``."""
    spec = info[class_type]["input"]
    values: dict[str, Any] = {}
    for section in ("required", "optional"):
        for name, definition in spec.get(section, {}).items():
            kind = definition[0]
            opts = definition[1] if len(definition) > 1 and isinstance(definition[1], dict) else {}
            if "default" in opts:
                values[name] = opts["default"]
            elif isinstance(kind, list) and kind:
                values[name] = kind[0]
            elif kind == "COMBO" and opts.get("options"):
                values[name] = opts["options"][0]
    values.update(inputs)
    return {"class_type": class_type, "inputs": values}


def depth_graph(server: Any, image_name: str, model_file: str, colorize: bool = True, stats: bool = True,
                save_npy: str | None = None) -> dict:
    """LoadImage -> Load Depth Anything V2 -> Estimate Depth (-> Colorize Depth -> Preview, -> Depth Stats,
    -> Save Depth as .npy under the prefix ``save_npy``)."""
    info = server.object_info()
    graph = {
        "1": api_node(info, "LoadImage", image=image_name),
        "2": api_node(info, NODE_IDS["Load Depth Anything V2"], model=model_file, precision="fp32"),
        "3": api_node(info, NODE_IDS["Estimate Depth"], model=["2", 0], image=["1", 0], input_size=INPUT_SIZE,
                      resolution="keep_aspect", chunk_size=0),
    }
    if colorize:
        graph["4"] = api_node(info, NODE_IDS["Colorize Depth"], depth=["3", 1], colormap="Spectral_r", invert=False,
                              range_mode="auto")
        graph["6"] = api_node(info, "PreviewImage", images=["4", 0])
    if stats:
        graph["5"] = api_node(info, NODE_IDS["Depth Stats"], depth=["3", 1])
    if save_npy:
        graph["7"] = api_node(info, "DAV2SaveDepth", depth=["3", 1], filename_prefix=save_npy, format="npy")
    if not colorize and not stats:
        graph["6"] = api_node(info, "PreviewImage", images=["3", 0])
    return graph


def saved_depth(server: Any, entry: dict, node_id: str) -> np.ndarray:
    """The DEPTH output as the server saved it (Save Depth, .npy [B,H,W] float32): image 0 as float64 [H,W]."""
    files = [f for f in server.output_files(entry, node_id, "depth_files") if f.suffix == ".npy"]
    assert len(files) == 1, files
    return np.load(files[0])[0].astype(np.float64)


def preview_sel(node_id: int | str) -> str:
    return f'[data-dav2="depth-preview"][data-node-id="{node_id}"]'


def stats_sel(node_id: int | str) -> str:
    return f'[data-dav2="depth-stats"][data-node-id="{node_id}"]'


def queue_and_wait(page: Any, server: Any, node_id: int | str, execution: int, timeout_s: float = 300) -> dict:
    """Queue the canvas graph from the UI, wait for the prompt to finish on the server and the preview of
    ``node_id`` to show its ``execution``-th output; returns the prompt's history entry."""
    from comfy_harness import execution_error

    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST",
                              timeout=60_000) as response:
        bh.queue_from_ui(page)
    body = response.value.json()
    assert "prompt_id" in body, f"the UI's /prompt was refused: {body}"
    entry = server.wait_history(body["prompt_id"], timeout=timeout_s)
    err = execution_error(entry)
    assert err is None, f"the graph failed: {err.get('exception_message')}\n{server.log_tail()}"
    page.wait_for_selector(f'{preview_sel(node_id)}[data-execution="{execution}"][data-ready="1"]',
                           state="attached", timeout=60_000)
    return entry


def show_node(page: Any, node_id: int | str, width: float | None = None, height: float | None = None) -> None:
    """Move a node clear of the others (optionally resized) and centre it at zoom 1 so its widgets can be hovered."""
    page.evaluate(
        """([id, w, h]) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            if (w && h) {
                node.setSize([w, h]);
                node.setSize([w, Math.max(h, node.computeSize()[1])]);  // never below its widgets' minimum
            }
            const others = app.graph.nodes.filter((n) => n !== node);
            if (others.length) {
                const right = Math.max(...others.map((n) => n.pos[0] + n.size[0]));
                const top = Math.min(...others.map((n) => n.pos[1]));
                if (node.pos[0] < right + 60) node.pos = [right + 150, top];
            }
            const c = app.canvas, el = c.canvas;
            c.deselectAll?.();  // the frontend clips DOM widgets under the selected node; nothing is selected
            c.ds.scale = 1;
            c.ds.offset[0] = -node.pos[0] + Math.max(20, (el.clientWidth - node.size[0]) / 2);
            c.ds.offset[1] = -node.pos[1] + Math.max(60, (el.clientHeight - node.size[1]) / 2);
            c.setDirty(true, true);
        }""",
        [int(node_id), width, height],
    )
    page.wait_for_timeout(400)  # DOM widgets follow the canvas on its next frame


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
            const root = document.querySelector(`[data-dav2="depth-stats"][data-node-id="${id}"]`);
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
        "min": lo, "max": hi, "range": hi - lo, "mean": truth.mean(), "median": np.median(truth),
        "std": truth.std(), "p5": np.percentile(truth, 5), "p95": np.percentile(truth, 95),
    }
    scale = max(abs(lo), abs(hi), 1e-6)
    for key, value in expect.items():
        shown = float(rows[key][0])
        assert abs(shown - value) <= 1e-3 * scale + 5e-4 * abs(value), (key, shown, value)
    assert rows["valid"] == ["100%"]


# ============================================================================ browser fixtures

@pytest.fixture(scope="module")
def browser():
    bh.chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = bh.launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, comfy_server: Any, checkpoints: dict, request: pytest.FixtureRequest):
    """A fresh ComfyUI tab with our extension loaded; console checked for our errors at the end."""
    bh.prepare_user_settings(comfy_server.url)
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    pg = context.new_page()
    log = bh.ConsoleLog().attach(pg)
    request.node.dav2_console = log
    bh.open_comfy(pg, comfy_server.url, node_type=NODE_IDS["Estimate Depth"])
    pg.evaluate("() => window.comfyAPI.app.app.graph.clear()")
    try:
        yield pg
    finally:
        name = request.node.name
        try:
            bh.screenshot(pg, f"{name}-final")
        except Exception:  # noqa: BLE001 - a failed screenshot must not hide the test's own result
            pass
        log.dump(bh.ARTIFACTS / f"{name}-console.json")
        context.close()
    ours = log.our_errors()
    assert not ours, f"errors from the dav2 web extension in the browser console: {ours}"


@pytest.fixture
def console(page: Any, request: pytest.FixtureRequest) -> bh.ConsoleLog:
    """The browser console of this test's page (to declare errors the test provokes on purpose)."""
    return request.node.dav2_console


@pytest.fixture(scope="module")
def checkpoints(comfy_server: Any):
    """The relative test checkpoint and a metric one (metadata kind=metric, max 20 m) in the server's model folder."""
    from checkpoint_factory import write_checkpoint

    metric = comfy_server.models_dir / METRIC_CHECKPOINT
    write_checkpoint(metric, "vits", "official-safetensors", seed=0, kind="metric", max_depth=METRIC_MAX_DEPTH)
    try:
        yield {"relative": comfy_server.models_dir / TEST_CHECKPOINT, "metric": metric}
    finally:
        metric.unlink(missing_ok=True)  # the server is shared: leave its model folder as we found it


def _temp_dir(server: Any) -> str:
    return str(server.base_dir / "temp")


def _make_node(page: Any, class_type: str, pos: tuple[int, int] = (100, 100)) -> int:
    return page.evaluate(
        """([type, pos]) => {
            const app = window.comfyAPI.app.app;
            const node = window.LiteGraph.createNode(type);
            node.pos = pos;
            app.graph.add(node);
            return node.id;
        }""",
        [class_type, list(pos)],
    )


def _send_output(page: Any, node_id: int, output: dict) -> None:
    """Deliver a UI output to a node exactly as the frontend does on an "executed" message."""
    page.evaluate("([id, out]) => window.comfyAPI.app.app.graph.getNodeById(id).onExecuted(out)", [node_id, output])


# ============================================================================ browser tests

@pytest.mark.browser
@pytest.mark.server
def test_workflow_stats_hover_and_colormap(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    """Load a graph, queue it from the UI; stats table, exact hover value, colormap switch without a re-run."""
    image = test_image(96, 136, seed=3)
    name = upload_image(comfy_server, image, "dav2_browser_main.png")
    truth = truth_depth(checkpoints["relative"], image)
    bh.load_api_graph(page, depth_graph(comfy_server, name, TEST_CHECKPOINT, save_npy="dav2_browser/main"))
    entry = queue_and_wait(page, comfy_server, 3, execution=1)
    # The server's own DEPTH output (Save Depth .npy) agrees with the independent in-process computation.
    server_depth = saved_depth(comfy_server, entry, "7")
    assert server_depth.shape == truth.shape == (96, 136)
    assert np.abs(server_depth - truth).max() <= 1e-5 * np.abs(truth).max()

    # Depth Stats shows its table, with the numbers of the DEPTH output (its plot is checked at the end).
    page.wait_for_selector(stats_sel(5), state="attached", timeout=30_000)
    show_node(page, 5)
    check_stats_table(page, 5, truth, "relative (inverse depth)")
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
    stats_out = entry["outputs"]["5"]
    assert stats_out.get("images"), f"Depth Stats sent no plot image in its UI output: {list(stats_out)}"
    page.wait_for_function(
        "() => (window.comfyAPI.app.app.graph.getNodeById(5).imgs ?? []).some((i) => i.naturalWidth > 0)",
        timeout=30_000,
    )
    show_node(page, 5)
    assert_on_top(page, f"{stats_sel(5)} table")
    bh.screenshot(page, "main-stats-plot")


@pytest.mark.browser
@pytest.mark.server
def test_reexecution_with_new_image_replaces_preview(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    first = test_image(72, 100, seed=5)
    second = test_image(110, 60, seed=6)
    name1 = upload_image(comfy_server, first, "dav2_browser_first.png")
    name2 = upload_image(comfy_server, second, "dav2_browser_second.png")
    bh.load_api_graph(page, depth_graph(comfy_server, name1, TEST_CHECKPOINT, colorize=False))
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
        """async () => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(3);
            const wf = app.graph.serialize().nodes.find((n) => n.id === 3);
            const prompt = (await app.graphToPrompt()).output;
            return {values: wf.widgets_values.length, real: node.widgets.filter((w) => !w.name.startsWith("dav2_")).length,
                    inputs: Object.keys(prompt["3"].inputs), stats: Object.keys(prompt["5"].inputs)};
        }"""
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
    page.wait_for_selector(f'{stats_sel(5)}[data-execution="2"]', state="attached")
    check_stats_table(page, 5, truth2, "relative (inverse depth)")
    bh.screenshot(page, "reexecution")


@pytest.mark.browser
@pytest.mark.server
def test_metric_model_shows_metres(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(80, 120, seed=7)
    name = upload_image(comfy_server, image, "dav2_browser_metric.png")
    truth = truth_depth(checkpoints["metric"], image)
    assert 0.0 < truth.min() < truth.max() < METRIC_MAX_DEPTH  # metres from the sigmoid head
    bh.load_api_graph(page, depth_graph(comfy_server, name, METRIC_CHECKPOINT, colorize=False))
    queue_and_wait(page, comfy_server, 3, execution=1)
    state = preview_state(page, 3)
    assert state["entry"]["units"] == "m" and state["entry"]["kind"] == "metric"
    show_node(page, 3, 480, 540)
    check_hover(page, 3, truth, [(3, 4), (119, 79), (60, 40)], "m")
    check_colours(page, 3, truth, "Spectral_r", metric=True, invert=False)  # near (small metres) = high end
    assert page.locator(f"{preview_sel(3)} .dav2-axis-max").text_content().endswith(" m")
    check_stats_table(page, 5, truth, "m")
    bh.screenshot(page, "metric")


def set_widgets(page: Any, node_id: int, **values: Any) -> None:
    """Set widgets of a canvas node the way a user's edit does (value, then the widget's callback)."""
    page.evaluate(
        """([id, values]) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            for (const [name, value] of Object.entries(values)) {
                const w = node.widgets.find((w) => w.name === name);
                if (!w) throw new Error(`${node.type} has no widget ${name}`);
                w.value = value;
                w.callback?.(value);
            }
        }""",
        [int(node_id), values],
    )


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
    assert diff.max() <= 2, f"preview differs from Colorize Depth's IMAGE by up to {diff.max()} levels (mean {diff.mean():.2f})"
    return output


@pytest.mark.browser
@pytest.mark.server
def test_colorize_preview_uses_the_node_range(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    """Colorize Depth's preview colours with the node's range_mode (auto, manual, percentile; relative and
    metric; inverted): every canvas pixel equals the node's IMAGE output; hover still reads the exact depth."""
    from dav2_core.colormaps import colorize_range
    from dav2_core.depth import DepthMap

    image = test_image(64, 90, seed=13)
    name = upload_image(comfy_server, image, "dav2_browser_range.png")
    bh.load_api_graph(page, depth_graph(comfy_server, name, TEST_CHECKPOINT, stats=False, save_npy="dav2_browser/range"))
    entry = queue_and_wait(page, comfy_server, 4, execution=1)
    depth = saved_depth(comfy_server, entry, "7")
    show_node(page, 4, 420, 480)

    # auto: unchanged, the depth's own min..max (the independent LUT check and the node's output agree)
    check_colours(page, 4, depth, "Spectral_r", metric=False, invert=False)
    auto = check_matches_output(page, comfy_server, entry, "6", 4)
    assert "colours" not in preview_state(page, 4)["status"]

    # manual: a window inside the depth's range, so both ends clip
    # the frontend rounds float widgets to their 0.01 step; the random-init model's depth is only ~0.03..0.05
    lo, hi = np.ceil(depth.min() * 100) / 100, np.floor(depth.max() * 100) / 100
    assert depth.min() < lo < hi < depth.max()
    set_widgets(page, 4, range_mode="manual", manual_min=float(lo), manual_max=float(hi))
    entry = queue_and_wait(page, comfy_server, 4, execution=2)
    shown = entry["outputs"]["4"]["dav2_depth"][0]
    assert (shown["display_min"], shown["display_max"]) == pytest.approx((lo, hi), abs=1e-6)
    manual = check_matches_output(page, comfy_server, entry, "6", 4)
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
    check_matches_output(page, comfy_server, entry, "6", 4)

    # metric model, manual range in metres (near = fewer metres)
    set_widgets(page, 2, model=METRIC_CHECKPOINT)
    set_widgets(page, 4, invert=False, range_mode="auto")
    entry = queue_and_wait(page, comfy_server, 4, execution=4)
    metres = saved_depth(comfy_server, entry, "7")
    check_colours(page, 4, metres, "Spectral_r", metric=True, invert=False)
    check_matches_output(page, comfy_server, entry, "6", 4)
    lo, hi = (round(float(np.quantile(metres, q)), 2) for q in (0.2, 0.7))
    assert metres.min() < lo < hi < metres.max()
    set_widgets(page, 4, range_mode="manual", manual_min=lo, manual_max=hi)
    entry = queue_and_wait(page, comfy_server, 4, execution=5)
    shown = entry["outputs"]["4"]["dav2_depth"][0]
    assert shown["units"] == "m" and (shown["display_min"], shown["display_max"]) == pytest.approx((lo, hi), abs=1e-6)
    check_matches_output(page, comfy_server, entry, "6", 4)
    bh.screenshot(page, "colorize-metric-manual")


@pytest.mark.browser
@pytest.mark.server
def test_single_pixel_image(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(1, 1, seed=8)
    name = upload_image(comfy_server, image, "dav2_browser_1px.png")
    truth = truth_depth(checkpoints["relative"], image)
    assert truth.shape == (1, 1)
    bh.load_api_graph(page, depth_graph(comfy_server, name, TEST_CHECKPOINT, colorize=False))
    queue_and_wait(page, comfy_server, 3, execution=1)
    state = preview_state(page, 3)
    assert state["canvas"] == [1, 1] and state["entry"]["min"] == state["entry"]["max"]
    assert "constant depth" in state["status"]
    show_node(page, 3, 360, 420)
    r = hover(page, 3, 0, 0, 1, 1)
    assert (r["x"], r["y"]) == ("0", "0")
    assert float(r["value"]) == pytest.approx(truth[0, 0], rel=1e-5, abs=1e-6)
    check_colours(page, 3, truth, "Spectral_r", metric=False, invert=False)  # zero range: first LUT colour
    table = stats_cells(page, 5)
    assert table["rows"]["range"] == ["0"] and table["rows"]["std"] == ["0"]
    bh.screenshot(page, "single-pixel")


@pytest.mark.browser
@pytest.mark.server
def test_4k_image_downsampled_display_exact_hover(page: Any, comfy_server: Any, checkpoints: dict) -> None:
    image = test_image(2160, 3840, seed=9)
    name = upload_image(comfy_server, image, "dav2_browser_4k.png")
    truth = truth_depth(checkpoints["relative"], image)
    bh.load_api_graph(page, depth_graph(comfy_server, name, TEST_CHECKPOINT, colorize=False, stats=False))
    queue_and_wait(page, comfy_server, 3, execution=1, timeout_s=600)
    state = preview_state(page, 3)
    assert (state["entry"]["width"], state["entry"]["height"]) == (3840, 2160)
    assert state["canvas"] == [1024, 576], "a 4K depth must be displayed downsampled"
    show_node(page, 3, 1100, 800)
    check_hover(page, 3, truth, [(0, 0), (3839, 2159), (1921, 1033), (3001, 211)], "relative")
    check_colours(page, 3, truth, "Spectral_r", metric=False, invert=False)
    bh.screenshot(page, "4k")


@pytest.mark.browser
@pytest.mark.server
def test_synthetic_outputs_exact_full_res_nan_constant_and_late_load(page: Any, comfy_server: Any) -> None:
    """Previews of known depth maps sent through the node's real onExecuted: every full-resolution pixel of
    a 4K map differs from its neighbours, so reading the wrong pixel shows; NaN pixels read "no value";
    a constant map shows zero range; a slow older load never replaces a newer output."""
    from dav2_core.depth import DepthMap

    h, w = 2160, 3840
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = ((xx * 7919 + yy * 104729) % 1000).astype(np.float32) / 100.0 + 0.5  # metres 0.5..10.49
    pattern[100:300, 200:500] = np.nan
    big = preview.write_preview_entries(DepthMap(torch.from_numpy(pattern)[None], kind="metric"),
                                        _temp_dir(comfy_server))
    flat = preview.write_preview_entries(DepthMap(torch.full((1, 48, 64), 3.5), kind="metric"),
                                         _temp_dir(comfy_server))
    node = _make_node(page, NODE_IDS["Estimate Depth"])

    # Late load: the 4K output arrives first, the small one right after; the small one must win.
    _send_output(page, node, {"dav2_depth": big})
    _send_output(page, node, {"dav2_depth": flat})
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

    _send_output(page, node, {"dav2_depth": big})
    page.wait_for_selector(f'{preview_sel(node)}[data-execution="3"][data-ready="1"]', state="attached",
                           timeout=60_000)
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


@pytest.mark.server
def test_colormaps_route_serves_the_lut_table(comfy_server: Any) -> None:
    from dav2_core.colormaps import COLORMAPS, lut_uint8_table

    table = comfy_server.get("/dav2/colormaps")
    assert list(table) == list(COLORMAPS)
    assert table == lut_uint8_table()
    assert comfy_server.get("/api/dav2/colormaps") == table  # the path the frontend's api.fetchApi uses


def _relief_pixels(page: Any, node_id: int) -> np.ndarray:
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


@pytest.mark.browser
@pytest.mark.server
def test_relief_view_drag_recolour_and_wheel_zoom(page: Any, comfy_server: Any) -> None:
    """The 3D relief draws the depth, turns when dragged, follows the colormap; the wheel still zooms the canvas."""
    from dav2_core.depth import DepthMap

    yy, xx = np.mgrid[0:90, 0:150].astype(np.float32)
    bumps = np.exp(-((xx - 45) ** 2 + (yy - 45) ** 2) / 300.0) + 0.6 * np.exp(-((xx - 110) ** 2 + (yy - 50) ** 2) / 150.0)
    entries = preview.write_preview_entries(DepthMap(torch.from_numpy(bumps)[None]), _temp_dir(comfy_server))
    node = _make_node(page, NODE_IDS["Colorize Depth"])
    _send_output(page, node, {"dav2_depth": entries})
    page.wait_for_selector(f'{preview_sel(node)}[data-ready="1"]', state="attached")
    show_node(page, node, 560, 560)

    page.check(f"{preview_sel(node)} .dav2-relief-toggle input")
    relief = page.locator(f"{preview_sel(node)} canvas.dav2-relief")
    relief.wait_for(state="visible")
    assert not page.locator(f"{preview_sel(node)} canvas.dav2-depth").is_visible()
    page.wait_for_timeout(300)
    before = _relief_pixels(page, node)
    assert (before[..., 3] > 0).mean() > 0.15, "the relief drew almost nothing"
    bh.screenshot(page, "relief")

    box = relief.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy - 50, steps=4)
    page.mouse.up()
    page.wait_for_timeout(300)
    turned = _relief_pixels(page, node)
    assert np.abs(turned.astype(int) - before).mean() > 5, "dragging did not turn the relief"
    bh.screenshot(page, "relief-turned")

    page.select_option(f"{preview_sel(node)} select.dav2-colormap", "gray")
    page.wait_for_timeout(300)
    grey = _relief_pixels(page, node)
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


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("example", ["depth_stats", "depth_colorize_save"])
def test_example_workflow_from_the_ui(page: Any, comfy_server: Any, checkpoints: dict, example: str) -> None:
    """An example workflow loaded like a user does (app.loadGraphData), pointed at the test checkpoint and image."""
    import json

    workflow = json.loads((ROOT / "example_workflows" / f"{example}.json").read_text(encoding="utf-8"))
    image = test_image(64, 100, seed=12)
    name = upload_image(comfy_server, image, f"dav2_browser_{example}.png")
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
        [workflow, name, TEST_CHECKPOINT, INPUT_SIZE,
         {"loader": NODE_IDS["Load Depth Anything V2"], "estimate": NODE_IDS["Estimate Depth"]}],
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


@pytest.mark.browser
@pytest.mark.server
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
    node = _make_node(page, NODE_IDS["Estimate Depth"], (100, 100))
    stats_node = _make_node(page, NODE_IDS["Depth Stats"], (100, 900))
    _send_output(page, node, {"dav2_depth": entries})
    _send_output(page, stats_node, {"text": [format_stats(stats)], "dav2_stats": [stats]})
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


@pytest.mark.browser
@pytest.mark.server
def test_missing_preview_file_reports_an_error_on_the_node(page: Any, comfy_server: Any, console: Any) -> None:
    """A preview file that cannot be loaded (temp folder emptied by a restart) says so on the node."""
    from dav2_core.depth import DepthMap

    (entry,) = preview.write_preview_entries(DepthMap(torch.rand(1, 8, 8)), _temp_dir(comfy_server))
    (Path(_temp_dir(comfy_server)) / entry["subfolder"] / entry["filename"]).unlink()
    console.expect("HTTP 404")
    node = _make_node(page, NODE_IDS["Estimate Depth"])
    _send_output(page, node, {"dav2_depth": [entry]})
    status = page.locator(f"{preview_sel(node)} .dav2-status.dav2-error")
    status.wait_for(state="attached")
    assert "preview failed" in status.text_content() and "HTTP 404" in status.text_content()
    assert page.locator(f"{preview_sel(node)}").get_attribute("data-ready") == "0"
    state = preview_state(page, node)
    assert state["entry"] is None and not state["loading"]
