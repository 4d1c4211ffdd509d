"""The browser side of the test harness: Debian chromium through Playwright against a running ComfyUI.

Never downloads a browser: Playwright drives ``/usr/bin/chromium`` (``apt-get install chromium``,
the Makefile's ``browser`` target). :func:`chromium_or_skip` skips with the reason when it is absent,
except under CI where a missing browser is a failure (the install step is broken).

The frontend matrix: every browser test runs on one :class:`UI` (frontend x renderer); ``ui`` defaults to
the stock frontend on the classic canvas, and tests parametrise it (``indirect``) with :data:`ALL_UIS` where
the frontend or the renderer matters. The fixtures (``browser``, ``ui``, ``ui_server``, ``page``,
``console``, ``checkpoints``) are imported by tests/browser/conftest.py.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from comfy_harness import NODE_IDS, PACK_NAME, TEST_CHECKPOINT

CHROMIUM = Path(os.environ.get("DAV2_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
EXTENSION_NAME = "dav2.DepthAnythingV2"
#: URL path under which ComfyUI serves our web/ folder: console messages from these files are ours.
WEB_URL = f"/extensions/{PACK_NAME}/"
METRIC_CHECKPOINT = "dav2_random_vits_metric_hypersim.safetensors"
METRIC_MAX_DEPTH = 20.0


def chromium_or_skip() -> Path:
    """Path of Debian's chromium; skip (locally) or fail (CI) when it is not installed."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} not found: install Debian's chromium (`make browser` / apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + " - CI must run the browser tests")
    pytest.skip(message)


def launch(playwright: Any):
    """Chromium from :data:`CHROMIUM` with the flags the project uses (headless, no sandbox, no GPU)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


# ----------------------------------------------------------------------------- the frontend matrix


@dataclass(frozen=True)
class UI:
    """One frontend ("stock": the one the test ComfyUI ships; "newest": the pinned comfyui-frontend-package
    served with --front-end-root) on one renderer ("classic" canvas or "vue": Nodes 2.0)."""

    frontend: str
    renderer: str

    @property
    def id(self) -> str:
        return f"{self.frontend}-{self.renderer}"

    @property
    def vue(self) -> bool:
        return self.renderer == "vue"


STOCK_CLASSIC = UI("stock", "classic")
UIS = [STOCK_CLASSIC, UI("stock", "vue"), UI("newest", "classic"), UI("newest", "vue")]
#: ``@pytest.mark.parametrize("ui", ALL_UIS, indirect=True)``: the test runs on all four.
ALL_UIS = [pytest.param(u, id=u.id) for u in UIS]
#: Both frontends, classic canvas (for behaviour that does not depend on the renderer).
BOTH_FRONTENDS = [pytest.param(u, id=u.id) for u in UIS if not u.vue]


# ----------------------------------------------------------------------------- console


@dataclass
class ConsoleLog:
    """Console messages and page errors of one page, with the ones raised by our extension."""

    messages: list[dict] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # substrings of errors a test provokes on purpose

    def attach(self, page: Any) -> ConsoleLog:
        def on_console(msg: Any) -> None:
            loc = msg.location or {}
            self.messages.append({"type": msg.type, "text": msg.text, "url": loc.get("url", "")})

        def on_error(err: Any) -> None:
            self.messages.append({"type": "pageerror", "text": f"{err}\n{getattr(err, 'stack', '')}", "url": ""})

        page.on("console", on_console)
        page.on("pageerror", on_error)
        return self

    @staticmethod
    def _ours(m: dict) -> bool:
        # A frontend newer than the backend logs its own errors (missing /api/jobs etc.): not ours.
        return "[dav2]" in m["text"] or WEB_URL in m["url"] + "\n" + m["text"]

    def expect(self, substring: str) -> None:
        """Declare an error message the test provokes on purpose (it then does not count as a failure)."""
        self.expected.append(substring)

    def our_errors(self) -> list[dict]:
        """Errors and warnings from our extension (by file URL, stack, or the "[dav2]" prefix), minus expected ones."""
        return [
            m
            for m in self.messages
            if m["type"] in ("error", "pageerror", "warning")
            and self._ours(m)
            and not any(x in m["text"] for x in self.expected)
        ]

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.messages, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------- opening ComfyUI


def prepare_user_settings(server_url: str, vue: bool = False) -> None:
    """Settings that keep first-run dialogs (tutorial, templates) from covering the canvas, and the renderer."""
    import requests

    settings = {
        "Comfy.TutorialCompleted": True,
        "Comfy.InstalledVersion": "99.0.0",
        "Comfy.Validation.Workflows": False,
        "Comfy.Minimap.Visible": False,  # it sits over the canvas's bottom-right corner
        "Comfy.VueNodes.Enabled": vue,  # Nodes 2.0
    }
    r = requests.post(f"{server_url}/settings", json=settings, timeout=30)
    r.raise_for_status()


def open_comfy(
    page: Any, server_url: str, node_type: str = "PreviewImage", timeout_ms: int = 120_000, start_graph: bool = True
) -> None:
    """Load the ComfyUI page; wait for the graph, our extension and the node type ``node_type`` to exist,
    and (``start_graph``) for the frontend to have loaded its start workflow (newer frontends do that after
    the app is up, replacing whatever a test built meanwhile)."""
    page.goto(server_url + "/", wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_function(
        """([name, nodeType]) => {
            const app = window.comfyAPI?.app?.app;
            return !!(app && app.graph && app.canvas && app.extensions?.some((e) => e.name === name)
                      && window.LiteGraph?.registered_node_types?.[nodeType]);
        }""",
        arg=[EXTENSION_NAME, node_type],
        timeout=timeout_ms,
    )
    if start_graph:
        page.wait_for_function("() => window.comfyAPI.app.app.graph.nodes.length > 0", timeout=timeout_ms)
    page.keyboard.press("Escape")  # close any dialog the frontend opened on its own


def screenshot(page: Any, name: str) -> Path:
    """Full-page PNG under ``test-artifacts/browser/`` (kept by CI as a test artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path))
    return path


