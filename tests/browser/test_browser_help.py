"""The node help pages (web/docs/<node id>.md) in the newest frontend's node help: the properties panel's Info
tab of a selected node fetches ``/extensions/<pack>/docs/<node id>.md`` (frontend 1.58.1's NodeHelpService) and
renders it with its picture."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import browser_helpers as bh
from comfy_harness import offered_nodes

ROOT = Path(__file__).resolve().parents[2]
NEWEST_CLASSIC = [pytest.param(u, id=u.id) for u in bh.UIS if u.frontend == "newest" and not u.vue]


def _first_sentence(node_id: str) -> str:
    """The first words of the page's first paragraph (what the panel must show)."""
    text = (ROOT / "web" / "docs" / f"{node_id}.md").read_text(encoding="utf-8")
    paragraph = re.sub(r"[*`]", "", text.split("\n\n")[1])  # as rendered: no Markdown emphasis or code marks
    return " ".join(paragraph.split()[:6])


@pytest.mark.parametrize("ui", NEWEST_CLASSIC, indirect=True)
def test_help_page_of_every_node_shows_in_the_info_tab(page: Any, ui: bh.UI, ui_server: Any, console: Any) -> None:
    # The frontend first asks for a localised page (docs/<node id>/en.md) and falls back to docs/<node id>.md:
    # the browser logs that probe's 404. The page and its picture are checked to load below.
    console.expect("404 (Not Found)")
    shown = {}
    offered = offered_nodes(ui_server.object_info())  # conditional nodes only where this ComfyUI has them
    for display, node_id in offered.items():
        page.evaluate("() => window.comfyAPI.app.app.graph.clear()")
        node = bh.make_node(page, node_id, (300, 200))
        page.evaluate(
            "(id) => { const app = window.comfyAPI.app.app; app.canvas.deselectAll(); "
            "app.canvas.selectNode(app.graph.getNodeById(id)); }",
            node,
        )
        if not page.get_by_role("tab", name="Info").count():
            page.click("button[aria-label='Toggle properties panel']")
        page.get_by_role("tab", name="Info").first.click()
        words = _first_sentence(node_id)
        heading = page.locator("h1", has_text=display)
        heading.first.wait_for(timeout=30_000)
        page.get_by_text(words, exact=False).first.wait_for(timeout=30_000)
        images = page.wait_for_function(
            """() => {
                const imgs = [...document.images].filter((i) => i.src.includes('/docs/images/'));
                return imgs.length && imgs.every((i) => i.complete && i.naturalWidth > 0)
                    ? imgs.map((i) => i.src) : null;
            }""",
            timeout=30_000,
        ).json_value()
        shown[node_id] = images
        assert all(f"/extensions/{bh.PACK_NAME}/docs/images/" in src for src in images), images
    assert set(shown) == set(offered.values())
    bh.screenshot(page, "help_page_video_depth")
    # Leave the panel closed: the frontend keeps its state in the server's user settings, shared by later tests.
    page.click("button[aria-label='Toggle properties panel']")
    page.get_by_role("tab", name="Info").first.wait_for(state="detached", timeout=30_000)
