"""The node help pages web/docs/<node id>.md (shown by the newest frontend's node help, see
tests/browser/test_browser_help.py) against the registered schemas: one page per node, naming every input and
output, its pictures present and small; and the example workflows in the form the template browser reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

from comfy_harness import NODE_IDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "web" / "docs"
MAX_IMAGE_BYTES = 60_000


def _pack_nodes(comfy_inprocess) -> dict:
    classes = comfy_inprocess.module.NODE_CLASS_MAPPINGS
    return {node_id: cls.GET_SCHEMA() for node_id, cls in classes.items()}


def test_every_node_has_a_help_page_naming_its_inputs_and_outputs(comfy_inprocess) -> None:
    nodes = _pack_nodes(comfy_inprocess)
    pages = {p.stem for p in DOCS.glob("*.md")}
    # every node this ComfyUI offers has a page; pages of nodes offered only on other versions are no strays
    assert set(nodes) <= pages <= set(NODE_IDS.values()), "one web/docs/<node id>.md per node, no strays"
    for node_id, schema in nodes.items():
        text = (DOCS / f"{node_id}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {schema.display_name}\n"), f"{node_id}.md must start with its display name"
        listed = set(re.findall(r"\*\*([a-z0-9_]+)\*\*", text))
        inputs = {i.id for i in schema.inputs}
        outputs = {o.display_name or o.id for o in schema.outputs}
        assert inputs <= listed, f"{node_id}.md does not describe inputs {sorted(inputs - listed)}"
        assert outputs <= listed, f"{node_id}.md does not describe outputs {sorted(outputs - listed)}"
        assert "## Inputs" in text and "## Outputs" in text
        assert re.search(r"!\[[^\]]+\]\(images/[a-z_]+\.jpg\)", text), f"{node_id}.md has no picture"


def test_help_page_pictures_exist_and_are_small() -> None:
    used = set()
    for page in DOCS.glob("*.md"):
        for ref in re.findall(r"\]\((images/[^)]+)\)", page.read_text(encoding="utf-8")):
            path = DOCS / ref
            assert path.is_file(), f"{page.name}: {ref} missing"
            used.add(path.name)
    for image in (DOCS / "images").iterdir():
        assert image.stat().st_size < MAX_IMAGE_BYTES, f"{image.name} is {image.stat().st_size} bytes"
        assert image.name in used, f"{image.name} is used by no help page"


def test_example_workflows_in_the_template_list_form() -> None:
    """Frontend 1.58.1 lists a pack's templates from GET /workflow_templates (the .json names in
    example_workflows/), titles each by its file name, describes it by the name with _ and - as spaces, and
    shows ``<name>.jpg`` as its thumbnail: so every workflow has a readable snake_case name and a jpg beside it."""
    workflows = sorted((ROOT / "example_workflows").glob("*.json"))
    assert workflows
    for path in workflows:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", path.stem), f"{path.name}: name it in snake_case words"
        assert path.with_suffix(".jpg").is_file(), f"{path.stem}.jpg thumbnail missing"
        workflow = json.loads(path.read_text(encoding="utf-8"))
        assert workflow.get("nodes") and workflow.get("links") is not None, f"{path.name} is not a UI workflow"