# ----------------------------------------------------------------------------- graph helpers (page side)


def load_api_graph(page: Any, graph: dict, name: str = "dav2-test") -> None:
    """Load an API-format graph into the canvas with the frontend's own ``app.loadApiJson``, then spread the
    nodes out in a row (its arrangement assumes classic node sizes; Nodes 2.0 nodes are taller) by loading the
    result again as a workflow with new positions."""
    page.evaluate(
        """async ([graph, name]) => {
            const app = window.comfyAPI.app.app;
            await app.loadApiJson(graph, name);
            const wf = app.graph.serialize();
            wf.nodes.forEach((n, i) => { n.pos = [60 + 700 * i, 80]; });
            await app.loadGraphData(wf, true, true, name);
            app.canvas.setDirty(true, true);
        }""",
        [graph, name],
    )


def load_workflow(page: Any, workflow: dict, name: str = "dav2-test") -> None:
    """Load a UI-format workflow the way opening a file does (``app.loadGraphData``)."""
    page.evaluate(
        """async ([wf, name]) => {
            const app = window.comfyAPI.app.app;
            await app.loadGraphData(wf, true, true, name);
            app.canvas.setDirty(true, true);
        }""",
        [workflow, name],
    )


def queue_from_ui(page: Any) -> None:
    """Queue the loaded graph the way the Queue button does (``app.queuePrompt``)."""
    page.evaluate("async () => { await window.comfyAPI.app.app.queuePrompt(0, 1); }")


def node_selector(node_id: int | str, widget: str) -> str:
    """CSS selector of our DOM widget root ("depth-preview" | "depth-stats") on a given graph node."""
    return f'[data-dav2="{widget}"][data-dav2-node="{node_id}"]'


def preview_sel(node_id: int | str) -> str:
    return node_selector(node_id, "depth-preview")


def stats_sel(node_id: int | str) -> str:
    return node_selector(node_id, "depth-stats")


