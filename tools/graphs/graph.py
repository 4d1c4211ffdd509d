"""A graph of nodes and links, written the same way by the tests (API format, :meth:`Graph.to_api`) and the
example workflows (UI format, :mod:`tools.graphs.layout`).

Nodes are numbered 1, 2, ... in the order they are added; an input is a value or another node's output
(``node["depth"]``, by the output's name from the node's spec). Required widgets the caller leaves out take their
defaults from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .specs import NodeSpec, node_spec


@dataclass(frozen=True)
class Output:
    """Output ``slot`` (of type ``type``) of node ``node_id``."""

    node_id: int
    slot: int
    type: str

    def to_api(self) -> list[Any]:
        return [str(self.node_id), self.slot]


@dataclass
class Node:
    """One node: its type, spec, the inputs given (values or :class:`Output`) and an optional title."""

    id: int
    class_type: str
    spec: NodeSpec
    inputs: dict[str, Any]
    title: str | None = None
    links_in: dict[str, int] = field(default_factory=dict)
    links_out: dict[int, list[int]] = field(default_factory=dict)

    def __getitem__(self, output: str) -> Output:
        slot = self.spec.output_slot(output)
        return Output(self.id, slot, self.spec.outputs[slot][1])

    def widgets(self) -> list[tuple[str, Any]]:
        """(name, value) of every widget input the node sets: the required ones (given or default) and the
        optional ones up to the last given; a linked widget keeps its default as value."""
        last = max((i for i, s in enumerate(self.spec.inputs) if s.widget and s.name in self.inputs), default=-1)
        values = []
        for i, spec in enumerate(self.spec.inputs):
            if not spec.widget or (spec.optional and i > last):
                continue
            value = self.inputs.get(spec.name, spec.default)
            values.append((spec.name, spec.default if isinstance(value, Output) else value))
        return values

    def ui_inputs(self) -> list[tuple[str, str, bool]]:
        """(name, type, is_widget) of the node's input slots on the canvas: its sockets, then its linked widgets."""
        sockets = [(s.name, s.type, False) for s in self.spec.inputs if not s.widget]
        linked = [
            (s.name, s.type, True) for s in self.spec.inputs if s.widget and isinstance(self.inputs.get(s.name), Output)
        ]
        return sockets + linked

    def to_api(self) -> dict[str, Any]:
        inputs = {}
        for spec in self.spec.inputs:
            value = self.inputs.get(spec.name, spec.default if spec.widget and not spec.optional else None)
            if value is not None:
                inputs[spec.name] = value.to_api() if isinstance(value, Output) else value
        node: dict[str, Any] = {"class_type": self.class_type, "inputs": inputs}
        if self.title:
            node["_meta"] = {"title": self.title}
        return node


class Graph:
    """Nodes and typed links; ``extra`` adds node types from outside the pack and the core table."""

    def __init__(self, extra: dict[str, NodeSpec] | None = None) -> None:
        self.nodes: list[Node] = []
        self.links: list[list[Any]] = []
        self.extra = extra or {}

    def add(self, class_type: str, title: str | None = None, **inputs: Any) -> Node:
        """Add a node; its links are made in the order of ``inputs``. Raises KeyError on an unknown input."""
        spec = node_spec(class_type, self.extra)
        for name in inputs:
            spec.input(name)
        node = Node(len(self.nodes) + 1, class_type, spec, inputs, title)
        self.nodes.append(node)
        slots = [name for name, _, _ in node.ui_inputs()]
        for name, value in inputs.items():
            if isinstance(value, Output):
                link_id = len(self.links) + 1
                self.links.append([link_id, value.node_id, value.slot, node.id, slots.index(name), value.type])
                self.nodes[value.node_id - 1].links_out.setdefault(value.slot, []).append(link_id)
                node.links_in[name] = link_id
        return node

    def to_api(self) -> dict[str, dict[str, Any]]:
        """The graph in the API format ``/prompt`` takes: ``{"<id>": {"class_type": ..., "inputs": {...}}}``."""
        return {str(n.id): n.to_api() for n in self.nodes}
