"""Helpers for the real-browser tests: Debian chromium through Playwright against a running ComfyUI.

Never downloads a browser: Playwright drives ``/usr/bin/chromium`` (``apt-get install chromium``,
the Makefile's ``browser`` target). :func:`chromium_or_skip` skips with the reason when it is absent,
except under CI where a missing browser is a failure (the install step is broken).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("DAV2_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
EXTENSION_NAME = "dav2.DepthAnythingV2"
#: Our web files' URL fragment; console messages from these URLs are ours.
WEB_FILES = ("dav2.js", "dav2_common.js", "depth_preview.js", "depth_stats.js")


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


@dataclass
class ConsoleLog:
    """Console messages and page errors of one page, with the ones raised by our extension."""

    messages: list[dict] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # substrings of errors a test provokes on purpose

    def attach(self, page: Any) -> "ConsoleLog":
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
        blob = m["url"] + "\n" + m["text"]
        return "[dav2]" in m["text"] or any(f"/{name}" in blob for name in WEB_FILES)

    def expect(self, substring: str) -> None:
        """Declare an error message the test provokes on purpose (it then does not count as a failure)."""
        self.expected.append(substring)

    def our_errors(self) -> list[dict]:
        """Errors and warnings from our extension (by file URL, stack, or the "[dav2]" prefix), minus expected ones."""
        return [
            m for m in self.messages
            if m["type"] in ("error", "pageerror", "warning") and self._ours(m)
            and not any(x in m["text"] for x in self.expected)
        ]

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.messages, indent=1), encoding="utf-8")


def prepare_user_settings(server_url: str) -> None:
    """Settings that keep first-run dialogs (tutorial, templates) from covering the canvas."""
    import requests

    settings = {
        "Comfy.TutorialCompleted": True,
        "Comfy.InstalledVersion": "99.0.0",
        "Comfy.Validation.Workflows": False,
        "Comfy.Minimap.Visible": False,  # it sits over the canvas's bottom-right corner
    }
    r = requests.post(f"{server_url}/settings", json=settings, timeout=30)
    r.raise_for_status()


def open_comfy(page: Any, server_url: str, node_type: str = "PreviewImage", timeout_ms: int = 120_000) -> None:
    """Load the ComfyUI page; wait for the graph, our extension and the node type ``node_type`` to exist."""
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
    page.keyboard.press("Escape")  # close any dialog the frontend opened on its own


def screenshot(page: Any, name: str) -> Path:
    """Full-page PNG under ``test-artifacts/browser/`` (kept by CI as a test artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path))
    return path


# ----------------------------------------------------------------------------- graph helpers (page side)

def load_api_graph(page: Any, graph: dict, name: str = "dav2-test") -> None:
    """Load an API-format graph into the canvas with the frontend's own ``app.loadApiJson``."""
    page.evaluate(
        """async ([graph, name]) => {
            const app = window.comfyAPI.app.app;
            await app.loadApiJson(graph, name);
            app.canvas.setDirty(true, true);
        }""",
        [graph, name],
    )


def queue_from_ui(page: Any) -> None:
    """Queue the loaded graph the way the Queue button does (``app.queuePrompt``)."""
    page.evaluate("async () => { await window.comfyAPI.app.app.queuePrompt(0, 1); }")


def node_selector(node_id: int | str, widget: str) -> str:
    """CSS selector of our DOM widget root ("depth-preview" | "depth-stats") on a given graph node."""
    return f'[data-dav2="{widget}"][data-node-id="{node_id}"]'


def fit_view(page: Any) -> None:
    """Zoom the canvas so the whole graph is visible (the DOM widgets follow the canvas transform)."""
    page.evaluate(
        """() => {
            const app = window.comfyAPI.app.app;
            const c = app.canvas;
            if (c.fitViewToSelectionAnimated) { c.selectItems?.(app.graph.nodes); }
            const nodes = app.graph.nodes;
            let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (const n of nodes) {
                x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 40);
                x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
            }
            c.deselectAll?.();
            const el = c.canvas;
            const scale = Math.min(1, 0.95 * Math.min(el.clientWidth / (x1 - x0), el.clientHeight / (y1 - y0)));
            c.ds.scale = scale;
            c.ds.offset[0] = -x0 + (el.clientWidth / scale - (x1 - x0)) / 2;
            c.ds.offset[1] = -y0 + (el.clientHeight / scale - (y1 - y0)) / 2;
            c.setDirty(true, true);
        }"""
    )