def set_view(page: Any, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> None:
    """Set the canvas zoom and offset (canvas units) and redraw."""
    page.evaluate(
        """([scale, ox, oy]) => {
            const c = window.comfyAPI.app.app.canvas;
            c.ds.scale = scale;
            c.ds.offset[0] = ox;
            c.ds.offset[1] = oy;
            c.setDirty(true, true);
        }""",
        [scale, *offset],
    )


def fit_view(page: Any, max_scale: float = 1.0) -> None:
    """Zoom the canvas so the whole graph is visible (the DOM widgets follow the canvas transform)."""
    page.evaluate(
        """(maxScale) => {
            const app = window.comfyAPI.app.app;
            const c = app.canvas;
            let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (const n of app.graph.nodes) {
                x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 40);
                x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
            }
            c.deselectAll?.();
            const el = c.canvas;
            const scale = Math.min(maxScale, 0.95 * Math.min(el.clientWidth / (x1 - x0), el.clientHeight / (y1 - y0)));
            c.ds.scale = scale;
            c.ds.offset[0] = -x0 + (el.clientWidth / scale - (x1 - x0)) / 2;
            c.ds.offset[1] = -y0 + (el.clientHeight / scale - (y1 - y0)) / 2;
            c.setDirty(true, true);
        }""",
        max_scale,
    )
    page.wait_for_timeout(300)  # DOM widgets and Vue nodes follow the canvas on its next frame


def show_node(page: Any, node_id: int | str, width: float | None = None, height: float | None = None) -> None:
    """Make a node's widgets hoverable at zoom 1: on the classic canvas, move it clear of the others (optionally
    resized) and centre it, with nothing selected (the frontend clips DOM widgets under the selected node);
    in Nodes 2.0 (where not every frontend follows a moved or resized node), centre it and bring it to front."""
    vue_header = page.evaluate(
        """([id, w, h]) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const c = app.canvas, el = c.canvas;
            c.deselectAll?.();
            c.ds.scale = 1;
            const vue = document.querySelector(`.lg-node[data-node-id="${id}"]`);
            if (vue) {
                const r = vue.getBoundingClientRect(), cr = el.getBoundingClientRect();
                c.ds.offset[0] += cr.left + Math.max(20, (el.clientWidth - r.width) / 2) - r.left;
                c.ds.offset[1] += cr.top + Math.max(60, (el.clientHeight - r.height) / 2) - r.top;
                c.setDirty(true, true);
                return true;
            }
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
            c.ds.offset[0] = -node.pos[0] + Math.max(20, (el.clientWidth - node.size[0]) / 2);
            c.ds.offset[1] = -node.pos[1] + Math.max(60, (el.clientHeight - node.size[1]) / 2);
            c.setDirty(true, true);
            return false;
        }""",
        [int(node_id), width, height],
    )
    page.wait_for_timeout(400)  # DOM widgets and Vue nodes follow the canvas on its next frame
    if vue_header:
        box = page.locator(f'.lg-node[data-node-id="{node_id}"]').bounding_box()
        page.mouse.click(box["x"] + box["width"] - 12, box["y"] + 8)  # on the title bar: brings it to front
        page.wait_for_timeout(200)


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


def make_node(page: Any, class_type: str, pos: tuple[int, int] = (100, 100)) -> int:
    """Add a node of ``class_type`` to the canvas graph at ``pos``; returns its id."""
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


def send_output(page: Any, node_id: int, output: dict) -> None:
    """Deliver a UI output to a node exactly as the frontend does on an "executed" message."""
    page.evaluate("([id, out]) => window.comfyAPI.app.app.graph.getNodeById(id).onExecuted(out)", [node_id, output])


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API keeps an event loop running in the main thread
    while it is open, so it must not outlive the browser tests."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def ui(request: pytest.FixtureRequest) -> UI:
    """The frontend and renderer of this test (stock frontend, classic canvas unless parametrised)."""
    return getattr(request, "param", STOCK_CLASSIC)


@pytest.fixture
def ui_server(ui: UI, request: pytest.FixtureRequest) -> Any:
    """The session server that serves ``ui``'s frontend."""
    return request.getfixturevalue("comfy_server" if ui.frontend == "stock" else "comfy_server_newest_frontend")


def new_page(browser: Any, server: Any, ui: UI, request: pytest.FixtureRequest, viewport=(1600, 1100)):
    """A fresh browser context and ComfyUI tab on ``server`` in ``ui``'s renderer, with an empty graph;
    returns (page, console log)."""
    prepare_user_settings(server.url, vue=ui.vue)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    request.addfinalizer(context.close)
    pg = context.new_page()
    log = ConsoleLog().attach(pg)
    open_comfy(pg, server.url, node_type=NODE_IDS["Estimate Depth"])
    pg.evaluate("() => window.comfyAPI.app.app.graph.clear()")
    return pg, log


def checked_page(browser: Any, server: Any, ui: UI, request: pytest.FixtureRequest, viewport=(1600, 1100)):
    """Generator for page fixtures: a fresh tab (see :func:`new_page`); at the end a screenshot, the console
    dump, and a failure if our extension logged errors."""
    pg, log = new_page(browser, server, ui, request, viewport)
    request.node.dav2_console = log
    try:
        yield pg
    finally:
        name = request.node.name
        try:
            screenshot(pg, f"{name}-final")
        except Exception:  # noqa: BLE001 - a failed screenshot must not hide the test's own result
            pass
        log.dump(ARTIFACTS / f"{name}-console.json")
    ours = log.our_errors()
    assert not ours, f"errors from the dav2 web extension in the browser console: {ours}"


@pytest.fixture
def page(browser: Any, ui: UI, ui_server: Any, request: pytest.FixtureRequest):
    """A fresh ComfyUI tab on ``ui`` with our extension loaded and an empty graph; the console is checked
    for our errors at the end."""
    yield from checked_page(browser, ui_server, ui, request)


@pytest.fixture
def console(page: Any, request: pytest.FixtureRequest) -> ConsoleLog:
    """The browser console of this test's page (to declare errors the test provokes on purpose)."""
    return request.node.dav2_console


@pytest.fixture(scope="module")
def checkpoints(comfy_server: Any):
    """The relative test checkpoint and a metric one (metadata kind=metric, max 20 m) in the stock server's
    model folder."""
    from checkpoint_factory import write_checkpoint

    metric = comfy_server.models_dir / METRIC_CHECKPOINT
    write_checkpoint(metric, "vits", "official-safetensors", seed=0, kind="metric", max_depth=METRIC_MAX_DEPTH)
    try:
        yield {"relative": comfy_server.models_dir / TEST_CHECKPOINT, "metric": metric}
    finally:
        metric.unlink(missing_ok=True)  # the server is shared: leave its model folder as we found it
