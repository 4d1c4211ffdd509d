"""A :class:`~tools.graphs.graph.Graph` laid out on the canvas and written in the ComfyUI frontend's workflow
format (version 0.4), as the example workflows ship."""

from __future__ import annotations

from typing import Any

from .graph import Graph, Node

#: Room (width, height below the title bar) each node type gets in the layout: at least what it takes on the
#: classic canvas and in Nodes 2.0 (Vue nodes, stock and newest tested frontend), after a run too (our depth
#: preview and stats table, core image/video previews). tests/browser/test_browser_frontends.py checks that no two nodes
#: overlap and nothing sticks out of its node, after load and after a run, in every tested frontend/renderer.
ROOM: dict[str, tuple[int, int]] = {
    "LoadImage": (320, 380),
    "SaveImage": (400, 380),
    "PreviewImage": (400, 380),
    "LoadVideo": (400, 420),
    "GetVideoComponents": (400, 140),
    "CreateVideo": (520, 220),
    "SaveVideo": (520, 480),
    "CheckpointLoaderSimple": (320, 140),
    "CLIPTextEncode": (400, 200),
    "ControlNetLoader": (320, 90),
    "ControlNetApplyAdvanced": (320, 250),
    "EmptyLatentImage": (320, 150),
    "KSampler": (320, 330),
    "VAEDecode": (240, 80),
    "MaskToImage": (240, 60),
    "DAV2ModelLoader": (340, 190),
    "DAV2EstimateDepth": (360, 800),
    "DAV2ColorizeDepth": (360, 580),
    "DAV2DepthStats": (420, 640),
    "DAV2DepthBokeh": (340, 320),
    "DAV2DepthParallax": (340, 190),
    "DAV2SaveDepth": (340, 160),
    "DAV2VideoDepth": (360, 600),
}
#: Height of a node's title bar (LiteGraph.NODE_TITLE_HEIGHT): ``pos`` is the top of the body, below it.
TITLE_HEIGHT = 30
#: Free space between two nodes, across and down.
GAP = 40
ORIGIN = (20, 20 + TITLE_HEIGHT)


class Workflow(Graph):
    """A graph whose nodes are laid out in columns (left to right), stacked in each column in the order they are
    added, each with its :data:`ROOM`, so no two overlap whatever the renderer makes of them."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: dict[int, int] = {}

    def place(self, column: int, class_type: str, title: str | None = None, **inputs: Any) -> Node:
        """Add a node in ``column``."""
        node = self.add(class_type, title, **inputs)
        self.columns[node.id] = column
        return node

    def positions(self) -> dict[int, tuple[int, int]]:
        """Node id -> position: columns side by side (each as wide as its widest node), nodes stacked in each."""
        positions = {}
        x = ORIGIN[0]
        for column in sorted(set(self.columns.values())):
            members = [n for n in self.nodes if self.columns[n.id] == column]
            y = ORIGIN[1]
            for n in members:
                positions[n.id] = (x, y)
                y += ROOM[n.class_type][1] + GAP + TITLE_HEIGHT
            x += max(ROOM[n.class_type][0] for n in members) + GAP
        return positions

    def to_json(self) -> dict[str, Any]:
        """The workflow as the frontend saves it."""
        positions = self.positions()
        nodes = []
        for order, n in enumerate(self.nodes):
            inputs = []
            for name, type_, is_widget in n.ui_inputs():
                entry: dict[str, Any] = {"name": name, "type": type_, "link": n.links_in.get(name)}
                if is_widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            outputs = [
                {"name": name, "type": type_, "links": n.links_out.get(slot, []), "slot_index": slot}
                for slot, (name, type_) in enumerate(n.spec.outputs)
            ]
            widgets = []
            for name, value in n.widgets():
                widgets += [value, *n.spec.input(name).ui_extra]
            node = {
                "id": n.id,
                "type": n.class_type,
                "pos": list(positions[n.id]),
                "size": list(ROOM[n.class_type]),
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": outputs,
                "properties": {"Node name for S&R": n.class_type},
                "widgets_values": widgets,
            }
            if n.title:
                node["title"] = n.title
            nodes.append(node)
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
            "version": 0.4,
        }
